"""End-to-end: real training runs through mtlface.train.run and train.py."""

import json
import os
import subprocess
import sys

import pytest
import yaml

from conftest import ROOT, SMALL_BKNET, TINY_SOURCES, compose_train
from mtlface.train import run

CHANCE = {"age": 1 / 5, "gender": 1 / 2, "smile": 1 / 2, "emotion": 1 / 7, "race": 1 / 5}


def _assert_beats_chance(results):
    for task, chance in CHANCE.items():
        for stage in ("val", "test"):
            assert f"{stage}/{task}/acc" in results
        # Well above chance: halfway from chance to perfect for the binary tasks, double
        # chance for the multi-class ones.
        target = chance + (1 - chance) / 2 if chance == 0.5 else 2 * chance
        assert results[f"test/{task}/acc"] > target, (task, results[f"test/{task}/acc"])
    assert results["test/age/mae"] < 20
    assert results["test/age/acc_1off"] > results["test/age/acc"]


@pytest.mark.integration  # a 12-epoch training run
def test_short_training_run_beats_chance_on_every_task(data_dir, tmp_path):
    cfg = compose_train([*TINY_SOURCES, *SMALL_BKNET, "trainer.max_epochs=12", "seed=1"],
                        output_dir=tmp_path)
    results = run(cfg)
    on_disk = json.loads((tmp_path / "results.json").read_text())
    assert on_disk == pytest.approx(results)
    _assert_beats_chance(results)
    assert 0 < results["val/score"] <= 1
    assert list((tmp_path / "checkpoints").glob("epoch*.ckpt")), "best checkpoint saved"
    assert (tmp_path / "csv" / "metrics.csv").is_file()
    # The resolved config reaches the loggers' hyper-parameters (flattened by each logger).
    hparams = yaml.safe_load((tmp_path / "csv" / "hparams.yaml").read_text())
    assert hparams["trainer"]["max_epochs"] == 12 and hparams["seed"] == 1
    assert hparams["paths"]["output_dir"] == str(tmp_path)  # resolved, not ${hydra:...}
    assert list((tmp_path / "tensorboard").glob("events.out.tfevents.*"))


@pytest.mark.parametrize("overrides", [
    ["backbone=efficientnet_b4", "tasks=[age,gender]"],
    ["tasks=[smile]"],
    ["backbone=timm", "backbone.model_name=mobilenetv3_small_050", "tasks.age.regression=true"],
])
def test_fast_debug_run_for_other_backbones_and_task_sets(data_dir, tmp_path, overrides):
    cfg = compose_train([*TINY_SOURCES, "debug=fast", *overrides], output_dir=tmp_path)
    results = run(cfg)
    for stage in ("val", "test"):  # debug=fast's one eval batch interleaves the sources
        evaluated = {k.split("/")[1] for k in results
                     if k.startswith(f"{stage}/") and k.endswith("/loss") and k.count("/") == 2}
        assert evaluated == set(cfg.tasks), stage


def test_age_bucketing_multirun_leaves_one_results_json_per_job(data_dir, tmp_path):
    cmd = [sys.executable, "train.py", "-m", "debug=fast", "tasks=[age]",
           "age_bins.num_bins=3,5,10", f"hydra.sweep.dir={tmp_path}", *TINY_SOURCES]
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=600,
                          env={**os.environ, "MTLFACE_DATA_DIR": str(data_dir)})
    assert proc.returncode == 0, proc.stderr[-3000:]
    results = sorted(tmp_path.glob("*/results.json"))
    assert [r.parent.name for r in results] == ["0", "1", "2"]
    for path, bins in zip(results, (3, 5, 10)):
        assert f"age_bins.num_bins={bins}" in (path.parent / ".hydra/overrides.yaml").read_text()
        assert "test/age/acc" in json.loads(path.read_text())


def test_seed_makes_a_run_repeatable(data_dir, tmp_path):
    def results(seed, folder):
        return run(compose_train([*TINY_SOURCES, "debug=fast", f"seed={seed}"],
                                 output_dir=tmp_path / folder))

    first, again, other = results(3, "a"), results(3, "b"), results(4, "c")
    assert first == again
    assert first != other


@pytest.mark.slow
def test_default_run_beats_chance_on_every_task(tmp_path):
    """The README's main job, as shipped (~6 min on 2 CPU cores): `pytest -m slow`."""
    proc = subprocess.run([sys.executable, "train.py", f"hydra.run.dir={tmp_path}"], cwd=ROOT,
                          capture_output=True, text=True, timeout=1800,
                          env={**os.environ, "MTLFACE_DATA_DIR": str(tmp_path / "data")})
    assert proc.returncode == 0, proc.stderr[-3000:]
    _assert_beats_chance(json.loads((tmp_path / "results.json").read_text()))


def _fit_briefly(overrides, tmp_path):
    from hydra.utils import instantiate

    from mtlface.train import build_model, build_trainer

    cfg = compose_train([*TINY_SOURCES, *SMALL_BKNET, "tasks=[age,gender]", "logger=csv",
                         "trainer.accelerator=cpu", "trainer.limit_val_batches=1",
                         "~callbacks.progress_bar", *overrides], output_dir=tmp_path)
    model, spec = build_model(cfg)
    trainer = build_trainer(cfg)
    trainer.fit(model, datamodule=instantiate(cfg.data, tasks=list(cfg.tasks), input_spec=spec))
    return trainer.optimizers[0].param_groups[0]["lr"], trainer


def test_scheduler_steps_per_optimiser_step_when_configured(data_dir, tmp_path):
    """scheduler_options.interval=step: StepLR(step_size=2) over 5 steps decays twice."""
    lr, _ = _fit_briefly(["model.scheduler={_target_: torch.optim.lr_scheduler.StepLR, "
                          "_partial_: true, step_size: 2, gamma: 0.1}",
                          "model.scheduler_options.interval=step", "trainer.max_epochs=-1",
                          "trainer.max_steps=5"], tmp_path)
    assert lr == pytest.approx(5e-4 * 0.01)


def test_plateau_scheduler_watches_the_configured_metric(data_dir, tmp_path):
    """ReduceLROnPlateau stepped each epoch with the monitored value; a monitor that is never
    logged is Lightning's clear error naming it."""
    lr, trainer = _fit_briefly(["model.scheduler={_target_: torch.optim.lr_scheduler."
                                "ReduceLROnPlateau, _partial_: true, mode: max, factor: 0.5, "
                                "patience: 0, threshold: 10.0}",
                                "model.scheduler_options.monitor=val/age/acc",
                                "trainer.max_epochs=3", "trainer.limit_train_batches=1"],
                               tmp_path)
    # threshold 10 (relative): no epoch counts as better than the best, so each epoch after
    # the first halves the LR.
    assert lr == pytest.approx(5e-4 * 0.25)
    with pytest.raises(Exception, match="val/nope"):
        _fit_briefly(["model.scheduler={_target_: torch.optim.lr_scheduler.ReduceLROnPlateau, "
                      "_partial_: true}", "model.scheduler_options.monitor=val/nope",
                      "trainer.max_epochs=1", "trainer.limit_train_batches=1"], tmp_path / "b")


def test_bad_scheduler_options_are_named(data_dir, tmp_path):
    from mtlface.train import build_model

    for option, message in [("+model.scheduler_options.every=2", r"unknown key\(s\) \['every'\]"),
                            ("model.scheduler_options.interval=batch", "epoch or step")]:
        with pytest.raises(Exception, match=message):
            build_model(compose_train([option], output_dir=tmp_path))
