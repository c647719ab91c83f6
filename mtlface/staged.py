"""Staged training: start a run from an earlier run's weights (``init_from=``) and optionally
keep the shared trunk frozen for the first epochs (``freeze_trunk_epochs=``).

The trunk and the heads of the tasks both runs share are copied; heads of new tasks keep their
fresh initialisation. Checkpoints are read with ``torch.load(weights_only=True)``: only tensors
and plain containers, never pickled objects or configs.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import pytorch_lightning as pl
import torch
from pytorch_lightning.callbacks import BaseFinetuning
from torch import Tensor

from mtlface.checkpoint import load_state_dict

log = logging.getLogger(__name__)


class CheckpointMismatchError(ValueError):
    """A checkpoint whose weights do not fit this run's model (a different backbone or head)."""


def checkpoint_tasks(state: Mapping[str, Tensor]) -> list[str]:
    """Task names whose heads are in ``state``, in their order there."""
    return list(dict.fromkeys(k.split(".")[1] for k in state if k.startswith("tasks.")))


@dataclass
class InitReport:
    """What ``init_from_checkpoint`` did."""

    checkpoint: Path
    loaded: list[str] = field(default_factory=list)         # state keys copied into the model
    kept_tasks: list[str] = field(default_factory=list)     # heads that start from the checkpoint
    new_tasks: list[str] = field(default_factory=list)      # heads freshly initialised
    dropped_tasks: list[str] = field(default_factory=list)  # heads in the checkpoint, not here
    skipped: list[str] = field(default_factory=list)        # checkpoint keys not loaded


def _check_part(state: Mapping[str, Tensor], own: Mapping[str, Tensor], prefix: str,
                what: str, hint: str) -> None:
    """Same keys and shapes under ``prefix`` in both, or a message naming the differences."""
    theirs = {k: tuple(v.shape) for k, v in state.items() if k.startswith(prefix)}
    ours = {k: tuple(v.shape) for k, v in own.items() if k.startswith(prefix)}
    if not theirs:
        raise CheckpointMismatchError(f"the checkpoint has no {what} weights ({prefix}*): not "
                                      f"an mtlface checkpoint")
    problems = [f"{k}: checkpoint {theirs[k]} vs this model {ours[k]}"
                for k in theirs.keys() & ours.keys() if theirs[k] != ours[k]]
    problems += [f"{k}: only in the checkpoint" for k in theirs.keys() - ours.keys()]
    problems += [f"{k}: only in this model" for k in ours.keys() - theirs.keys()]
    if problems:
        shown = "; ".join(sorted(problems)[:4])
        more = f" (and {len(problems) - 4} more)" if len(problems) > 4 else ""
        raise CheckpointMismatchError(f"the checkpoint's {what} does not match this run's "
                                      f"({hint}): {shown}{more}")


def check_shared_classes(model: pl.LightningModule, path: str | os.PathLike) -> None:
    """The tasks both runs have declare the same classes in the same order: a head's weights
    mean its classes, so a reordered list would load silently and predict the wrong names.
    Checked when the checkpoint lies in a run folder (whose config declares its tasks)."""
    from mtlface.labels import declared_labels
    from mtlface.runs import RunFolder

    run, _ = RunFolder.containing(path)
    if not run.is_run():
        return
    theirs = declared_labels(run.load_config().tasks)
    for name, task in model.tasks.items():
        if name in theirs and theirs[name].classes != task.label.classes:
            raise CheckpointMismatchError(
                f"tasks.{name} declares classes {list(task.label.classes or [])}, the run it "
                f"starts from ({run.path}) {list(theirs[name].classes or [])}: declare the same "
                f"classes in the same order, or leave the task out to train a fresh head")


def init_from_checkpoint(model: pl.LightningModule, path: str | os.PathLike) -> InitReport:
    """Copy the trunk and the shared tasks' heads of checkpoint ``path`` into ``model``.

    The backbone must match exactly (same backbone config); so must each shared head. Weighting
    state is copied where it belongs to shared tasks (``weighting.log_vars.<task>``) or, for
    state indexed by task position, only when both runs have the same task list."""
    report = InitReport(Path(path))
    check_shared_classes(model, path)
    state = load_state_dict(path)
    own = model.state_dict()
    _check_part(state, own, "backbone.", "backbone",
                "use the same backbone.* settings as the run it comes from")
    old, new = checkpoint_tasks(state), list(model.tasks)
    report.kept_tasks = [t for t in new if t in old]
    report.new_tasks = [t for t in new if t not in old]
    report.dropped_tasks = [t for t in old if t not in new]
    for task in report.kept_tasks:
        _check_part(state, own, f"tasks.{task}.", f"{task} head",
                    f"use the same tasks.{task}.*, head.* and age_bins settings, or leave the "
                    f"task out to train a fresh head")

    def wanted(key: str) -> bool:
        parts = key.split(".")
        if parts[0] == "backbone":
            return True
        if parts[0] == "tasks":
            return parts[1] in report.kept_tasks
        if parts[0] == "weighting" and key in own and own[key].shape == state[key].shape:
            named = [p for p in parts[1:] if p in old or p in new]
            return all(p in report.kept_tasks for p in named) if named else old == new
        return False

    selected = {k: v for k, v in state.items() if wanted(k)}
    report.loaded = sorted(selected)
    report.skipped = sorted(state.keys() - selected.keys())
    unexpected = model.load_state_dict(selected, strict=False).unexpected_keys
    assert not unexpected, unexpected  # wanted() only picks keys the model has
    log.info("init_from %s: loaded %d tensors (backbone + heads %s); new heads: %s; heads left "
             "out: %s; keys not loaded: %s", report.checkpoint, len(report.loaded),
             report.kept_tasks, report.new_tasks or "none", report.dropped_tasks or "none",
             report.skipped or "none")
    return report


class FreezeTrunk(BaseFinetuning):
    """Keeps ``pl_module.backbone`` frozen for the first ``epochs`` training epochs: no
    gradients, and its BatchNorm layers in eval mode (they use the statistics they were trained
    with and do not update them), so only the heads learn. From epoch ``epochs`` on the trunk
    trains like the rest.

    The trunk's parameters stay in the optimiser's param group all along (the module builds it
    from all parameters): while frozen their ``.grad`` is None, which optimisers skip (no step,
    no weight decay); once unfrozen they train at the group's learning rate."""

    def __init__(self, epochs: int) -> None:
        super().__init__()
        if isinstance(epochs, bool) or not isinstance(epochs, int) or epochs < 0:
            raise ValueError(f"freeze_trunk_epochs must be an integer >= 0, got {epochs!r}")
        self.epochs = epochs
        self.frozen = False

    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        if stage == "fit":  # validate/test after training leave the trained trunk alone
            super().setup(trainer, pl_module, stage)

    def freeze_before_training(self, pl_module: pl.LightningModule) -> None:
        if not self.epochs:
            return
        if getattr(pl_module.weighting, "aggregates_gradients", False):
            raise ValueError("freeze_trunk_epochs with a gradient-aggregating weighting: the "
                             "aggregation acts on the trunk's gradients, which a frozen trunk "
                             "does not have; use weighting=fixed (or another loss weighting) "
                             "for the frozen epochs")
        # BN goes to eval mode at each epoch start (finetune_function): Lightning captures and
        # restores module modes around validation, and warns about eval modules at fit start.
        self.freeze(pl_module.backbone, train_bn=False)
        self.frozen = True
        log.info("trunk frozen for the first %d epoch(s)", self.epochs)

    def finetune_function(self, pl_module: pl.LightningModule, epoch: int,
                          optimizer: torch.optim.Optimizer) -> None:
        if not self.frozen:
            return
        if epoch < self.epochs:
            pl_module.backbone.eval()  # BN uses its stored statistics and leaves them alone
            return
        self.make_trainable(pl_module.backbone)
        pl_module.backbone.train()
        self.frozen = False
        log.info("epoch %d: trunk unfrozen", epoch)


def staged_callbacks(freeze_trunk_epochs: int | None) -> list[pl.Callback]:
    """The callbacks ``freeze_trunk_epochs`` asks for (none for 0)."""
    return [FreezeTrunk(freeze_trunk_epochs)] if freeze_trunk_epochs else []
