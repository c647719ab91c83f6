"""Staged training (init_from, freeze_trunk_epochs) and pseudo-labelling, end to end on the
tiny synthetic data: a short age+gender run is the earlier stage for both."""

import json
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
import torch
from hydra.utils import instantiate
from omegaconf import OmegaConf, open_dict
from torch import nn

from conftest import SMALL_BKNET, TINY_SOURCES, compose_train
from mtlface.data.dataset import load_image
from mtlface.data.manifest import read_manifest
from mtlface.data.transforms import build_transform
from mtlface.pseudo_label import default_output, load_run, parse_args
from mtlface.pseudo_label import run as pseudo_run
from mtlface.checkpoint import load_state_dict
from mtlface.runs import best_checkpoint
from mtlface.staged import CheckpointMismatchError, FreezeTrunk, init_from_checkpoint
from mtlface.train import build_model, run

SHORT = ("trainer.limit_train_batches=4", "trainer.limit_val_batches=1", "test=false",
         "logger=csv", "trainer.log_every_n_steps=1")


def save_run_config(cfg, folder):
    """What @hydra.main leaves in a run folder: the config without its hydra node."""
    cfg = cfg.copy()
    with open_dict(cfg):
        del cfg["hydra"]
    (folder / ".hydra").mkdir(exist_ok=True)
    OmegaConf.save(cfg, folder / ".hydra" / "config.yaml")


@pytest.fixture(scope="module")
def stage1(data_dir, tmp_path_factory):
    """A finished one-epoch age+gender run folder (best checkpoint + .hydra/config.yaml)."""
    folder = tmp_path_factory.mktemp("stage1")
    cfg = compose_train([*TINY_SOURCES, *SMALL_BKNET, *SHORT, "tasks=[age,gender]",
                         "trainer.max_epochs=1"], output_dir=folder)
    run(cfg)
    save_run_config(cfg, folder)
    return folder


def _part(state, prefix):
    return {k: v for k, v in state.items() if k.startswith(prefix)}


def test_init_from_loads_trunk_and_shared_heads_and_adds_new_ones(stage1, caplog):
    model, _ = build_model(compose_train([*SMALL_BKNET, "tasks=[age,gender,emotion]"]))
    fresh_emotion = {k: v.clone() for k, v in _part(model.state_dict(), "tasks.emotion.").items()}
    ckpt = best_checkpoint(stage1)
    assert ckpt.name.startswith("epoch00"), "the run folder resolves to its best checkpoint"
    with caplog.at_level("INFO", logger="mtlface.staged"):
        report = init_from_checkpoint(model, ckpt)

    saved, now = load_state_dict(ckpt), model.state_dict()
    copied = {**_part(saved, "backbone."), **_part(saved, "tasks.age."),
              **_part(saved, "tasks.gender.")}
    assert copied and set(copied) <= set(report.loaded)
    for key, value in copied.items():
        assert torch.equal(now[key], value), key
    assert not _part(saved, "tasks.emotion.")
    for key, value in fresh_emotion.items():  # the new head keeps its fresh initialisation
        assert torch.equal(now[key], value), key
    assert report.kept_tasks == ["age", "gender"]
    assert report.new_tasks == ["emotion"]
    assert report.dropped_tasks == []
    assert "new heads: ['emotion']" in caplog.text


def test_staged_run_trains_heads_on_a_frozen_trunk_then_unfreezes_it(stage1, tmp_path):
    cfg = compose_train([*TINY_SOURCES, *SMALL_BKNET, *SHORT, "tasks=[age,gender,emotion]",
                         f"init_from={stage1}", "freeze_trunk_epochs=1", "trainer.max_epochs=2",
                         "callbacks.model_checkpoint.save_top_k=-1"], output_dir=tmp_path)
    results = run(cfg)
    assert "val/emotion/acc" in results

    start = load_state_dict(best_checkpoint(stage1))
    (after0,) = tmp_path.glob("checkpoints/epoch00-*.ckpt")
    (after1,) = tmp_path.glob("checkpoints/epoch01-*.ckpt")
    epoch0, epoch1 = load_state_dict(after0), load_state_dict(after1)
    trunk = _part(start, "backbone.")
    # Frozen epoch: every trunk tensor as loaded, BatchNorm running statistics included ...
    for key, value in trunk.items():
        assert torch.equal(epoch0[key], value), key
    # ... while the heads learnt on it.
    assert any(not torch.equal(epoch0[k], v) for k, v in _part(start, "tasks.age.").items())
    # Unfrozen: weights and BN statistics move.
    changed = [k for k, v in trunk.items() if not torch.equal(epoch1[k], v)]
    assert any(k.endswith(".weight") for k in changed)
    assert any(k.endswith("running_mean") for k in changed)


def test_freeze_trunk_keeps_its_batchnorm_in_eval_mode_until_unfrozen():
    model, _ = build_model(compose_train([*SMALL_BKNET, "tasks=[gender]"]))
    trainer = SimpleNamespace(strategy=None)
    FreezeTrunk(1).setup(trainer, model, "validate")  # evaluating after training: no effect
    assert all(p.requires_grad for p in model.parameters())

    callback = FreezeTrunk(1)
    callback.setup(trainer, model, "fit")
    batchnorms = [m for m in model.backbone.modules() if isinstance(m, nn.BatchNorm2d)]
    callback.finetune_function(model, 0, None)  # epoch 0 starts
    assert batchnorms and not any(m.training for m in batchnorms)
    assert not any(p.requires_grad for p in model.backbone.parameters())
    assert all(p.requires_grad for p in model.tasks.parameters())
    callback.finetune_function(model, 1, None)  # epoch 1: unfrozen
    assert all(m.training and m.track_running_stats for m in batchnorms)
    assert all(p.requires_grad for p in model.backbone.parameters())

    aggregating, _ = build_model(compose_train([*SMALL_BKNET, "tasks=[gender,smile]",
                                                "weighting=upgrad"]))
    with pytest.raises(ValueError, match="gradient-aggregating weighting"):
        FreezeTrunk(1).setup(trainer, aggregating, "fit")


def test_init_from_a_different_backbone_fails_naming_it(stage1, tmp_path):
    cfg = compose_train([*TINY_SOURCES, *SMALL_BKNET, "backbone.widths=[8,16,32,64]",
                         "tasks=[age,gender,emotion]", f"init_from={stage1}"], output_dir=tmp_path)
    with pytest.raises(CheckpointMismatchError,
                       match=r"backbone does not match.*same backbone.*checkpoint \(16"):
        run(cfg)


def test_changed_head_of_a_shared_task_fails_naming_it(stage1):
    model, _ = build_model(compose_train([*SMALL_BKNET, "tasks=[age,gender]",
                                          "age_bins.num_bins=3"]))
    with pytest.raises(CheckpointMismatchError, match=r"age head does not match.*age_bins"):
        init_from_checkpoint(model, best_checkpoint(stage1))


def test_a_reordered_class_list_of_a_shared_task_fails_naming_it(stage1):
    model, _ = build_model(compose_train([*SMALL_BKNET, "tasks=[age,gender]",
                                          "tasks.gender.classes=[female,male]"]))
    with pytest.raises(CheckpointMismatchError, match=r"tasks.gender declares classes "
                       r"\['female', 'male'\], the run it starts from .* \['male', 'female'\]"):
        init_from_checkpoint(model, best_checkpoint(stage1))


def test_bad_checkpoint_locations_and_options(tmp_path):
    with pytest.raises(FileNotFoundError, match="no run folder or checkpoint"):
        best_checkpoint(tmp_path / "nope")
    with pytest.raises(FileNotFoundError, match="no checkpoint in .*debug=fast"):
        best_checkpoint(tmp_path)
    (tmp_path / "notes.txt").write_text("x")
    with pytest.raises(ValueError, match="not a checkpoint"):
        best_checkpoint(tmp_path / "notes.txt")
    (tmp_path / "junk.ckpt").write_bytes(b"not a checkpoint")
    assert best_checkpoint(tmp_path) == tmp_path / "junk.ckpt"  # the only one kept
    with pytest.raises(ValueError, match="cannot load .* as weights"):
        load_state_dict(tmp_path / "junk.ckpt")
    with pytest.raises(ValueError, match="freeze_trunk_epochs"):
        FreezeTrunk(-1)


def _synthetic_manifest(data_dir):
    cfg = compose_train([*TINY_SOURCES])
    return instantiate(cfg.data.manifests.synthetic).prepare()


def test_pseudo_labels_fill_confident_missing_labels_and_train_on_them(stage1, data_dir,
                                                                       tmp_path):
    source = _synthetic_manifest(data_dir)
    original_bytes = source.read_bytes()

    def pseudo(threshold, name):
        out = tmp_path / name / "manifest.csv"
        summary = pseudo_run(parse_args([f"run={stage1}", f"source_manifest={source}",
                                         "tasks=[gender]", f"threshold={threshold}",
                                         f"output={out}"]))
        return out, summary

    # First pass: every confidence; then a threshold that keeps about half of them.
    out, _ = pseudo(0.5, "first")
    probs = read_manifest(out)["pseudo_gender_prob"].dropna()
    threshold = float(np.median(probs))
    out, summary = pseudo(threshold, "second")

    assert source.read_bytes() == original_bytes, "the source manifest is never rewritten"
    before, after = read_manifest(source), read_manifest(out)
    assert len(after) == len(before)
    assert ([(out.parent / p).resolve() for p in after["path"]]
            == [(source.parent / p).resolve() for p in before["path"]])
    for column in ("source", "split", "age", "smile", "emotion", "race"):
        pd.testing.assert_series_equal(after[column], before[column])

    labelled = before["gender"].notna()
    assert (after["gender"][labelled] == before["gender"][labelled]).all()  # never overwritten
    candidates = (before["source"].isin(["genki_like", "fer_like"])
                  & (before["split"] == "train")).to_numpy()
    assert not labelled[candidates].any()
    flagged = after["pseudo_gender"].astype(bool).to_numpy()
    prob = after["pseudo_gender_prob"].to_numpy()
    assert not flagged[~candidates].any() and np.isnan(prob[~candidates]).all()
    assert (flagged[candidates] == (prob[candidates] >= threshold)).all()
    assert after["gender"][flagged].isin([0, 1]).all()
    assert after["gender"][candidates & ~flagged].isna().all()

    info = summary.tasks["gender"]
    assert info.sources == ["fer_like", "genki_like"]
    assert info.scored == candidates.sum() == info.kept + info.discarded
    assert info.kept == flagged.sum() and 0 < info.kept < info.scored
    written = json.loads((out.parent / "manifest.summary.json").read_text())
    assert written["tasks"]["gender"]["kept"] == info.kept

    # A pseudo-label is the run's own prediction on the eval-transformed image.
    model, spec, _ = load_run(stage1)
    row = int(np.argmax(np.where(flagged, prob, -1)))  # the most confident: no near-tie
    image = build_transform(spec, train=False)(
        image=load_image(out.parent / after["path"][row], spec.channels))["image"]
    with torch.no_grad():
        predicted = model(image[None])["gender"].argmax(-1).item()
    assert predicted == after["gender"][row]

    # The DataModule trains on the new manifest, pseudo-labels included.
    cfg = compose_train([*SMALL_BKNET, "debug=fast", "tasks=[gender,smile]",
                         "~data.manifests.synthetic", f"+data.manifests.pseudo={out}"],
                        output_dir=tmp_path / "train")
    datamodule = instantiate(cfg.data, tasks=["gender", "smile"], input_spec=spec)
    datamodule.setup()
    assert (datamodule.datasets["train"]["genki_like"].label_counts()["gender"]
            == info.kept_by_source["genki_like"])
    assert "test/loss" in run(cfg)


def test_pseudo_label_bad_input(stage1, data_dir, tmp_path):
    source = _synthetic_manifest(data_dir)
    base = [f"run={stage1}", f"source_manifest={source}", f"output={tmp_path / 'o.csv'}"]
    cases = [
        (["threshold=0"], ValueError, r"threshold must be in \(0, 1\]"),
        (["threshold=1.5"], ValueError, r"threshold must be in \(0, 1\]"),
        (["tasks=[beauty]"], ValueError, r"no head for task\(s\) \[.beauty.\]"),
        (["tasks=[emotion]"], ValueError, r"no head for task\(s\) \['emotion'\]"),
        (["splits=[training]"], ValueError, "splits must be"),
        ([f"output={source}"], ValueError, "is the source manifest"),
        ([f"source_manifest={tmp_path / 'none.csv'}"], FileNotFoundError, "no manifest"),
        ([f"run={tmp_path / 'none'}"], FileNotFoundError, "no run folder"),
        ([f"run={tmp_path}"], FileNotFoundError, r"no \.hydra/config\.yaml"),
    ]
    for extra, error, message in cases:
        with pytest.raises(error, match=message):
            pseudo_run(parse_args([*base, *extra]))
    with pytest.raises(ValueError, match=r"missing option\(s\): run=\.\.\., source_manifest"):
        parse_args([])
    assert default_output(source, ["gender"]).name == "manifest.pseudo-gender.csv"
