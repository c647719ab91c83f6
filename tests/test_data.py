import logging

import cv2
import numpy as np
import pandas as pd
import pytest
import torch

from mtlface.backbones import InputSpec
from mtlface.data.datamodule import MultiSourceDataModule
from mtlface.data.dataset import CorruptImageError, ManifestDataset
from mtlface.data.manifest import read_manifest, write_manifest
from mtlface.module import merge_source_batches

GREY48 = InputSpec(48, 1, (0.5,), (0.5,))


def _image(path, channels=3, size=32, value=128):
    path.parent.mkdir(parents=True, exist_ok=True)
    shape = (size, size) if channels == 1 else (size, size, channels)
    cv2.imwrite(str(path), np.full(shape, value, np.uint8))


def _manifest(tmp_path, rows):
    """rows: (path, source, split, {label: value}); images are written for each path."""
    for path, *_ in rows:
        _image(tmp_path / path)
    frame = pd.DataFrame([{"path": p, "source": s, "split": sp, **labels}
                          for p, s, sp, labels in rows])
    return write_manifest(frame, tmp_path)


def test_sample_contract_has_every_active_task_with_sentinels(tmp_path):
    path = _manifest(tmp_path, [("a.png", "s", "train", {"age": 30, "gender": 1}),
                                ("b.png", "s", "train", {"smile": 1})])
    ds = ManifestDataset(read_manifest(path), tmp_path, ["age", "gender", "smile"], channels=1)
    first, second = ds[0], ds[1]
    assert first["image"].shape == (1, 32, 32)
    assert first["targets"]["age"].item() == 30.0 and first["targets"]["gender"].item() == 1
    assert first["targets"]["smile"].item() == -1 and first["targets"]["smile"].dtype == torch.int64
    assert torch.isnan(second["targets"]["age"]) and second["targets"]["age"].dtype == torch.float32
    batch = torch.utils.data.default_collate([first, second])
    assert batch["targets"]["gender"].tolist() == [1, -1]


@pytest.mark.parametrize("channels_on_disk", [1, 3, 4])
@pytest.mark.parametrize("channels", [1, 3])
def test_images_are_converted_to_the_backbone_channels(tmp_path, channels_on_disk, channels):
    _image(tmp_path / "x.png", channels_on_disk)
    frame = pd.DataFrame({"path": ["x.png"], "source": "s", "split": "train", "age": [5.0]})
    ds = ManifestDataset(frame, tmp_path, ["age"], channels=channels)
    assert ds[0]["image"].shape == (channels, 32, 32)


def test_missing_image_files_are_counted_and_logged(tmp_path, caplog):
    path = _manifest(tmp_path, [("a.png", "s", "train", {"age": 30}),
                                ("b.png", "s", "train", {"age": 40})])
    (tmp_path / "b.png").unlink()
    with caplog.at_level(logging.WARNING):
        ds = ManifestDataset(read_manifest(path), tmp_path, ["age"], channels=1, name="s/train")
    assert len(ds) == 1 and ds.skipped == {"image file missing": 1}
    assert "s/train: skipped 1 (image file missing)" in caplog.text


def test_corrupt_image_is_a_clear_error_naming_the_file(tmp_path):
    path = _manifest(tmp_path, [("a.png", "s", "train", {"age": 30})])
    (tmp_path / "a.png").write_bytes(b"not a png at all")
    ds = ManifestDataset(read_manifest(path), tmp_path, ["age"], channels=1)
    with pytest.raises(CorruptImageError, match="a.png is unreadable or corrupt"):
        ds[0]


def test_manifest_with_bad_labels_blanks_and_counts_them(tmp_path, caplog):
    (tmp_path / "manifest.csv").write_text(
        "path,source,split,age,gender,emotion\n"
        "a.png,s,train,30,0,3\nb.png,s,train,-4,2,x\nc.png,s,nosplit,1,1,1\n")
    with caplog.at_level(logging.WARNING):
        frame = read_manifest(tmp_path)
    assert len(frame) == 2
    assert frame["age"].isna().tolist() == [False, True]
    assert frame["gender"].isna().tolist() == [False, True]
    assert frame["emotion"].isna().tolist() == [False, True]
    for reason in ("age outside", "gender not in 0..1", "emotion not a number", "split not one"):
        assert reason in caplog.text


def test_manifest_without_required_columns_is_a_clear_error(tmp_path):
    (tmp_path / "manifest.csv").write_text("file,age\na.png,3\n")
    with pytest.raises(ValueError, match=r"lacks column\(s\) \['path', 'source', 'split'\]"):
        read_manifest(tmp_path)


def _two_source_module(tmp_path, **kwargs):
    rows = [(f"{src}/{i}.png", src, split, labels)
            for src, labels in (("faces", {"age": 20, "gender": 0}), ("smiles", {"smile": 1}))
            for split in ("train", "val") for i in range(8 if split == "train" else 2)
            for _ in [None]]
    rows = [(f"{split}_{p}", s, split, lab) for p, s, split, lab in rows]
    _manifest(tmp_path, rows)
    dm = MultiSourceDataModule({"m": str(tmp_path)}, input_spec=GREY48, **kwargs)
    dm.prepare_data()
    dm.setup("fit")
    return dm


def test_combined_loader_draws_every_source_each_step_with_configured_shares(tmp_path):
    dm = _two_source_module(tmp_path, tasks=["age", "gender", "smile"], batch_size=6,
                            shares={"faces": 2, "smiles": 1})
    assert dm.train_batch_sizes() == {"faces": 4, "smiles": 2}
    loader = dm.train_dataloader()
    batch, _, _ = next(iter(loader))
    assert set(batch) == {"faces", "smiles"}
    merged = merge_source_batches(batch)
    assert merged["image"].shape == (6, 1, 48, 48)
    assert merged["targets"]["smile"].tolist() == [-1] * 4 + [1] * 2


def test_sources_without_labels_for_the_active_tasks_are_left_out(tmp_path):
    dm = _two_source_module(tmp_path, tasks=["smile"])
    assert sorted(dm.datasets["train"]) == ["smiles"]


def test_a_task_without_training_labels_is_a_clear_error(tmp_path):
    with pytest.raises(ValueError, match="task 'race' has no labelled training sample"):
        _two_source_module(tmp_path, tasks=["age", "race"])


def test_unknown_source_lists_the_available_ones(tmp_path):
    with pytest.raises(ValueError, match=r"unknown source\(s\) \['nope'\]; available: "
                                         r"\['faces', 'smiles'\]"):
        _two_source_module(tmp_path, tasks=["age"], sources=["nope"])


def test_missing_manifest_says_how_to_make_it(tmp_path):
    dm = MultiSourceDataModule({"m": str(tmp_path / "absent")}, ["age"], GREY48)
    with pytest.raises(ValueError, match="run preprocess.py"):
        dm.prepare_data()


def test_fold_resplits_folded_sources_and_leaves_the_others(tmp_path):
    """data.fold=k on a manifest where one source has a fold column: its rows of fold k test,
    of fold k+1 validate, the rest train (whatever split they had); a source without folds
    keeps its splits; a fold outside the source's range, or no folded source, is an error."""
    from mtlface.data.synthetic import SyntheticFaces

    sources = {"folded": {"tasks": ["age", "gender"], "image_size": 32, "folds": 3,
                          "splits": {"train": 12, "val": 3, "test": 3}},
               "plain": {"tasks": ["smile"], "image_size": 32,
                         "splits": {"train": 6, "val": 2, "test": 2}}}
    syn = SyntheticFaces(tmp_path, sources, num_workers=1)
    manifest = read_manifest(syn.prepare())
    folds = pd.Series(manifest["fold"].to_numpy(), index=[str(syn.folder / p)
                                                         for p in manifest["path"]])
    tested = []
    for k in range(3):
        dm = MultiSourceDataModule({"s": syn}, ["age", "gender", "smile"], GREY48, fold=k)
        dm.setup("fit")
        paths = {split: set(map(str, dm.datasets[split]["folded"].paths))
                 for split in ("train", "val", "test")}
        assert {folds[p] for p in paths["test"]} == {k}
        assert {folds[p] for p in paths["val"]} == {(k + 1) % 3}
        assert len(paths["train"]) + len(paths["val"]) + len(paths["test"]) == 18
        assert len(dm.datasets["test"]["plain"]) == 2  # not folded: its own test split
        tested.append(paths["test"])
    assert set.union(*tested) == set(folds[folds.notna()].index) and sum(map(len, tested)) == 18
    with pytest.raises(ValueError, match=r"data.fold=3, but source folded has folds 0..2"):
        MultiSourceDataModule({"s": syn}, ["age"], GREY48, fold=3).setup("fit")
    with pytest.raises(ValueError, match=r"no source has a fold column"):
        MultiSourceDataModule({"s": syn}, ["smile"], GREY48, fold=0,
                              sources=["plain"]).setup("fit")
