"""``Task``: a head, its masked loss, its metrics and its decoding."""

from __future__ import annotations

from abc import ABC, abstractmethod

from torch import Tensor, nn
from torchmetrics import MetricCollection

from mtlface.heads import HeadFactory, MLPHead


class Task(nn.Module, ABC):
    """A head, its masked loss, its metrics and its decoding. ``score_metric`` names the
    metric (higher is better) that enters the aggregate validation score.

    ``head(in_features, out_features)`` builds the head (from config: a partial of
    ``mtlface.heads.MLPHead``); ``None`` is a linear head."""

    score_metric = "acc"

    def __init__(
        self,
        name: str,
        in_features: int,
        out_features: int,
        head: HeadFactory | None = None,
        loss_weight: float = 1.0,
    ) -> None:
        super().__init__()
        if loss_weight < 0:
            raise ValueError(f"task {name}: loss_weight must be >= 0, got {loss_weight}")
        self.name = name
        self.loss_weight = float(loss_weight)
        self.head = (head or MLPHead)(in_features, out_features)

    def forward(self, features: Tensor) -> Tensor:
        return self.head(features)

    def loss(self, pred: Tensor, target: Tensor) -> Tensor:
        mask = self.labelled(target)
        if not mask.any():
            return pred.sum() * 0.0
        return self._loss(pred[mask], target[mask])

    def update_metrics(self, metrics: MetricCollection, pred: Tensor, target: Tensor) -> None:
        mask = self.labelled(target)
        if mask.any():
            self._update_metrics(metrics, pred[mask].detach(), target[mask])

    @abstractmethod
    def labelled(self, target: Tensor) -> Tensor:
        """Boolean mask of the samples that carry a label for this task."""

    @abstractmethod
    def _loss(self, pred: Tensor, target: Tensor) -> Tensor: ...

    @abstractmethod
    def metrics(self) -> MetricCollection:
        """A fresh collection; the module keeps one per stage."""

    @abstractmethod
    def _update_metrics(self, metrics: MetricCollection, pred: Tensor, target: Tensor) -> None: ...

    @abstractmethod
    def decode(self, pred: Tensor) -> dict[str, Tensor]:
        """Raw task output -> named, human-level predictions."""
