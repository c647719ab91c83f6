"""Resume: `resume=<run>` continues a run from its last checkpoint and ends where an
uninterrupted run ends; the data order and augmentation depend on (seed, epoch) only."""

import json
from pathlib import Path

import pandas as pd
import pytest
import torch
from hydra.utils import instantiate
from omegaconf import OmegaConf, open_dict

from conftest import SMALL_BKNET, compose_train
from mtlface.errors import UserError
from mtlface.module import MTLFaceModule
from mtlface.resume import resume_config
from mtlface.train import run

SOURCE = "data.manifests.synthetic.sources"
# One small source (age, gender, race; the cache test_ddp.py and test_launcher.py use too), 4
# steps of 16 per epoch; dropout on, so the global RNG matters too, and the default
# augmentation (flip, brightness/contrast).
TINY = (f"~{SOURCE}.imdb_like", f"~{SOURCE}.genki_like", f"~{SOURCE}.fer_like",
        f"{SOURCE}.utk_like.splits={{train:64,val:33,test:33}}", f"{SOURCE}.utk_like.image_size=32",
        "tasks=[age,gender,race]", "data.shares=null", "data.batch_size=16",
        *SMALL_BKNET, "backbone.widths=[8,16,16,32]", "head.dropout=0.3", "~callbacks.progress_bar",
        "+trainer.enable_progress_bar=false")


def _compose(overrides, run_dir: Path):
    """The config of `python train.py <overrides>`, saved into ``run_dir`` as Hydra saves it."""
    cfg = compose_train(overrides, output_dir=run_dir)
    job = cfg.copy()
    with open_dict(job):
        del job["hydra"]  # Hydra saves the job's config without its own node
    (run_dir / ".hydra").mkdir(parents=True)
    OmegaConf.save(job, run_dir / ".hydra" / "config.yaml")
    return cfg


def _batches(dm, epoch: int) -> list[dict]:
    loader = dm.train_dataloader()
    for dl in loader.flattened:
        dl.sampler.set_epoch(epoch)  # what Lightning does at every epoch start
    return [batch for batch, _, _ in loader]


def _datamodule(cfg, **overrides):
    spec = instantiate(cfg.backbone).input_spec
    dm = instantiate(cfg.data, tasks=list(cfg.tasks), input_spec=spec, **overrides)
    dm.prepare_data()
    dm.setup("fit")
    return dm


def _same(a: list[dict], b: list[dict]) -> bool:
    return len(a) == len(b) and all(
        torch.equal(x["utk_like"]["image"], y["utk_like"]["image"]) and
        all(torch.equal(x["utk_like"]["targets"][t], y["utk_like"]["targets"][t])
            for t in x["utk_like"]["targets"]) for x, y in zip(a, b))


def test_training_batches_are_a_function_of_seed_and_epoch(data_dir, tmp_path):
    cfg = compose_train(TINY, output_dir=tmp_path)
    torch.manual_seed(0)
    first = _batches(_datamodule(cfg), epoch=1)
    torch.manual_seed(123)  # another global RNG state, as after a resume: nothing changes
    assert _same(first, _batches(_datamodule(cfg), epoch=1))
    # Worker processes draw each sample's augmentation from that sample's seed: the same.
    assert _same(first, _batches(_datamodule(cfg, num_workers=2), epoch=1))
    assert not _same(first, _batches(_datamodule(cfg), epoch=2))  # a new epoch reshuffles
    assert not _same(first, _batches(_datamodule(cfg, seed=7), epoch=1))


def _weights(run_dir: Path) -> dict[str, torch.Tensor]:
    ckpt = torch.load(run_dir / "checkpoints" / "last.ckpt", map_location="cpu",
                      weights_only=True)
    return ckpt["state_dict"]


def _epoch_rows(run_dir: Path) -> pd.DataFrame:
    """One row per epoch: the epoch-level values in csv/metrics.csv."""
    rows = pd.read_csv(run_dir / "csv" / "metrics.csv")
    keys = [c for c in rows if c.startswith(("val/", "train/")) and
            not c.startswith(("train/weight/", "train/loss_step"))]
    return rows.groupby("epoch")[keys].first()


@pytest.mark.integration
def test_a_run_resumed_after_a_crash_ends_as_the_uninterrupted_run(data_dir, tmp_path,
                                                                   monkeypatch):
    straight, resumed = tmp_path / "straight", tmp_path / "resumed"
    run(_compose([*TINY, "trainer.max_epochs=2"], straight))

    run(_compose([*TINY, "trainer.max_epochs=1"], resumed))  # stopped early
    # Train on to 2 epochs, and crash in the middle of the second one.
    def crash(self, batch, batch_idx):
        if self.current_epoch == 1 and batch_idx == 2:
            raise RuntimeError("simulated crash")
    monkeypatch.setattr(MTLFaceModule, "on_train_batch_start", crash, raising=False)
    again = [*TINY, f"resume={resumed}", "trainer.max_epochs=2"]
    with pytest.raises(RuntimeError, match="simulated crash"):
        run(_compose(again, tmp_path / "session1"))
    monkeypatch.undo()
    results = run(_compose(again, tmp_path / "session2"))

    # Same weights, same metrics, same history as the run that was never interrupted.
    a, b = _weights(straight), _weights(resumed)
    assert a.keys() == b.keys()
    assert all(torch.equal(a[k], b[k]) for k in a), [k for k in a if not torch.equal(a[k], b[k])]
    assert results == json.loads((straight / "results.json").read_text())
    assert results == json.loads((resumed / "results.json").read_text())
    pd.testing.assert_frame_equal(_epoch_rows(straight), _epoch_rows(resumed))
    # The crashed half epoch's rows were dropped: row for row, the straight run's file.
    a_csv, b_csv = (pd.read_csv(d / "csv" / "metrics.csv") for d in (straight, resumed))
    assert sorted(a_csv.columns) == sorted(b_csv.columns)
    pd.testing.assert_frame_equal(a_csv, b_csv[a_csv.columns])
    # Epochs are written as whole numbers, the replayed rows too (not 0.0 next to 1).
    header, *lines = (resumed / "csv" / "metrics.csv").read_text().splitlines()
    epochs = [line.split(",")[header.split(",").index("epoch")] for line in lines]
    assert all(e == "" or e.isdigit() for e in epochs), sorted(set(epochs))
    # The sessions wrote into the run folder only: their own folders hold no outputs.
    assert not (tmp_path / "session2" / "checkpoints").exists()




def test_resume_takes_the_run_config_and_refuses_to_change_it(tmp_path):
    run_dir = tmp_path / "run"  # a run folder as train.py leaves it: config, last checkpoint
    _compose(["tasks=[age,gender]", "seed=5"], run_dir)
    (run_dir / "checkpoints").mkdir()
    torch.save({"state_dict": {"w": torch.zeros(64)}}, run_dir / "checkpoints" / "last.ckpt")

    def resume(*overrides):
        overrides = [f"resume={run_dir}", *overrides]
        return resume_config(compose_train(overrides, output_dir=tmp_path / "s"), overrides)

    cfg, ckpt = resume("trainer.max_epochs=9")  # one override (+ a limit): the run's config
    assert ckpt == run_dir / "checkpoints" / "last.ckpt"
    assert list(cfg.tasks) == ["age", "gender"] and cfg.seed == 5
    assert cfg.trainer.max_epochs == 9 and cfg.paths.output_dir == str(run_dir)
    resume("seed=5", "tasks=[age,gender]")  # restating the run's values is fine
    with pytest.raises(ValueError, match=r"change it: tasks=\[age\] .*; seed=1 \(run: 5, now: 1\)"):
        resume("tasks=[age]", "seed=1")
    with pytest.raises(ValueError, match=r"debug=fast \(run: absent"):
        resume("debug=fast")  # a @package _global_ group: cannot be checked, so refused

    last = run_dir / "checkpoints" / "last.ckpt"
    last.write_bytes(last.read_bytes()[:-100])  # a copy cut short
    with pytest.raises(UserError, match=r"last.ckpt is damaged .*train the run afresh"):
        resume()
    last.unlink()
    with pytest.raises(FileNotFoundError, match="no checkpoints/last.ckpt to continue from"):
        resume()
    with pytest.raises(FileNotFoundError, match="no run folder with .hydra/config.yaml"):
        resume_config(compose_train([f"resume={tmp_path / 'nope'}"]), [])
