"""``cfg -> instantiate -> Trainer.fit/test -> results.json``: the body of ``python train.py``."""

from __future__ import annotations

import json
import logging
import math
import os
import random
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytorch_lightning as pl
import torch
from hydra.core.hydra_config import HydraConfig
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.types import RunMode
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf, open_dict
from pytorch_lightning.loggers import CSVLogger

from mtlface.checkpoint import CHECKPOINT_DIR, LAST, best_checkpoint
from mtlface.staged import init_from_checkpoint, staged_callbacks

log = logging.getLogger(__name__)
# Lightning 2.6 trips over its own torch.utils._pytree deprecation on every fit: noise for users.
warnings.filterwarnings("ignore", message=r".*isinstance\(treespec, LeafSpec\)")

RESULTS_NAME = "results.json"
SAVED_CONFIG = Path(".hydra") / "config.yaml"
# What `resume=<run>` may change: how long the run goes on. Everything else is the run's own.
RESUME_MAY_CHANGE = ("resume", "trainer.max_epochs", "trainer.max_steps", "trainer.max_time")


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


class BatchSeed(pl.Callback):
    """Re-seeds the global RNGs (dropout draws from them) before every training batch from
    ``(seed, epoch, batch)``. Lightning's checkpoints do not hold RNG states, and what draws
    from them between batches differs after a restart (e.g. a DataLoader iterator made before,
    not after, the epoch starts): without this a resumed epoch would draw other dropout masks
    than the uninterrupted run did."""

    def __init__(self, seed: int | None) -> None:
        self.seed = seed

    def on_train_batch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule,
                             batch: Any, batch_idx: int) -> None:
        base = self.seed if self.seed is not None else int(os.environ.get("PL_GLOBAL_SEED", 0))
        entropy = [base, trainer.current_epoch, batch_idx]
        seed = int(np.random.SeedSequence(entropy).generate_state(1)[0])
        random.seed(seed)
        np.random.seed(seed)
        torch.manual_seed(seed)


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
            _keep_csv_history(trainer, ckpt_path)
        trainer.fit(model, datamodule=datamodule, ckpt_path=ckpt_path)

    best = trainer.checkpoint_callback.best_model_path if trainer.checkpoint_callback else ""
    best = best or None  # none under fast_dev_run: evaluate the weights in memory
    results = _plain(trainer.validate(model, datamodule=datamodule, ckpt_path=best,
                                      verbose=False)[0]) if trainer.num_val_batches else {}
    if cfg.get("test", True):
        results |= _plain(trainer.test(model, datamodule=datamodule, ckpt_path=best,
                                       verbose=False)[0])
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
    node's own unset run-time values are never resolved)."""
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


def resume_config(cfg: DictConfig, overrides: Sequence[str]) -> tuple[DictConfig, Path]:
    """The config and checkpoint that continue the run in folder ``cfg.resume``.

    The config is the run's saved ``.hydra/config.yaml``, so ``python train.py resume=<run>``
    alone continues any run, whatever overrides started it; its outputs go into that folder.
    This session's ``overrides`` may change only :data:`RESUME_MAY_CHANGE` (e.g.
    ``trainer.max_epochs=10`` to train on): any other one that gives a key another value than
    the run's stops with the keys named (restating a value the run had is fine)."""
    run_dir = Path(cfg.resume).expanduser().absolute()
    saved_path, ckpt = run_dir / SAVED_CONFIG, run_dir / CHECKPOINT_DIR / LAST
    if not saved_path.is_file():
        raise FileNotFoundError(f"resume={cfg.resume}: no run folder with {SAVED_CONFIG} there "
                                f"(pass a folder train.py made, e.g. outputs/runs/<date>_<time>)")
    if not ckpt.is_file():
        raise FileNotFoundError(f"resume={cfg.resume}: no {CHECKPOINT_DIR}/{LAST} to continue "
                                f"from (it is written at the end of every epoch: the run stopped "
                                f"before its first one ended, or saved none): train it afresh")
    saved = OmegaConf.load(saved_path)
    changed = _changed_keys(cfg, saved, overrides)
    if changed:
        raise ValueError(
            f"resume={cfg.resume} continues that run with its saved config ({saved_path}); "
            f"these overrides change it: {'; '.join(changed)}. Only "
            f"{', '.join(RESUME_MAY_CHANGE[1:])} may change on resume")
    with open_dict(saved):
        for override in _parse(overrides):
            key = override.key_or_group
            if key in RESUME_MAY_CHANGE:
                OmegaConf.update(saved, key, OmegaConf.select(cfg, key), merge=False)
        saved.paths.output_dir = str(run_dir)
    log.info("resuming %s from %s (session log: %s)", run_dir, ckpt,
             HydraConfig.get().runtime.output_dir if HydraConfig.initialized() else "-")
    return saved, ckpt


def _parse(overrides: Sequence[str]):
    return OverridesParser.create().parse_overrides(list(overrides))


_ABSENT = object()


def _raw(cfg: DictConfig, key: str) -> Any:
    """The unresolved value at dotted ``key`` (``_ABSENT`` if none), as plain containers."""
    node: Any = OmegaConf.to_container(cfg, resolve=False)
    for part in key.split("."):
        if isinstance(node, dict) and part in node:
            node = node[part]
        elif isinstance(node, list) and part.isdigit() and int(part) < len(node):
            node = node[int(part)]
        else:
            return _ABSENT
    return node


def _changed_keys(cfg: DictConfig, saved: DictConfig, overrides: Sequence[str]) -> list[str]:
    """``"override (run: a, now: b)"`` for every override that sets another value than the
    run's (a deletion: of a key the run has). A group override compares the group's node; one
    that has none (``@package _global_`` groups such as ``debug``) cannot be checked, so it
    counts as a change."""
    changed = []
    for override in _parse(overrides):
        key = override.key_or_group
        if key in RESUME_MAY_CHANGE:
            continue
        now, then = _raw(cfg, key), _raw(saved, key)
        if override.is_delete() and then is _ABSENT:
            continue  # deleted in the run too
        if now is _ABSENT or now != then:
            changed.append(f"{override.input_line} (run: {_show(then)}, now: {_show(now)})")
    return changed


def _show(value: Any) -> Any:
    return "absent" if value is _ABSENT else value


def _keep_csv_history(trainer: pl.Trainer, ckpt_path: Path) -> None:
    """Lightning's CSVLogger empties an existing ``metrics.csv`` when it starts: replay the
    rows of the steps the checkpoint completed into it, so a resumed run's file holds the
    whole history (rows of the interrupted, repeated epoch are dropped)."""
    csv = next((lg for lg in trainer.loggers if isinstance(lg, CSVLogger)), None)
    path = Path(csv.log_dir) / "metrics.csv" if csv is not None else None
    if not trainer.is_global_zero or path is None or not path.is_file():
        return
    # Rows are logged at the step they belong to (epoch-end ones at the epoch's last step), so
    # the steps the checkpoint completed select them, rows without an epoch (LR) included.
    done = torch.load(ckpt_path, map_location="cpu", weights_only=True)["global_step"]
    rows = pd.read_csv(path)
    rows = rows[rows["step"] < done]
    with warnings.catch_warnings():  # "previous log files will be deleted": not these rows
        warnings.filterwarnings("ignore", message="Experiment logs directory .* not empty")
        writer = csv.experiment  # created here, so the file is emptied now, not later
    for row in rows.to_dict("records"):
        step = int(row.pop("step"))
        writer.log_metrics({k: v for k, v in row.items() if pd.notna(v)}, step)
    log.info("kept %d rows of %s (steps before %d)", len(rows), path, done)


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
