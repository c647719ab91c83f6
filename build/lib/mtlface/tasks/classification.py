"""Single-label classification tasks: gender, smile, emotion, race."""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor
from torchmetrics import MetricCollection
from torchmetrics.classification import MulticlassAccuracy, MulticlassF1Score

from mtlface.heads import HeadFactory
from mtlface.labels import LABELS, MISSING_CLASS
from mtlface.tasks.base import Task


class ClassificationTask(Task):
    """Single-label classification over the classes of ``mtlface.labels.LABELS[name]``."""

    def __init__(
        self,
        name: str,
        in_features: int,
        head: HeadFactory | None = None,
        loss_weight: float = 1.0,
        label_smoothing: float = 0.0,
    ) -> None:
        if name not in LABELS or not LABELS[name].is_categorical:
            valid = [n for n, s in LABELS.items() if s.is_categorical]
            raise ValueError(f"unknown classification task {name!r}; valid: {valid}")
        self.class_names = LABELS[name].classes
        super().__init__(name, in_features, len(self.class_names), head, loss_weight)
        self.label_smoothing = label_smoothing

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    def labelled(self, target: Tensor) -> Tensor:
        return target != MISSING_CLASS

    def _loss(self, pred: Tensor, target: Tensor) -> Tensor:
        return F.cross_entropy(pred, target, label_smoothing=self.label_smoothing)

    def metrics(self) -> MetricCollection:
        return MetricCollection(
            {
                "acc": MulticlassAccuracy(self.num_classes, average="micro"),
                "f1": MulticlassF1Score(self.num_classes, average="macro"),
            },
            compute_groups=False,
        )

    def _update_metrics(self, metrics: MetricCollection, pred: Tensor, target: Tensor) -> None:
        metrics.update(pred, target)

    def decode(self, pred: Tensor) -> dict[str, Tensor]:
        probs = pred.softmax(dim=-1)
        return {"label": probs.argmax(dim=-1), "probs": probs}
