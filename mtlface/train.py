"""``cfg -> instantiate -> Trainer.fit/test -> results.json``: the body of ``python train.py``."""

from __future__ import annotations

import json
import logging
import math
import warnings
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
from hydra.utils import instantiate
from omegaconf import DictConfig

from mtlface.checkpoint import best_checkpoint
from mtlface.staged import init_from_checkpoint, staged_callbacks

log = logging.getLogger(__name__)
# Lightning 2.6 trips over its own torch.utils._pytree deprecation on every fit: noise for users.
warnings.filterwarnings("ignore", message=r".*isinstance\(treespec, LeafSpec\)")

RESULTS_NAME = "results.json"


def build_model(cfg: DictConfig) -> tuple[pl.LightningModule, Any]:
    """The module (backbone + one task per entry of ``cfg.tasks``) and its backbone's input."""
    if not cfg.get("tasks"):
        raise ValueError("no tasks selected: pass e.g. tasks=[age,gender]")
    backbone = instantiate(cfg.backbone)
    tasks = {name: instantiate(task_cfg, in_features=backbone.out_features)
             for name, task_cfg in cfg.tasks.items()}
    for name, task in tasks.items():
        if task.name != name:
            raise ValueError(f"tasks.{name} builds a task named {task.name!r}: the key and the "
                             f"task name must match")
    model = instantiate(cfg.model, backbone=backbone, tasks=tasks,
                        weighting=instantiate(cfg.weighting))
    return model, backbone.input_spec


def build_trainer(cfg: DictConfig) -> pl.Trainer:
    callbacks = [instantiate(c) for c in (cfg.get("callbacks") or {}).values()]
    callbacks += staged_callbacks(cfg.get("freeze_trunk_epochs"))
    loggers = [instantiate(c) for c in (cfg.get("logger") or {}).values()]
    return instantiate(cfg.trainer, callbacks=callbacks, logger=loggers or False)


def _plain(metrics: dict[str, Any]) -> dict[str, float]:
    return {k: float(v) for k, v in sorted(metrics.items())}


def run(cfg: DictConfig) -> dict[str, float]:
    """Train, then validate and test the best checkpoint; write ``results.json`` (keys
    ``<stage>/<task>/<metric>``) into the run folder and return its contents."""
    pl.seed_everything(cfg.seed, workers=True)
    output_dir = Path(cfg.paths.output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    model, input_spec = build_model(cfg)
    if cfg.get("init_from"):  # staged training: trunk + shared heads from an earlier run
        init_from_checkpoint(model, best_checkpoint(cfg.init_from))
    datamodule = instantiate(cfg.data, tasks=list(cfg.tasks), input_spec=input_spec)
    trainer = build_trainer(cfg)
    trainer.fit(model, datamodule=datamodule)

    best = trainer.checkpoint_callback.best_model_path if trainer.checkpoint_callback else ""
    ckpt_path = best or None  # none under fast_dev_run: evaluate the weights in memory
    results = _plain(trainer.validate(model, datamodule=datamodule, ckpt_path=ckpt_path,
                                      verbose=False)[0]) if trainer.num_val_batches else {}
    if cfg.get("test", True):
        results |= _plain(trainer.test(model, datamodule=datamodule, ckpt_path=ckpt_path,
                                       verbose=False)[0])
    (output_dir / RESULTS_NAME).write_text(json.dumps(results, indent=2) + "\n")
    log.info("results written to %s", output_dir / RESULTS_NAME)
    _print_table(results)
    return results


def objective(results: dict[str, float], key: str) -> float:
    """The value a sweeper optimises; NaN when the run produced none (e.g. no val data)."""
    return results.get(key, math.nan)


def _print_table(results: dict[str, float]) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title="results")
    for col in ("key", "value"):
        table.add_column(col)
    for key, value in results.items():
        table.add_row(key, f"{value:.4f}")
    Console().print(table)
