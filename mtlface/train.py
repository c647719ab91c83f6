"""``cfg -> instantiate -> Trainer.fit/test -> results.json``: the body of ``python train.py``."""

from __future__ import annotations

import json
import logging
import math
import warnings
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from mtlface.checkpoint import best_checkpoint
from mtlface.resume import BatchSeed, keep_csv_history, resume_config
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
    callbacks.append(BatchSeed(cfg.seed))
    loggers = [instantiate(c) for c in (cfg.get("logger") or {}).values()]
    return instantiate(cfg.trainer, callbacks=callbacks, logger=loggers or False)


def _plain(metrics: dict[str, Any]) -> dict[str, float]:
    return {k: float(v) for k, v in sorted(metrics.items())}


def run(cfg: DictConfig) -> dict[str, float]:
    """Train, then validate and test the best checkpoint; write ``results.json`` (keys
    ``<stage>/<task>/<metric>``) into the run folder and return its contents.

    ``resume=<run folder>`` continues that run from ``checkpoints/last.ckpt`` with its saved
    config (see :func:`resume_config`), writing into the same folder."""
    ckpt_path = None
    if cfg.get("resume"):
        overrides = HydraConfig.get().overrides.task if HydraConfig.initialized() else []
        cfg, ckpt_path = resume_config(cfg, overrides)
    _check_required(cfg)
    pl.seed_everything(cfg.seed, workers=True)
    output_dir = Path(cfg.paths.output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    model, input_spec = build_model(cfg)
    if cfg.get("init_from") and ckpt_path is None:  # staged training: trunk + shared heads
        init_from_checkpoint(model, best_checkpoint(cfg.init_from))
    datamodule = instantiate(cfg.data, tasks=list(cfg.tasks), input_spec=input_spec)
    trainer = build_trainer(cfg)
    _check_launch(trainer)
    with warnings.catch_warnings():
        if ckpt_path is not None:  # resuming into the run's own folders is the point
            warnings.filterwarnings("ignore", message="Checkpoint directory .* is not empty")
            keep_csv_history(trainer, ckpt_path)
        trainer.fit(model, datamodule=datamodule, ckpt_path=ckpt_path)

    best = trainer.checkpoint_callback.best_model_path if trainer.checkpoint_callback else ""
    best = best or None  # none under fast_dev_run: evaluate the weights in memory
    results = _plain(trainer.validate(model, datamodule=datamodule, ckpt_path=best,
                                      verbose=False)[0]) if trainer.num_val_batches else {}
    if cfg.get("test", True):
        results |= _plain(trainer.test(model, datamodule=datamodule, ckpt_path=best,
                                       verbose=False)[0])
    # "<stage>/<task>/labelled": 0 for a task that stage never evaluated (a run table shows it)
    results = _plain(results | model.unseen_task_results())
    if trainer.is_global_zero:  # under DDP every process holds the same (reduced) results
        (output_dir / RESULTS_NAME).write_text(json.dumps(results, indent=2) + "\n")
        log.info("results written to %s", output_dir / RESULTS_NAME)
        _print_table(results)
    return results


def _check_required(cfg: DictConfig) -> None:
    """Stop before any work when a ``???`` value is unset, or a key a recipe lists under
    ``required`` (e.g. stage 2's ``init_from``) is null: ``cfg.get`` would read it as None and
    the run would silently train something else."""
    missing = _missing_keys(cfg)
    missing += [k for k in cfg.get("required") or () if OmegaConf.select(cfg, k) is None]
    if missing:
        raise ValueError(f"required value(s) not set: {', '.join(sorted(missing))} (pass e.g. "
                         f"{sorted(missing)[0]}=<value> on the command line)")


def _missing_keys(node: Any, prefix: str = "") -> list[str]:
    """Dotted keys holding a literal ``???``, from the unresolved container (so the hydra
    node's own unset run-time values are never resolved). Not ``OmegaConf.missing_keys``: it
    raises on an interpolation to a ``???`` (stage 2's ``init_from: ${required.init_from}``)
    before the clear message below can be given."""
    if isinstance(node, DictConfig):
        node = OmegaConf.to_container(node, resolve=False)
    if not isinstance(node, dict):
        return []
    found = []
    for key, value in node.items():
        if value == "???":
            found.append(f"{prefix}{key}")
        elif key != "hydra" or prefix:
            found += _missing_keys(value, f"{prefix}{key}.")
    return found


def _check_launch(trainer: pl.Trainer) -> None:
    """Lightning starts the other DDP processes by re-running the command line, which inside a
    multirun job would start the whole sweep again: refuse that one combination clearly."""
    environment = getattr(trainer.strategy, "cluster_environment", None)
    if (trainer.world_size > 1 and environment is not None
            and not environment.creates_processes_externally and HydraConfig.initialized()
            and HydraConfig.get().mode == RunMode.MULTIRUN):
        raise ValueError(f"a sweep (-m) job cannot start its own {trainer.world_size} DDP "
                         f"processes: sweep with hydra/launcher=slurm (srun starts them), or "
                         f"run DDP jobs one at a time without -m")


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
