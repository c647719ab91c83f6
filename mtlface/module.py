"""MTLFaceModule: a shared backbone, one task per head, masked losses, per-task metrics."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import pytorch_lightning as pl
import torch
from torch import Tensor, nn

from mtlface.tasks import Task
from mtlface.weighting import FixedWeighting

Batch = dict[str, Any]  # {"image": Tensor[B,C,H,W], "targets": {task: Tensor[B]}}
STAGES = ("train", "val", "test")


def merge_source_batches(batch: Mapping[str, Batch]) -> Batch:
    """``CombinedLoader`` yields ``{source: batch}``; every source follows the same sample
    contract, so one concatenated batch goes through the network once."""
    parts = [b for b in batch.values() if b is not None]  # a finished source yields None
    tasks = parts[0]["targets"].keys()
    return {
        "image": torch.cat([b["image"] for b in parts]),
        "targets": {t: torch.cat([b["targets"][t] for b in parts]) for t in tasks},
    }


class MTLFaceModule(pl.LightningModule):
    """Outputs are ``{task: tensor}``. Logged keys are ``<stage>/<task>/<metric>``, the per-task
    losses ``<stage>/<task>/loss``, the weighted total ``<stage>/loss`` and the aggregate
    ``<stage>/score``: the mean over tasks of each task's ``score_metric``, defined for any
    task set, which checkpointing and sweeps optimise."""

    def __init__(
        self,
        backbone: nn.Module,
        tasks: Mapping[str, Task],
        optimizer: Callable[..., torch.optim.Optimizer],
        scheduler: Callable[..., torch.optim.lr_scheduler.LRScheduler] | None = None,
        weighting: nn.Module | None = None,
    ) -> None:
        super().__init__()
        if not tasks:
            raise ValueError("MTLFaceModule needs at least one task")
        self.backbone = backbone
        self.tasks = nn.ModuleDict(tasks)
        self.optimizer_factory = optimizer
        self.scheduler_factory = scheduler
        self.weighting = weighting if weighting is not None else FixedWeighting()
        # Attribute names, not a ModuleDict keyed "train": that key clashes with nn.Module.train.
        self.train_metrics = nn.ModuleDict({n: t.metrics() for n, t in tasks.items()})
        self.val_metrics = nn.ModuleDict({n: t.metrics() for n, t in tasks.items()})
        self.test_metrics = nn.ModuleDict({n: t.metrics() for n, t in tasks.items()})

    def forward(self, images: Tensor) -> dict[str, Tensor]:
        features = self.backbone(images)
        return {name: task(features) for name, task in self.tasks.items()}

    def _step(self, batch: Batch, stage: str) -> Tensor:
        images, targets = batch["image"], batch["targets"]
        outputs = self(images)
        metrics = getattr(self, f"{stage}_metrics")
        losses: dict[str, Tensor] = {}
        for name, task in self.tasks.items():
            losses[name] = task.loss_weight * task.loss(outputs[name], targets[name])
            n_labelled = int(task.labelled(targets[name]).sum())
            if n_labelled:  # a task with no label in this batch has nothing to report
                self.log(f"{stage}/{name}/loss", losses[name], batch_size=n_labelled,
                         on_step=False, on_epoch=True)
            task.update_metrics(metrics[name], outputs[name], targets[name])
        total = self.weighting(losses)
        self.log(f"{stage}/loss", total, batch_size=len(images), on_step=stage == "train",
                 on_epoch=True, prog_bar=True)
        return total

    def training_step(self, batch: Mapping[str, Batch] | Batch, batch_idx: int) -> Tensor:
        if "image" not in batch:
            batch = merge_source_batches(batch)
        return self._step(batch, "train")

    def validation_step(self, batch: Batch, batch_idx: int) -> None:
        self._step(batch, "val")

    def test_step(self, batch: Batch, batch_idx: int) -> None:
        self._step(batch, "test")

    def _log_epoch_metrics(self, stage: str) -> None:
        metrics: nn.ModuleDict = getattr(self, f"{stage}_metrics")
        scores = []
        for name, task in self.tasks.items():
            collection = metrics[name]
            if not any(m.update_called for m in collection.values()):
                continue  # no labelled sample for this task in this stage
            values = collection.compute()
            collection.reset()
            self.log_dict({f"{stage}/{name}/{k}": v for k, v in values.items()})
            scores.append(values[task.score_metric])
        if scores:
            self.log(f"{stage}/score", torch.stack(scores).mean(), prog_bar=stage == "val")

    def on_train_epoch_end(self) -> None:
        self._log_epoch_metrics("train")

    def on_validation_epoch_end(self) -> None:
        self._log_epoch_metrics("val")

    def on_test_epoch_end(self) -> None:
        self._log_epoch_metrics("test")

    def configure_optimizers(self) -> Any:
        optimizer = self.optimizer_factory(params=self.parameters())
        if self.scheduler_factory is None:
            return optimizer
        return {"optimizer": optimizer, "lr_scheduler": self.scheduler_factory(optimizer)}
