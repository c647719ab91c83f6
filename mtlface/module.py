"""MTLFaceModule: a shared backbone, one task per head, masked losses, per-task metrics."""

from __future__ import annotations

import logging
import warnings
from collections.abc import Callable, Mapping
from typing import Any

import pytorch_lightning as pl
import torch
from torch import Tensor, nn
from torchmetrics import MeanMetric

from mtlface.errors import ConfigError
from mtlface.tasks import Task
from mtlface.weighting import FixedWeighting, LossWeighting

log = logging.getLogger(__name__)

Batch = dict[str, Any]  # {"image": Tensor[B,C,H,W], "targets": {task: Tensor[B]}}
STAGES = ("train", "val", "test")
EVAL_STAGES = ("val", "test")
SCHEDULER_KEYS = {"interval", "frequency", "monitor", "strict"}

# A process that saw no labelled sample of a task still joins that task's metric sync (its
# states are zeros); only a task labelled on no process at all is skipped.
_NO_UPDATE = r"The ``compute`` method of metric \w+ was called before the ``update`` method"


def merge_source_batches(batch: Mapping[str, Batch]) -> Batch:
    """``CombinedLoader`` yields ``{source: batch}``; every source follows the same sample
    contract, so one concatenated batch goes through the network once."""
    parts = [b for b in batch.values() if b is not None]  # a finished source yields None
    tasks = parts[0]["targets"].keys()
    return {
        "image": torch.cat([b["image"] for b in parts]),
        "targets": {t: torch.cat([b["targets"][t] for b in parts]) for t in tasks},
    }


def _mean() -> MeanMetric:
    # A NaN loss makes the epoch's value NaN, as Lightning's own logging did. ("disable" would
    # too, but then MeanMetric drops the weights: torchmetrics#3434, open in 1.9.)
    return MeanMetric(nan_strategy=float("nan"))


class MTLFaceModule(pl.LightningModule):
    """Outputs are ``{task: tensor}``. Logged keys are ``<stage>/<task>/<metric>``, the per-task
    losses ``<stage>/<task>/loss``, the weighted total ``<stage>/loss`` and the aggregate
    ``<stage>/score``: the mean over tasks of each task's ``score_metric``, defined for any
    task set, which checkpointing and sweeps optimise.

    The ``weighting`` combines the losses of the tasks labelled in the batch; a task with no label
    adds an exact zero and stays out of the weighting (a zero gradient would skew learnt weights
    and stall e.g. MGDA). The multiplier each task got is logged as ``train/weight/<task>``. A
    weighting that aggregates per-task gradients (torchjd) does the backward pass itself:
    :meth:`backward` hands it the losses and the shared features.

    Under DDP every epoch value is exact over all processes: metrics and per-task losses are
    torchmetrics states summed across ranks (a task's loss is weighted by its labelled samples
    everywhere), a task is skipped at epoch end only when no process saw a label for it (so
    every rank enters the same collectives), and a batch without labels for a task still puts
    that task's head (and the weighting's parameters) in the graph, so DDP sees every
    parameter used.

    A val or test epoch that saw no labelled sample of a task (evaluation cut short, or a split
    without labels for it) leaves that task out of ``<stage>/score``: that is warned once per
    stage, and :attr:`unseen_tasks` holds, per stage, the tasks its last epoch missed."""

    def __init__(
        self,
        backbone: nn.Module,
        tasks: Mapping[str, Task],
        optimizer: Callable[..., torch.optim.Optimizer],
        scheduler: Callable[..., torch.optim.lr_scheduler.LRScheduler] | None = None,
        weighting: LossWeighting | None = None,
        scheduler_options: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__()
        if not tasks:
            raise ValueError("MTLFaceModule needs at least one task")
        self.backbone = backbone
        self.tasks = nn.ModuleDict(tasks)
        self.optimizer_factory = optimizer
        self.scheduler_factory = scheduler
        # Lightning's lr_scheduler keys: interval (epoch | step), frequency, monitor (e.g.
        # val/age/acc for ReduceLROnPlateau), strict.
        self.scheduler_options = dict(scheduler_options or {})
        unknown = sorted(set(self.scheduler_options) - SCHEDULER_KEYS)
        if unknown:
            raise ValueError(f"model.scheduler_options: unknown key(s) {unknown}; valid: "
                             f"{sorted(SCHEDULER_KEYS)}")
        if self.scheduler_options.get("interval", "epoch") not in ("epoch", "step"):
            raise ValueError(f"model.scheduler_options.interval must be epoch or step, got "
                             f"{self.scheduler_options['interval']!r}")
        weighting = weighting if weighting is not None else FixedWeighting()
        if not isinstance(weighting, LossWeighting):
            raise TypeError(f"weighting must be a mtlface.weighting.LossWeighting, "
                            f"got {type(weighting).__name__}")
        weighting.setup(self.tasks)  # per-task state exists before the optimiser is built
        self.weighting = weighting
        self._backward_inputs: tuple[dict[str, Tensor], Tensor] | None = None
        # Attribute names, not a ModuleDict keyed "train": that key clashes with nn.Module.train.
        self.train_metrics = nn.ModuleDict({n: t.metrics() for n, t in tasks.items()})
        self.val_metrics = nn.ModuleDict({n: t.metrics() for n, t in tasks.items()})
        self.test_metrics = nn.ModuleDict({n: t.metrics() for n, t in tasks.items()})
        # Mean loss over the labelled samples of the epoch, per task (states are not saved).
        self.train_losses = nn.ModuleDict({n: _mean() for n in tasks})
        self.val_losses = nn.ModuleDict({n: _mean() for n in tasks})
        self.test_losses = nn.ModuleDict({n: _mean() for n in tasks})
        self._labelled = {stage: dict.fromkeys(tasks, 0) for stage in STAGES}
        self.unseen_tasks: dict[str, list[str]] = {}  # eval stage -> tasks its last epoch missed
        self._warned_unseen: set[str] = set()  # stages already warned about

    def forward(self, images: Tensor) -> dict[str, Tensor]:
        features = self.backbone(images)
        return {name: task(features) for name, task in self.tasks.items()}

    def _step(self, batch: Batch, stage: str) -> Tensor:
        images, targets = batch["image"], batch["targets"]
        features = self.backbone(images)
        outputs = {name: task(features) for name, task in self.tasks.items()}
        metrics = getattr(self, f"{stage}_metrics")
        epoch_losses = getattr(self, f"{stage}_losses")
        losses: dict[str, Tensor] = {}
        total = features.new_zeros(())
        for name, task in self.tasks.items():
            loss = task.loss_weight * task.loss(outputs[name], targets[name])
            n_labelled = int(task.labelled(targets[name]).sum())
            if n_labelled:
                losses[name] = loss
                # A copy: MeanMetric's NaN handling writes into its input.
                epoch_losses[name].update(loss.detach().clone(), n_labelled)
                self._labelled[stage][name] += n_labelled
            else:  # an exact zero: added so every head stays in the graph (DDP), never weighted
                total = total + loss
            task.update_metrics(metrics[name], outputs[name], targets[name])
        if losses:
            weighted = self.weighting(losses, features)
            total = total + weighted.total
            if stage == "train":
                self._log_weights(weighted.weights)
                if self.weighting.aggregates_gradients:
                    self._backward_inputs = (losses, features)
        if stage == "train" and self._distributed:
            # Learnt per-task weights of a task unlabelled in this process's batch: still used
            # (with a zero gradient), or DDP's reducer would wait for their gradients.
            total = total + sum(p.sum() for p in self.weighting.parameters()) * 0.0
        self.log(f"{stage}/loss", total, batch_size=len(images), on_step=stage == "train",
                 on_epoch=True, prog_bar=True, sync_dist=True)
        return total

    @property
    def _distributed(self) -> bool:
        return self._trainer is not None and self.trainer.world_size > 1

    def _log_weights(self, weights: Mapping[str, Tensor]) -> None:
        # Step values, so only on the steps Lightning writes to the loggers: each self.log
        # costs ~0.3-0.5 ms of CPU whatever it logs (measured: python -m benchmarks
        # --parts overhead, framework cost per step 4.7 -> 3.6 ms), which fast GPU steps feel.
        trainer = self._trainer
        if (trainer is not None and not trainer.fast_dev_run
                and (trainer.global_step + 1) % trainer.log_every_n_steps):
            return
        self.log_dict({f"train/weight/{name}": w for name, w in weights.items()},
                      on_step=True, on_epoch=False)

    def backward(self, loss: Tensor, *args: Any, **kwargs: Any) -> None:
        """Lightning's backward hook: a gradient-aggregating weighting fills ``.grad`` from the
        per-task losses kept by the training step; any other backpropagates ``loss``."""
        if not self.weighting.aggregates_gradients:
            super().backward(loss, *args, **kwargs)
            return
        if self._backward_inputs is None:  # no task labelled in this batch: nothing to learn
            return
        losses, features = self._backward_inputs
        self._backward_inputs = None  # frees the graph whatever happens next
        shared = [p for p in self.backbone.parameters() if p.requires_grad]
        # Lightning divides the returned loss by the accumulation steps: scale every task alike.
        scale = 1.0 / self.trainer.accumulate_grad_batches
        self._log_weights(self.weighting.backward(losses, features, shared, scale=scale))

    def on_fit_start(self) -> None:
        if not self.weighting.aggregates_gradients:
            return
        # It writes .grad directly: no fp16 loss scaler, no DDP gradient all-reduce sees it.
        if self.trainer.precision == "16-mixed":
            raise ValueError("gradient-aggregating weightings bypass fp16 loss scaling: train "
                             "with trainer.precision=bf16-mixed or 32-true")
        if self.trainer.world_size > 1:
            raise ValueError("gradient-aggregating weightings run on one device only "
                             f"(trainer has {self.trainer.world_size} processes)")

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
        epoch_losses: nn.ModuleDict = getattr(self, f"{stage}_losses")
        counts = torch.tensor([self._labelled[stage][name] for name in self.tasks],
                              device=self.device)
        if self._distributed:  # the same decision to skip a task on every process
            counts = self.trainer.strategy.reduce(counts, reduce_op="sum")
        if stage in EVAL_STAGES and not self.trainer.sanity_checking:  # a sanity check is short
            self._note_unseen(stage, [n for n, c in zip(self.tasks, counts.tolist()) if not c])
        scores = []
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=_NO_UPDATE)
            for (name, task), count in zip(self.tasks.items(), counts.tolist()):
                if count:  # else no labelled sample for this task in this stage
                    values = {**metrics[name].compute(), "loss": epoch_losses[name].compute()}
                    self.log_dict({f"{stage}/{name}/{k}": v for k, v in values.items()})
                    scores.append(values[task.score_metric])
                metrics[name].reset()
                epoch_losses[name].reset()
                self._labelled[stage][name] = 0
        if scores:
            self.log(f"{stage}/score", torch.stack(scores).mean(), prog_bar=stage == "val")

    def _note_unseen(self, stage: str, unseen: list[str]) -> None:
        self.unseen_tasks[stage] = unseen
        if not unseen or stage in self._warned_unseen:
            return
        self._warned_unseen.add(stage)
        if self.trainer.is_global_zero:  # the counts are reduced: every rank knows the same
            log.warning("%s saw no labelled sample of task(s) %s: %s/score and %s metrics leave "
                        "them out; %s", stage, ", ".join(unseen), stage, stage,
                        self._unseen_advice(stage))

    def _unseen_advice(self, stage: str) -> str:
        """What gets the unseen tasks evaluated: a longer evaluation where it was cut short,
        else labels in the split."""
        if self.trainer.fast_dev_run:
            return (f"debug=fast (trainer.fast_dev_run) evaluates {int(self.trainer.fast_dev_run)}"
                    f" batch(es): raise data.eval_batch_size or use debug=limit")
        limit = getattr(self.trainer, f"limit_{stage}_batches")
        if not (isinstance(limit, float) and limit == 1.0):  # an int counts batches: 1 is one
            return f"raise trainer.limit_{stage}_batches (now {limit})"
        return (f"the {stage} splits of the selected sources hold no label for them (see "
                f"data.sources, data.split_map)")

    def unseen_task_results(self) -> dict[str, float]:
        """``{"<stage>/<task>/labelled": 0.0}`` for each task in :attr:`unseen_tasks`: numeric
        ``results.json`` keys, so run tables and sweep summaries show which runs did not
        evaluate a task (and stay free of them where every task was evaluated)."""
        return {f"{stage}/{task}/labelled": 0.0
                for stage, tasks in self.unseen_tasks.items() for task in tasks}

    def on_train_epoch_end(self) -> None:
        self._log_epoch_metrics("train")
        self.weighting.on_train_epoch_end()

    def on_validation_epoch_end(self) -> None:
        self._log_epoch_metrics("val")

    def on_test_epoch_end(self) -> None:
        self._log_epoch_metrics("test")

    def configure_optimizers(self) -> Any:
        try:
            optimizer = self.optimizer_factory(params=self.parameters())
        except ValueError as exc:  # torch's own range checks: "Invalid learning rate: -1"
            raise ConfigError(f"model.optimizer: {exc}; pass a valid value, e.g. "
                              f"model.optimizer.lr=0.001") from None
        if self.scheduler_factory is None:
            return optimizer
        return {"optimizer": optimizer,
                "lr_scheduler": {"scheduler": self.scheduler_factory(optimizer),
                                 **self.scheduler_options}}
