"""Experiment recipes (conf/experiment): each composes, sets what its reference implementation used, cites a
published number, and runs a debug=fast step. The seeds' real data mixes run on tiny caches made
by preprocess.py from fixtures in the datasets' real on-disk formats."""

from __future__ import annotations

import itertools
import logging
import subprocess
import sys

import pytest
from hydra.core.override_parser.overrides_parser import OverridesParser
from omegaconf import OmegaConf
from torch import nn

import fixtures_real as fx
from conftest import ROOT, SMALL_BKNET, TINY_SOURCES, compose_train
from mtlface.config import group_options
from mtlface.train import build_model, run
from test_preprocess import preprocess

EXPERIMENTS = group_options("experiment")
SEEDS = [e for e in EXPERIMENTS if e != "mtl_vs_stl"]  # every recipe but mtl_vs_stl reproduces one

# source -> (fixture writer, extra preprocess.py overrides the source's data config expects)
REAL_SOURCES = {
    "utkface": (fx.write_utkface, ()),
    "imdb_wiki": (fx.write_imdb_wiki, ()),
    "genki4k": (fx.write_genki4k, ()),
    "adience": (fx.write_adience, ()),
    "fer2013": (fx.write_fer2013, ("crop.size=48",)),
    "ckplus": (fx.write_ckplus, ()),
}
# Keep debug runs small and quiet; fast_dev_run leaves no checkpoint, so stage 1 runs briefly.
FAST = ("debug=fast", "logger=csv")
# Test-only: EfficientNet-B4 at 32 px instead of the seeds' 56 (a third of the compute; the
# trunk pools whatever size it gets), to keep its CPU backward pass short.
SMALL_INPUT = {"efficientnet_b4_age_gender": ("backbone.input_size=32",),
               "utk_age_study": ("backbone.input_size=32",)}
SHORT = ("trainer.max_epochs=1", "trainer.limit_train_batches=1", "trainer.limit_val_batches=1",
         "test=false", "logger=csv", "data.batch_size=8", "data.num_workers=0")


@pytest.fixture(scope="module")
def real(tmp_path_factory) -> dict[str, list[str]]:
    """Every real source as a tiny fixture in its on-disk format, cached by preprocess.py;
    returns, per source, the overrides that point its data config at that cache. The fixture
    images are blank squares, so every source is cropped with detector=none (GENKI-4K and CK+
    take mtcnn by default)."""
    tmp = tmp_path_factory.mktemp("real")
    cache = tmp / "cache"
    overrides = {}
    for source, (write, extra) in REAL_SOURCES.items():
        root = write(tmp / "raw" / source)
        preprocess(tmp, f"source={source}", f"source.root={root}", "detector=none", *extra)
        overrides[source] = [f"data.manifests.{source}.source.root={root}",
                             f"detector@data.manifests.{source}.detector=none",
                             f"data.manifests.{source}.cache_dir={cache}"]
    return overrides


def real_overrides(cfg, real) -> list[str]:
    """The fixture overrides for the real sources an experiment's data config reads."""
    return [o for source in cfg.data.manifests for o in real[source]]


def compose_on_real(experiment: str, real, *overrides: str, output_dir=None):
    cfg = compose_train([f"experiment={experiment}", *overrides])
    return compose_train([f"experiment={experiment}", *real_overrides(cfg, real), *overrides],
                         output_dir=output_dir)


def sweep_jobs(cfg) -> list[list[str]]:
    """The jobs the basic sweeper launches for the experiment's ``hydra.sweeper.params``."""
    params = cfg.hydra.sweeper.params or {}
    parsed = OverridesParser.create().parse_overrides([f"{k}={v}" for k, v in params.items()])
    choices = [[f"{o.key_or_group}={v}" for v in o.sweep_string_iterator()] for o in parsed]
    return [list(job) for job in itertools.product(*choices)]


def is_linear(head: nn.Module) -> bool:
    return len(head) == 1 and isinstance(head[0], nn.Linear)


# ------------------------------------------------------------------ what each recipe claims


@pytest.mark.parametrize("experiment", SEEDS)
def test_every_seed_cites_a_published_number_for_its_own_tasks(experiment):
    cfg = compose_train([f"experiment={experiment}"])
    published = cfg.published
    assert published.system and published.source and published.data
    metrics = published.get("metrics") or next(iter(published.metrics_by_num_bins.values()))
    for key, value in metrics.items():
        stage, task, metric = key.split("/")
        assert stage in ("val", "test") and task in cfg.tasks and metric == "acc"
        assert 0 < value < 1


def test_bknet_recipe_is_bknet_with_published_heads_on_imdb_and_genki():
    cfg = compose_train(["experiment=bknet_smile_gender_age"])
    model, spec = build_model(cfg)
    assert type(model.backbone).__name__ == "BKNet" and (spec.size, spec.channels) == (48, 1)
    assert set(model.tasks) == {"age", "gender", "smile"}
    for task in model.tasks.values():  # FC-256, FC-256, each with dropout 0.5, then the output
        assert [m.p for m in task.head if isinstance(m, nn.Dropout)] == [0.5, 0.5]
        assert [m.out_features for m in task.head if isinstance(m, nn.Linear)][:2] == [256, 256]
    assert model.tasks["age"].head[-1].out_features == 5
    assert set(cfg.data.manifests) == {"imdb_wiki", "genki4k"} and cfg.data.balance_tasks
    assert cfg.model.optimizer._target_ == "torch.optim.Adam" and cfg.model.optimizer.lr == 1e-3


def test_keras_stages_share_one_trunk_and_stage_two_adds_emotion():
    one, two = (compose_train([f"experiment={e}"])
                for e in ("keras_mtl_age_gender", "keras_mtl_emotion"))
    model, spec = build_model(one)
    assert (spec.size, spec.channels) == (64, 1) and list(one.backbone.depths) == [1, 1, 1, 1]
    assert model.tasks["age"].head[-1].out_features == 5  # keras5
    assert list(one.age_bins.edges) == [0, 18, 30, 45, 65, 100]
    assert set(one.data.manifests) == {"adience", "utkface"}
    assert set(two.data.manifests) == {"adience", "utkface", "fer2013", "ckplus"}
    assert list(one.tasks) == ["age", "gender"] and list(two.tasks) == ["age", "gender", "emotion"]
    # init_from can only load stage 1 if trunk and shared heads are configured alike
    assert one.backbone == two.backbone and one.head == two.head and one.age_bins == two.age_bins
    assert list(two.required) == ["init_from"] and two.init_from is None is one.init_from
    assert one.callbacks.early_stopping.patience == 3
    assert two.callbacks.early_stopping.patience == 5


def test_efficientnet_recipe_trains_on_imdb_wiki_and_tests_on_utkface():
    cfg = compose_train(["experiment=efficientnet_b4_age_gender"])
    model, spec = build_model(cfg)
    assert cfg.backbone.model_name == "efficientnet_b4" and spec.size == 56  # the seed's input
    assert all(is_linear(t.head) for t in model.tasks.values())
    assert model.tasks["age"].head[-1].out_features == 5
    assert [list(g) for g in cfg.age_bins.groups] == [[1, 13], [14, 23], [24, 39], [40, 55],
                                                      [56, 85]]
    assert cfg.data.split_map.utkface == {"train": "test", "val": "test"}
    assert cfg.data.split_map.imdb_wiki == {"test": None}


@pytest.mark.parametrize("experiment, width", [("lmtcnn_adience", 1), ("lmtcnn_2_1_adience", 2)])
def test_lmtcnn_recipes_are_lmtcnn_with_linear_heads_over_adience_groups(experiment, width):
    cfg = compose_train([f"experiment={experiment}", "data.fold=3"])
    model, spec = build_model(cfg)
    assert type(model.backbone).__name__ == "LMTCNN" and cfg.backbone.width == width
    assert (spec.size, spec.resize) == (227, 256)
    assert all(is_linear(t.head) for t in model.tasks.values())
    assert model.tasks["age"].head[-1].out_features == 8  # adience8
    assert cfg.data.fold == 3 and set(cfg.data.manifests) == {"adience"}
    assert cfg.model.optimizer._target_ == "torch.optim.SGD" and cfg.trainer.max_steps == 50000


def test_age_study_sweeps_three_bucketings_with_and_without_gender_and_race():
    cfg = compose_train(["experiment=utk_age_study"])
    jobs = sweep_jobs(cfg)
    assert len(jobs) == 9
    seen = set()
    for job in jobs:
        job_cfg = compose_train(["experiment=utk_age_study", *job])
        seen.add((job_cfg.age_bins.num_bins, tuple(job_cfg.tasks)))
    assert seen == {(n, tasks) for n in (3, 5, 10)
                    for tasks in (("age",), ("age", "gender"), ("age", "gender", "race"))}


def test_mtl_vs_stl_sweeps_each_task_alone_and_all_jointly_for_equal_steps():
    cfg = compose_train(["experiment=mtl_vs_stl"])
    task_sets = [tuple(compose_train(["experiment=mtl_vs_stl", *job]).tasks)
                 for job in sweep_jobs(cfg)]
    every = ("age", "gender", "smile", "emotion", "race")
    assert task_sets == [(t,) for t in every] + [every]
    assert cfg.trainer.max_steps > 0 and cfg.trainer.max_epochs == -1


# ------------------------------------------------------------------ debug=fast on real formats


@pytest.mark.parametrize("experiment", ["bknet_smile_gender_age", "efficientnet_b4_age_gender",
                                        "lmtcnn_adience", "lmtcnn_2_1_adience", "utk_age_study"])
def test_seed_recipe_runs_a_fast_step_on_real_format_caches(experiment, real, tmp_path):
    cfg = compose_on_real(experiment, real, *FAST, *SMALL_INPUT.get(experiment, ()),
                          output_dir=tmp_path)
    results = run(cfg)
    for task in cfg.tasks:
        assert f"test/{task}/acc" in results


def test_keras_stage_two_starts_from_stage_one(real, tmp_path, caplog):
    stage1 = tmp_path / "stage1"
    run(compose_on_real("keras_mtl_age_gender", real, *SHORT, output_dir=stage1))
    cfg = compose_on_real("keras_mtl_emotion", real, *FAST, f"init_from={stage1}",
                          output_dir=tmp_path / "stage2")
    with caplog.at_level(logging.INFO, logger="mtlface.staged"):
        results = run(cfg)
    assert "heads ['age', 'gender']); new heads: ['emotion']" in caplog.text
    assert {"test/age/acc", "test/gender/acc", "test/emotion/acc"} <= set(results)


def test_keras_stage_two_without_init_from_stops_naming_it(real, tmp_path):
    cfg = compose_on_real("keras_mtl_emotion", real, *FAST, output_dir=tmp_path)
    with pytest.raises(ValueError, match=r"required value\(s\) not set: init_from"):
        run(cfg)
    assert not (tmp_path / "results.json").exists()


# debug=fast tests one batch of 8, interleaved over the sources: two faces of each, so the
# joint run is tested on every task too.
@pytest.mark.parametrize("tasks", ["[smile]", "[age,gender,smile,emotion,race]"])
def test_mtl_vs_stl_runs_a_fast_step_per_task_set(tasks, data_dir, tmp_path):
    cfg = compose_train(["experiment=mtl_vs_stl", *TINY_SOURCES, *SMALL_BKNET, *FAST,
                         f"tasks={tasks}"], output_dir=tmp_path)
    results = run(cfg)
    assert {f"test/{task}/acc" for task in cfg.tasks} | {"test/score"} <= results.keys()


@pytest.mark.slow
def test_mtl_vs_stl_multirun_launches_the_sweep_its_config_defines(data_dir, tmp_path):
    """`python train.py -m experiment=mtl_vs_stl` end to end, the sweep narrowed on the
    command line to two task sets."""
    proc = subprocess.run(
        [sys.executable, "train.py", "-m", "experiment=mtl_vs_stl", *TINY_SOURCES, *SMALL_BKNET,
         *FAST, "hydra.sweeper.params.tasks='[smile],[age,smile]'", f"hydra.sweep.dir={tmp_path}"],
        cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    jobs = sorted(p.parent.parent for p in tmp_path.glob("*/.hydra/overrides.yaml"))
    assert [OmegaConf.load(j / ".hydra" / "overrides.yaml")[0] for j in jobs] == [
        "tasks=[smile]", "tasks=[age,smile]"]
    assert all((j / "results.json").is_file() for j in jobs)
