"""DDP from config: a real 2-process CPU/gloo run of train.py (Lightning re-launches the script
for rank 1), on data built so that one rank's batches lack a task the other rank has."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
import pytorch_lightning as pl
from hydra.utils import instantiate
from omegaconf import OmegaConf

from conftest import ROOT, SMALL_BKNET
from mtlface.checkpoint import load_state_dict
from mtlface.runs import best_checkpoint
from mtlface.data.synthetic import SyntheticFaces
from mtlface.module import merge_source_batches
from mtlface.train import build_model

pytestmark = pytest.mark.integration  # subprocess-heavy: .ci/run's second tier

TASKS = ["age", "gender", "race"]
SPLITS = {"train": 64, "val": 33, "test": 33}  # odd eval splits: a padded sampler would repeat one


class LabelProbe(pl.Callback):
    """Writes, per process, how many labelled samples of each task every batch held: the
    evidence that a rank lacked labels for a task while the other rank had some."""

    def __init__(self, out: str) -> None:
        self.out = Path(out)

    def _record(self, trainer, pl_module, batch, stage: str, batch_idx: int) -> None:
        if "image" not in batch:
            batch = merge_source_batches(batch)
        counts = {name: int(task.labelled(batch["targets"][name]).sum())
                  for name, task in pl_module.tasks.items()}
        record = {"stage": stage, "fn": trainer.state.fn.value, "sanity": trainer.sanity_checking,
                  "epoch": trainer.current_epoch, "batch": batch_idx, "size": len(batch["image"]),
                  **counts}
        with open(self.out / f"rank{trainer.global_rank}.jsonl", "a") as f:
            f.write(json.dumps(record) + "\n")

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        self._record(trainer, pl_module, batch, "train", batch_idx)

    def on_validation_batch_start(self, trainer, pl_module, batch, batch_idx, dataloader_idx=0):
        self._record(trainer, pl_module, batch, "val", batch_idx)

    def on_test_batch_start(self, trainer, pl_module, batch, batch_idx, dataloader_idx=0):
        self._record(trainer, pl_module, batch, "test", batch_idx)


def sparse_race_manifest(data_dir: Path) -> Path:
    """One synthetic source labelled for age, gender and race, with race kept on one row per
    split only: exactly one rank sees that row, so the other rank has no race label in a
    training step and none in a whole val/test epoch."""
    faces = SyntheticFaces(data_dir / "synthetic", seed=0, num_workers=1, sources={
        "utk_like": {"tasks": TASKS, "splits": SPLITS, "image_size": 32, "grey": False}})
    rows = pd.read_csv(faces.prepare())
    keep = rows.groupby("split").head(1).index
    rows.loc[~rows.index.isin(keep), "race"] = None
    path = faces.folder / "manifest.sparse-race.csv"
    rows.to_csv(path, index=False)
    return path


def overrides(manifest: Path, run_dir: Path, probe: Path) -> list[str]:
    return [
        "trainer=ddp", "trainer.devices=2", "trainer.accelerator=cpu", "trainer.max_epochs=2",
        "weighting=uncertainty",  # learnt per-task parameters: unused on a rank without labels
        f"tasks=[{','.join(TASKS)}]", *SMALL_BKNET,
        "~data.manifests.synthetic", f"+data.manifests.sparse={manifest}",
        "data.batch_size=8", "data.eval_batch_size=8", "data.shares=null",
        "~callbacks.progress_bar", "+trainer.enable_progress_bar=false",
        "+callbacks.probe._target_=test_ddp.LabelProbe", f"+callbacks.probe.out={probe}",
        f"hydra.run.dir={run_dir}",
    ]


def one_process_metrics(run_dir: Path, manifest: Path, stage: str) -> dict[str, float]:
    """``stage``'s metrics of the run's best checkpoint, recomputed in this one process."""
    cfg = OmegaConf.load(run_dir / ".hydra" / "config.yaml")
    cfg.data.manifests = {"sparse": str(manifest)}  # no ${hydra:...} outside the app
    model, input_spec = build_model(cfg)
    model.load_state_dict(load_state_dict(best_checkpoint(run_dir)))
    dm = instantiate(cfg.data, tasks=list(cfg.tasks), input_spec=input_spec)
    trainer = pl.Trainer(accelerator="cpu", devices=1, logger=False, enable_progress_bar=False,
                         enable_model_summary=False)
    run = trainer.validate if stage == "val" else trainer.test
    return {k: float(v) for k, v in run(model, datamodule=dm, verbose=False)[0].items()}


def test_two_process_ddp_run_is_exact_with_a_rank_missing_a_task(data_dir, tmp_path):
    manifest = sparse_race_manifest(data_dir)
    run_dir, probe = tmp_path / "run", tmp_path / "probe"
    probe.mkdir()
    env = {**os.environ, "MTLFACE_DATA_DIR": str(data_dir),
           "PYTHONPATH": os.pathsep.join([str(ROOT / "tests"), os.environ.get("PYTHONPATH", "")])}
    start = time.perf_counter()
    # Its own session: a hung collective leaves no rank behind (the whole group is killed).
    proc = subprocess.Popen([sys.executable, "train.py", *overrides(manifest, run_dir, probe)],
                            cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, start_new_session=True)
    try:
        _, stderr = proc.communicate(timeout=300)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        raise
    seconds = time.perf_counter() - start
    assert proc.returncode == 0, stderr[-4000:]
    print(f"2-process DDP run: {seconds:.1f} s")

    # Two processes ran, each on its own half of every split.
    records = {r: [json.loads(line) for line in (probe / f"rank{r}.jsonl").read_text().splitlines()]
               for r in (0, 1)}
    fit_val = {r: [x for x in recs if x["stage"] == "val" and not x["sanity"]
                   and x["fn"] == "fit"] for r, recs in records.items()}
    test = {r: [x for x in recs if x["stage"] == "test"] for r, recs in records.items()}
    assert sum(x["size"] for x in test[0] + test[1]) == SPLITS["test"]  # no sample repeated
    # A training step in which one rank had race labels and the other none...
    train = {r: {(x["epoch"], x["batch"]): x["race"] for x in recs if x["stage"] == "train"}
             for r, recs in records.items()}
    assert train[0].keys() == train[1].keys()
    assert any((train[0][k] > 0) != (train[1][k] > 0) for k in train[0])
    # ...and val epochs in which one rank saw no race label at all.
    val_race = [sum(x["race"] for x in fit_val[r] if x["epoch"] == 1) for r in (0, 1)]
    assert sorted(val_race) == [0, 1]

    results = json.loads((run_dir / "results.json").read_text())
    assert {"val/race/acc", "test/race/acc", "test/race/loss"} <= results.keys()
    # Exact over both ranks: the one-process evaluation of the same checkpoint agrees on every
    # metric and per-task loss (the total <stage>/loss is a mean over batches, which differ).
    for stage in ("val", "test"):
        alone = one_process_metrics(run_dir, manifest, stage)
        keys = [k for k in alone if k.count("/") == 2]
        assert keys and set(keys) <= results.keys()
        assert {k: results[k] for k in keys} == pytest.approx({k: alone[k] for k in keys},
                                                              rel=1e-5, abs=1e-6)
    # Only rank 0 wrote the run's outputs; the launched rank logged into the same folder.
    assert (run_dir / "csv" / "metrics.csv").is_file()
    assert list((run_dir / "checkpoints").glob("epoch*.ckpt"))
