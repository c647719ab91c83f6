"""Resuming an interrupted run exactly: ``resume=<run>`` continues from its ``last.ckpt`` with
the run's saved config (guarded against overrides that would change it), keeps its CSV history,
and :class:`BatchSeed` makes every training batch's random draws a function of (seed, epoch,
batch), since Lightning's checkpoints hold no RNG state."""

from __future__ import annotations

import logging
import os
import random
import warnings
import zipfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytorch_lightning as pl
import torch
from hydra.core.hydra_config import HydraConfig
from hydra.core.override_parser.overrides_parser import OverridesParser
from omegaconf import DictConfig, OmegaConf, open_dict
from pytorch_lightning.loggers import CSVLogger

from mtlface.errors import UserError
from mtlface.runs import CHECKPOINT_DIR, CONFIG, LAST, RunFolder

log = logging.getLogger(__name__)

# What `resume=<run>` may change: how long the run goes on. Everything else is the run's own.
RESUME_MAY_CHANGE = ("resume", "trainer.max_epochs", "trainer.max_steps", "trainer.max_time")


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


def resume_config(cfg: DictConfig, overrides: Sequence[str]) -> tuple[DictConfig, Path]:
    """The config and checkpoint that continue the run in folder ``cfg.resume``.

    The config is the run's saved ``.hydra/config.yaml``, so ``python train.py resume=<run>``
    alone continues any run, whatever overrides started it; its outputs go into that folder.
    The resuming command's ``overrides`` may change only :data:`RESUME_MAY_CHANGE` (e.g.
    ``trainer.max_epochs=10`` to train on): any other one that gives a key another value than
    the run's stops with the keys named (restating a value the run had is fine)."""
    run = RunFolder(Path(cfg.resume).expanduser().absolute())
    saved_path, ckpt = run.config, run.last
    if not run.is_run():
        raise FileNotFoundError(f"resume={cfg.resume}: no run folder with {CONFIG} there "
                                f"(pass a folder train.py made, e.g. outputs/runs/<date>_<time>)")
    if not ckpt.is_file():
        raise FileNotFoundError(f"resume={cfg.resume}: no {CHECKPOINT_DIR}/{LAST} to continue "
                                f"from (it is written at the end of every epoch: the run stopped "
                                f"before its first one ended, or saved none): train it afresh")
    if not _readable_checkpoint(ckpt):
        raise UserError(f"resume={cfg.resume}: {ckpt} is damaged (not a whole checkpoint; a "
                        f"copy or a save cut short?): restore it, or train the run afresh")
    saved = run.load_config()
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
        saved.paths.output_dir = str(run.path)
    log.info("resuming %s from %s (session log: %s)", run.path, ckpt,
             HydraConfig.get().runtime.output_dir if HydraConfig.initialized() else "-")
    return saved, ckpt


def _readable_checkpoint(path: Path) -> bool:
    """A torch checkpoint is a zip archive whose directory sits at its end: a file cut short
    has none. (Cheap: reads the directory, not the tensors.)"""
    try:
        with zipfile.ZipFile(path) as archive:
            return bool(archive.namelist())
    except (zipfile.BadZipFile, OSError):
        return False


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


def keep_csv_history(trainer: pl.Trainer, ckpt_path: Path) -> None:
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
        values = {k: v for k, v in row.items() if pd.notna(v)}
        if "epoch" in values:  # pandas reads the column as float (NaN rows): write 1, not 1.0
            values["epoch"] = int(values["epoch"])
        writer.log_metrics(values, step)
    log.info("kept %d rows of %s (steps before %d)", len(rows), path, done)
