"""Tasks: each owns its head, its masked loss, its metrics and its decoding.

Targets arrive with a sentinel where a sample is not labelled for the task (-1 for classes,
NaN for ages). Losses average over labelled samples only; a batch with none gives a finite
zero that keeps the autograd graph whole (so DDP finds every parameter used).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torchmetrics import MeanAbsoluteError, Metric, MetricCollection
from torchmetrics.classification import MulticlassAccuracy, MulticlassF1Score

from mtlface.heads import MLPHead
from mtlface.labels import LABELS, MISSING_CLASS


class AgeBins:
    """Age groups: bin ``i`` holds ages in ``[edges[i], edges[i+1])``; ages below the first
    edge go to bin 0 and ages from the last edge up go to the last bin. ``centres`` are the
    ages a bin stands for when computing an expected age (default: bin midpoints)."""

    def __init__(self, edges: Sequence[float], centres: Sequence[float] | None = None) -> None:
        edges = [float(e) for e in edges]
        if len(edges) < 3 or any(b <= a for a, b in zip(edges, edges[1:])):
            raise ValueError(f"age bin edges must be >= 3 strictly increasing values "
                             f"(>= 2 bins), got {edges}")
        if centres is None:
            centres = [(a + b) / 2 for a, b in zip(edges, edges[1:])]
        centres = [float(c) for c in centres]
        if len(centres) != len(edges) - 1:
            raise ValueError(f"need one centre per bin ({len(edges) - 1}), got {len(centres)}")
        self.edges = edges
        self.centres = centres

    @classmethod
    def uniform(cls, num_bins: int, low: float = 0.0, high: float = 80.0) -> AgeBins:
        """``num_bins`` equal-width bins over ``[low, high)``."""
        if int(num_bins) < 2:
            raise ValueError(f"num_bins must be >= 2, got {num_bins}")
        if high <= low:
            raise ValueError(f"age range must have high > low, got [{low}, {high})")
        step = (high - low) / num_bins
        return cls([low + i * step for i in range(int(num_bins) + 1)])

    @classmethod
    def from_groups(cls, groups: Sequence[Sequence[float]]) -> AgeBins:
        """Labelled age groups such as Adience's ``(0, 2) (4, 6) ...``: an age between two
        groups goes to the nearer one, and a group stands for its midpoint."""
        groups = [(float(lo), float(hi)) for lo, hi in groups]
        if any(hi < lo for lo, hi in groups):
            raise ValueError(f"each age group needs low <= high, got {groups}")
        inner = [(a_hi + b_lo) / 2 for (_, a_hi), (b_lo, _) in zip(groups, groups[1:])]
        return cls([groups[0][0], *inner, groups[-1][1]], [(lo + hi) / 2 for lo, hi in groups])

    @property
    def num_bins(self) -> int:
        return len(self.centres)

    @property
    def names(self) -> list[str]:
        return [f"{a:g}-{b:g}" for a, b in zip(self.edges, self.edges[1:])]

    def bucketize(self, years: Tensor) -> Tensor:
        inner = torch.tensor(self.edges[1:-1], dtype=years.dtype, device=years.device)
        return torch.bucketize(years, inner, right=True)

    def expected_years(self, logits: Tensor) -> Tensor:
        centres = torch.tensor(self.centres, dtype=logits.dtype, device=logits.device)
        return logits.softmax(dim=-1) @ centres

    def __repr__(self) -> str:
        return f"AgeBins(edges={self.edges}, centres={self.centres})"


class OneOffAccuracy(Metric):
    """Share of predictions at most one bin away from the target (Adience's "1-off")."""

    higher_is_better = True
    full_state_update = False

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.add_state("correct", torch.tensor(0), dist_reduce_fx="sum")
        self.add_state("total", torch.tensor(0), dist_reduce_fx="sum")

    def update(self, pred_bins: Tensor, target_bins: Tensor) -> None:
        self.correct += ((pred_bins - target_bins).abs() <= 1).sum()
        self.total += target_bins.numel()

    def compute(self) -> Tensor:
        return self.correct.float() / self.total.clamp(min=1)


class Task(nn.Module, ABC):
    """A head, its masked loss, its metrics and its decoding. ``score_metric`` names the
    metric (higher is better) that enters the aggregate validation score."""

    score_metric = "acc"

    def __init__(
        self,
        name: str,
        in_features: int,
        out_features: int,
        head_hidden: Sequence[int] = (),
        head_dropout: float = 0.0,
        loss_weight: float = 1.0,
    ) -> None:
        super().__init__()
        if loss_weight < 0:
            raise ValueError(f"task {name}: loss_weight must be >= 0, got {loss_weight}")
        self.name = name
        self.loss_weight = float(loss_weight)
        self.head = MLPHead(in_features, out_features, list(head_hidden), head_dropout)

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
        """Raw head output -> named, human-level predictions."""


class ClassificationTask(Task):
    """Single-label classification over the classes of ``mtlface.labels.LABELS[name]``."""

    def __init__(
        self,
        name: str,
        in_features: int,
        head_hidden: Sequence[int] = (),
        head_dropout: float = 0.0,
        loss_weight: float = 1.0,
        label_smoothing: float = 0.0,
    ) -> None:
        if name not in LABELS or not LABELS[name].is_categorical:
            valid = [n for n, s in LABELS.items() if s.is_categorical]
            raise ValueError(f"unknown classification task {name!r}; valid: {valid}")
        self.class_names = LABELS[name].classes
        super().__init__(name, in_features, len(self.class_names), head_hidden, head_dropout,
                         loss_weight)
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


class AgeTask(Task):
    """Age in years, learnt either as classes over ``bins`` or by regression.

    Either way it reports exact and 1-off accuracy over ``bins`` and the MAE in years
    (classification: the expected age over the bin centres)."""

    def __init__(
        self,
        in_features: int,
        bins: AgeBins,
        regression: bool = False,
        head_hidden: Sequence[int] = (),
        head_dropout: float = 0.0,
        loss_weight: float = 1.0,
        name: str = "age",
    ) -> None:
        super().__init__(name, in_features, 1 if regression else bins.num_bins, head_hidden,
                         head_dropout, loss_weight)
        self.bins = bins
        self.regression = regression
        # Regression predicts a standardised age so the head starts near the middle of the range.
        self.centre = (bins.edges[0] + bins.edges[-1]) / 2
        self.scale = (bins.edges[-1] - bins.edges[0]) / 2

    def labelled(self, target: Tensor) -> Tensor:
        return ~torch.isnan(target)

    def years(self, pred: Tensor) -> Tensor:
        if self.regression:
            return self.centre + self.scale * pred[:, 0]
        return self.bins.expected_years(pred)

    def predicted_bins(self, pred: Tensor) -> Tensor:
        return self.bins.bucketize(self.years(pred)) if self.regression else pred.argmax(dim=-1)

    def _loss(self, pred: Tensor, target: Tensor) -> Tensor:
        if self.regression:
            return F.smooth_l1_loss(pred[:, 0], (target - self.centre) / self.scale, beta=0.1)
        return F.cross_entropy(pred, self.bins.bucketize(target))

    def metrics(self) -> MetricCollection:
        return MetricCollection(
            {
                "acc": MulticlassAccuracy(self.bins.num_bins, average="micro"),
                "acc_1off": OneOffAccuracy(),
                "mae": MeanAbsoluteError(),
            },
            compute_groups=False,
        )

    def _update_metrics(self, metrics: MetricCollection, pred: Tensor, target: Tensor) -> None:
        target_bins = self.bins.bucketize(target)
        pred_bins = self.predicted_bins(pred)
        metrics["acc"].update(pred_bins, target_bins)
        metrics["acc_1off"].update(pred_bins, target_bins)
        metrics["mae"].update(self.years(pred), target)

    def decode(self, pred: Tensor) -> dict[str, Tensor]:
        out = {"years": self.years(pred), "bin": self.predicted_bins(pred)}
        if not self.regression:
            out["probs"] = pred.softmax(dim=-1)
        return out
