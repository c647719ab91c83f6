"""Shortened evaluation is honest: val/test batches interleave the sources, so a prefix of the
eval order (``debug=fast``, ``trainer.limit_val_batches``) still evaluates every source."""

import numpy as np
import pytest

from mtlface.backbones import InputSpec
from mtlface.data.datamodule import MultiSourceDataModule, interleaved_order
from mtlface.data.synthetic import SyntheticFaces

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
