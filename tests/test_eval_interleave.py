"""Shortened evaluation is honest: val/test batches interleave the sources, so a prefix of the
eval order (``debug=fast``, ``trainer.limit_val_batches``) still evaluates every source, and a
task that a stage still never evaluated is warned about and recorded in results.json."""

import json
import logging

import numpy as np
import pytest
import yaml

from conftest import SMALL_BKNET, TINY_SOURCES, compose_train
from mtlface.analysis import load_runs
from mtlface.backbones import InputSpec
from mtlface.data.datamodule import MultiSourceDataModule, interleaved_order
from mtlface.data.synthetic import SyntheticFaces
from mtlface.train import run

TASKS = ["age", "gender", "smile", "emotion", "race"]
# One task per source, so a batch's labels tell which sources it holds.
VAL_SIZES = {"a_like": ("age", 3), "b_like": ("gender", 3), "c_like": ("smile", 6),
             "d_like": ("emotion", 6)}


@pytest.mark.parametrize("sizes", [[300, 300, 300, 300], [3, 1, 2], [160, 480, 7], [5]])
def test_every_prefix_of_the_order_holds_each_source_in_proportion(sizes):
    order = interleaved_order(sizes)
    assert sorted(order) == list(range(sum(sizes)))  # a permutation: each sample once
    source = np.repeat(np.arange(len(sizes)), sizes)[order]
    for length in range(1, len(order) + 1):
        seen = np.bincount(source[:length], minlength=len(sizes))
        expected = length * np.array(sizes) / sum(sizes)
        assert np.all(np.abs(seen - expected) <= 1), (length, seen, expected)
    assert interleaved_order(sizes) == order  # no RNG


def test_interleaved_order_keeps_each_source_in_its_own_order():
    order = interleaved_order([4, 2])
    assert [i for i in order if i < 4] == [0, 1, 2, 3] and [i for i in order if i >= 4] == [4, 5]


@pytest.fixture(scope="module")
def four_source_module(tmp_path_factory):
    sources = {name: {"tasks": [task], "image_size": 16, "splits": {"train": 2, "val": n,
                                                                     "test": 1}}
               for name, (task, n) in VAL_SIZES.items()}
    faces = SyntheticFaces(tmp_path_factory.mktemp("four"), sources, num_workers=1)
    tasks = [task for task, _ in VAL_SIZES.values()]
    dm = MultiSourceDataModule({"s": faces}, tasks, InputSpec(16, 1, (0.5,), (0.5,)),
                               eval_batch_size=8)
    dm.setup("fit")
    return dm


def _labelled_per_task(batch):
    # Unlabelled is NaN (float targets) or -1 (class targets): neither is >= 0.
    return {task: int((labels >= 0).sum()) for task, labels in batch["targets"].items()}


def test_first_val_batch_holds_every_source_in_proportion(four_source_module):
    first = next(iter(four_source_module.val_dataloader()))
    assert _labelled_per_task(first) == {"age": 1, "gender": 1, "smile": 3, "emotion": 3}


@pytest.mark.parametrize("world", [2, 3])
def test_ddp_ranks_share_the_interleaved_order_without_repeats(four_source_module, world,
                                                               monkeypatch):
    """Each process evaluates its stride of the interleaved order: together every sample once
    (no padding), and the ranks' first batches together are a prefix of that order, so a
    shortened evaluation (metrics summed over ranks) mixes the sources as on one process."""
    dm, total = four_source_module, sum(n for _, n in VAL_SIZES.values())
    order = interleaved_order([n for _, n in VAL_SIZES.values()])
    taken, first_batches = [], []
    for rank in range(world):
        monkeypatch.setattr(dm, "_replicas", lambda r=rank: {"num_replicas": world, "rank": r})
        loader = dm.val_dataloader()
        mine = [loader.dataset.indices[i] for i in loader.sampler]
        taken += mine
        first_batches += mine[:loader.batch_size]
    assert sorted(taken) == list(range(total))
    assert sorted(first_batches) == sorted(order[:world * dm.eval_batch_size])


def _ran(tmp_path, *overrides, caplog):
    # keep_output: debug=fast would remove the folder, and the file is what is checked here
    cfg = compose_train([*TINY_SOURCES, *SMALL_BKNET, *overrides, "keep_output=true"],
                        output_dir=tmp_path)
    with caplog.at_level(logging.WARNING, logger="mtlface.module"):
        results = run(cfg)
    assert json.loads((tmp_path / "results.json").read_text()) == pytest.approx(results)
    return results


def _unseen_warnings(caplog) -> list[str]:
    return [r.getMessage() for r in caplog.records
            if "saw no labelled sample" in r.getMessage()]


def test_fast_debug_run_validates_and_tests_every_task(data_dir, tmp_path, caplog):
    """debug=fast evaluates one batch of 8: interleaved, it holds two faces of each source."""
    results = _ran(tmp_path, "debug=fast", caplog=caplog)
    for stage in ("val", "test"):
        for task in TASKS:
            assert f"{stage}/{task}/loss" in results, (stage, task)
    assert not [k for k in results if k.endswith("/labelled")]
    assert not _unseen_warnings(caplog)


def test_a_task_validation_never_reached_is_warned_once_and_recorded(data_dir, tmp_path, caplog):
    """Validation cut to one sample (genki_like's, of the three sources these tasks use) never
    sees an age label: one warning over two epochs and the final validation, saying what to
    raise; results.json records val/age/labelled = 0, which a run table can carry. The test
    split is evaluated in full: nothing to report there."""
    results = _ran(tmp_path, "tasks=[age,smile]", "trainer.max_epochs=2",
                   "trainer.limit_train_batches=1", "trainer.limit_val_batches=1",
                   "data.eval_batch_size=1", "logger=csv", caplog=caplog)
    assert _unseen_warnings(caplog) == [
        "val saw no labelled sample of task(s) age: val/score and val metrics leave them out; "
        "raise trainer.limit_val_batches (now 1)"]
    assert results["val/age/labelled"] == 0 and "val/age/acc" not in results
    assert "val/smile/acc" in results and "test/age/acc" in results
    assert [k for k in results if k.endswith("/labelled")] == ["val/age/labelled"]

    (tmp_path / ".hydra").mkdir(exist_ok=True)
    (tmp_path / ".hydra" / "overrides.yaml").write_text(yaml.safe_dump(["tasks=[age,smile]"]))
    row = load_runs(tmp_path).iloc[0]
    assert row["status"] == "ok" and row["val/age/labelled"] == 0


def test_fast_debug_run_too_small_for_a_task_says_what_to_raise(data_dir, tmp_path, caplog):
    """An eval batch of one holds genki_like's first face: age is neither validated nor tested,
    and each stage warns once."""
    results = _ran(tmp_path, "debug=fast", "tasks=[age,smile]", "data.eval_batch_size=1",
                   caplog=caplog)
    assert results["val/age/labelled"] == results["test/age/labelled"] == 0
    unseen = _unseen_warnings(caplog)
    assert [w.split(" ")[0] for w in unseen] == ["val", "test"]
    assert all("evaluates 1 batch(es): raise data.eval_batch_size" in w for w in unseen)


def test_a_split_without_labels_for_a_task_is_reported_as_such(data_dir, tmp_path, caplog):
    """Full validation, but the val splits of both age sources dropped: the warning points at
    the data, not at the limits."""
    results = _ran(tmp_path, "tasks=[age,smile]", "trainer.max_epochs=1",
                   "trainer.limit_train_batches=1", "test=false", "logger=csv",
                   "+data.split_map={imdb_like:{val:null},utk_like:{val:null}}", caplog=caplog)
    assert results["val/age/labelled"] == 0 and "val/smile/acc" in results
    assert _unseen_warnings(caplog) == [
        "val saw no labelled sample of task(s) age: val/score and val metrics leave them out; "
        "the val splits of the selected sources hold no label for them (see data.sources, "
        "data.split_map)"]
