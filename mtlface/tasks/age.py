"""Age: one task whose target form and read-out are config (``tasks.age.readout``)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import replace
from enum import StrEnum
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torchmetrics import MeanAbsoluteError, Metric, MetricCollection
from torchmetrics.classification import MulticlassAccuracy, MulticlassF1Score

from mtlface.heads import HeadFactory
from mtlface.labels import MISSING_CLASS, LabelSpec
from mtlface.tasks.base import Task, no_head, nullable_classes
from mtlface.tasks.bins import AgeBins
from mtlface.tasks.classification import class_columns, class_probs, confusion, table_classes
from mtlface.tasks.outputs import AgePrediction, ema, mixed_probs

AGE_RANGE = (0.0, 120.0)  # valid ages in years; a manifest value outside is blanked, counted


class AgeReadout(StrEnum):
    """How the age head is trained and read: every read-out gives a bin (for ``acc`` and
    ``acc_1off``) and an age in years (for ``mae`` and the reported age)."""

    ARGMAX = "argmax"          # softmax over bins; age = centre of the most probable bin
    EXPECTED = "expected"      # softmax over bins; age = probability-weighted mean of centres
    ORDINAL = "ordinal"        # CORAL: K-1 rank-consistent logits of "age above bin k"
    REGRESSION = "regression"  # one standardised output; bin = the bin of the predicted age


class SoftmaxAge(nn.Module):
    """Classes over bins, cross-entropy; the bin is the most probable one, the age either that
    bin's centre (``expected=False``) or the expected age over all centres."""

    def __init__(self, bins: AgeBins, expected: bool) -> None:
        super().__init__()
        self.bins, self.expected = bins, expected
        self.head_outputs = bins.num_bins

    def forward(self, head_out: Tensor) -> Tensor:
        return head_out

    def loss(self, pred: Tensor, years: Tensor) -> Tensor:
        return F.cross_entropy(pred, self.bins.bucketize(years))

    def predicted_bins(self, pred: Tensor) -> Tensor:
        return pred.argmax(dim=-1)

    def years(self, pred: Tensor) -> Tensor:
        if self.expected:
            return self.bins.expected_years(pred)
        return _centres(self.bins, pred)[self.predicted_bins(pred)]

    def probs(self, pred: Tensor) -> Tensor:
        return pred.softmax(dim=-1)


class OrdinalAge(nn.Module):
    """CORAL (Cao et al. 2020): the head gives one score g(x) and K-1 learnt thresholds turn it
    into logits of P(bin > k); sharing g makes the K-1 binary decisions rank-consistent.
    Loss: the K-1 binary cross-entropies, summed. Bin = number of P(bin > k) above 0.5;
    age = c_0 + sum_k P(bin > k) (c_{k+1} - c_k), the expected age over the centres."""

    def __init__(self, bins: AgeBins) -> None:
        super().__init__()
        self.bins = bins
        self.head_outputs = 1
        k = bins.num_bins - 1
        # Decreasing thresholds from the start, as in coral-pytorch: the ranks begin ordered.
        self.bias = nn.Parameter(torch.arange(k, 0, -1, dtype=torch.float32) / k)

    def forward(self, head_out: Tensor) -> Tensor:
        return head_out + self.bias  # (B, 1) + (K-1,) -> (B, K-1)

    def loss(self, pred: Tensor, years: Tensor) -> Tensor:
        ranks = torch.arange(pred.shape[-1], device=pred.device)
        above = (self.bins.bucketize(years)[:, None] > ranks).to(pred.dtype)
        return F.binary_cross_entropy_with_logits(pred, above, reduction="none").sum(-1).mean()

    def predicted_bins(self, pred: Tensor) -> Tensor:
        return (pred > 0).sum(dim=-1)

    def years(self, pred: Tensor) -> Tensor:
        centres = _centres(self.bins, pred)
        return centres[0] + pred.sigmoid() @ centres.diff()

    def probs(self, pred: Tensor) -> Tensor:
        """P(bin = k) from the cumulative P(bin > k); clamped where ranks are not yet ordered."""
        above = pred.sigmoid()
        ones, zeros = above.new_ones(len(above), 1), above.new_zeros(len(above), 1)
        return (torch.cat([ones, above], -1) - torch.cat([above, zeros], -1)).clamp(min=0)


class RegressionAge(nn.Module):
    """One output: the age standardised over the bins' range (so the head starts near the
    middle of it), smooth-L1 loss; the bin is the one the predicted age falls into."""

    def __init__(self, bins: AgeBins) -> None:
        super().__init__()
        self.bins = bins
        self.head_outputs = 1
        self.centre = (bins.edges[0] + bins.edges[-1]) / 2
        self.scale = (bins.edges[-1] - bins.edges[0]) / 2

    def forward(self, head_out: Tensor) -> Tensor:
        return head_out

    def loss(self, pred: Tensor, years: Tensor) -> Tensor:
        return F.smooth_l1_loss(pred[:, 0], (years - self.centre) / self.scale, beta=0.1)

    def predicted_bins(self, pred: Tensor) -> Tensor:
        return self.bins.bucketize(self.years(pred))

    def years(self, pred: Tensor) -> Tensor:
        return self.centre + self.scale * pred[:, 0]

    def probs(self, pred: Tensor) -> None:
        return None


def _centres(bins: AgeBins, like: Tensor) -> Tensor:
    return torch.tensor(bins.centres, dtype=like.dtype, device=like.device)


def _readout(readout: str | AgeReadout, regression: bool) -> AgeReadout:
    try:
        readout = AgeReadout(readout)
    except ValueError:
        valid = ", ".join(r.value for r in AgeReadout)
        raise ValueError(f"unknown age readout {readout!r}; valid: {valid}") from None
    if regression:  # `tasks.age.regression=true`: shorthand for readout=regression
        if readout not in (AgeReadout.EXPECTED, AgeReadout.REGRESSION):
            raise ValueError(f"tasks.age.regression=true contradicts readout={readout.value!r}: "
                             f"set one of them")
        return AgeReadout.REGRESSION
    return readout


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


class AgeTask(Task):
    """Age in years (the label), learnt and reported over age groups ``bins``; ``readout``
    (an :class:`AgeReadout` name) sets how it is learnt and read.

    Every read-out reports exact and 1-off accuracy and macro F1 over ``bins`` and the MAE in
    years, so the logged keys (``acc``, ``acc_1off``, ``f1``, ``mae``) are the same whichever
    is chosen. ``regression=True`` is shorthand for ``readout="regression"``; ``value_range``
    is the valid range of a labelled age."""

    kind = "age"
    main_metric = "mae"
    conformal_interval = True

    def __init__(
        self,
        in_features: int,
        bins: AgeBins,
        readout: str | AgeReadout = AgeReadout.EXPECTED,
        regression: bool = False,
        head: HeadFactory | None = None,
        loss_weight: float = 1.0,
        name: str = "age",
        value_range: Sequence[float] = AGE_RANGE,
    ) -> None:
        readout = _readout(readout, regression)
        if readout is AgeReadout.ORDINAL:
            decoder = OrdinalAge(bins)
        elif readout is AgeReadout.REGRESSION:
            decoder = RegressionAge(bins)
        else:
            decoder = SoftmaxAge(bins, expected=readout is AgeReadout.EXPECTED)
        super().__init__(name, in_features, decoder.head_outputs, head, loss_weight)
        self.bins = bins
        self.readout = readout
        self.decoder = decoder
        self.value_range = (float(value_range[0]), float(value_range[1]))

    @classmethod
    def label_spec(cls, name: str, options: Mapping[str, Any]) -> LabelSpec:
        low, high = options.get("value_range") or AGE_RANGE
        return LabelSpec(name, value_range=(float(low), float(high)))

    def _describe(self) -> dict[str, Any]:
        return {"classes": self.bins.names, "edges": self.bins.edges,
                "centres": self.bins.centres, "readout": self.readout.value,
                "value_range": list(self.value_range)}

    @classmethod
    def from_description(cls, desc: Mapping[str, Any]) -> AgeTask:
        return cls(1, AgeBins(desc["edges"], desc["centres"]), readout=desc["readout"],
                   head=no_head, name=desc["name"], value_range=desc["value_range"])

    @property
    def classes(self) -> tuple[str, ...]:
        return tuple(self.bins.names)

    @property
    def has_probs(self) -> bool:
        return not self.regression

    @property
    def regression(self) -> bool:
        return self.readout is AgeReadout.REGRESSION

    def forward(self, features: Tensor) -> Tensor:
        return self.decoder(self.head(features))

    def labelled(self, target: Tensor) -> Tensor:
        return ~torch.isnan(target)

    def years(self, pred: Tensor) -> Tensor:
        return self.decoder.years(pred)

    def point(self, pred: Tensor) -> Tensor:
        """The number a conformal interval is put around: the age in years."""
        return self.years(pred)

    def predicted_bins(self, pred: Tensor) -> Tensor:
        return self.decoder.predicted_bins(pred)

    def _loss(self, pred: Tensor, target: Tensor) -> Tensor:
        return self.decoder.loss(pred, target)

    def metrics(self) -> MetricCollection:
        k = self.bins.num_bins
        return MetricCollection(
            {
                "acc": MulticlassAccuracy(k, average="micro"),
                "acc_1off": OneOffAccuracy(),
                "f1": MulticlassF1Score(k, average="macro"),
                "mae": MeanAbsoluteError(),
            },
            compute_groups=False,
        )

    def _update_metrics(self, metrics: MetricCollection, pred: Tensor, target: Tensor) -> None:
        self._update(metrics, self.predicted_bins(pred), self.bins.bucketize(target),
                     self.years(pred), target)

    @staticmethod
    def _update(metrics: MetricCollection, pred_bins: Tensor, target_bins: Tensor,
                pred_years: Tensor, target_years: Tensor) -> None:
        for key in ("acc", "acc_1off", "f1"):
            metrics[key].update(pred_bins, target_bins)
        metrics["mae"].update(pred_years, target_years)

    def decode(self, pred: Tensor) -> dict[str, Tensor]:
        out = {"years": self.years(pred), "bin": self.predicted_bins(pred)}
        probs = self.decoder.probs(pred)
        if probs is not None:
            out["probs"] = probs
        return out

    def log_probs(self, raw: Tensor) -> Tensor:
        if isinstance(self.decoder, SoftmaxAge):
            return F.log_softmax(raw, dim=-1)
        return super().log_probs(raw)

    def class_targets(self, values: np.ndarray) -> tuple[np.ndarray, Tensor]:
        years = np.asarray(values, dtype=np.float64)
        mask = ~np.isnan(years)
        return mask, self.bins.bucketize(torch.from_numpy(years[mask]))

    def predictions(self, decoded: Mapping[str, Tensor]) -> list[AgePrediction]:
        names, probs = self.bins.names, decoded.get("probs")
        # Not decoded["bin"]: with the expected-age read-out the most probable group can be
        # one the expected age is not in (age 43, group 64+).
        groups = self.bins.bucketize(decoded["years"]).tolist()
        return [AgePrediction(label=names[g], index=g, probs=class_probs(names, probs, i),
                              years=float(decoded["years"][i]), bin=self._bounds(g))
                for i, g in enumerate(groups)]

    def mix(self, older: AgePrediction, newer: AgePrediction, keep: float) -> AgePrediction:
        """Probabilities, years and interval mixed; the group is the one holding the mixed
        years (as :meth:`predictions` shows it), not the most probable one."""
        years = ema(older.years, newer.years, keep)
        group = int(self.bins.bucketize(torch.tensor([years], dtype=torch.float64))[0])
        interval = newer.interval
        if older.interval is not None and newer.interval is not None:
            interval = tuple(round(ema(a, b, keep), 2)
                             for a, b in zip(older.interval, newer.interval))
        return replace(newer, label=self.bins.names[group], index=group, years=years,
                       bin=self._bounds(group), interval=interval,
                       probs=mixed_probs(older.probs, newer.probs, keep))

    def _bounds(self, group: int) -> tuple[float | None, float | None]:
        """``[low, high)`` of an age group, ``None`` where it is open, as its name says
        (:attr:`AgeBins.names`: the last group, and the first when its low edge is above 0)."""
        edges = self.bins.edges
        low = None if group == 0 and edges[0] > 0 else edges[group]
        high = None if group == self.bins.num_bins - 1 else edges[group + 1]
        return low, high

    def label_values(self, decoded: Mapping[str, Tensor]) -> Tensor:
        return decoded["years"]

    def csv_columns(self, interval: bool = False) -> list[str]:
        name = self.name
        return [f"{name}_years", f"{name}_bin", f"{name}_prob",
                *([f"{name}_interval"] if interval else [])]

    # ---- evaluation table: classes are the age groups, plus the years ------------------------
    def table_targets(self, values: np.ndarray) -> dict[str, pd.Series]:
        years = np.asarray(values, dtype=np.float64)
        labelled = ~np.isnan(years)
        bins = np.full(len(years), MISSING_CLASS, dtype=np.int64)
        bins[labelled] = self.bins.bucketize(torch.from_numpy(years[labelled])).numpy()
        return {f"{self.name}_true": nullable_classes(bins, MISSING_CLASS),
                f"{self.name}_true_years": pd.Series(years)}

    def table_predictions(self, decoded: Mapping[str, Tensor]) -> dict[str, np.ndarray]:
        return class_columns(self.name, decoded["bin"], decoded) | {
            f"{self.name}_pred_years": decoded["years"].double().numpy()}

    def table_metrics(self, rows: pd.DataFrame) -> dict[str, float]:
        metrics = self.metrics()
        years = [torch.tensor(rows[f"{self.name}_{c}_years"].to_numpy(np.float64))
                 for c in ("pred", "true")]
        self._update(metrics, *table_classes(rows, self.name), *years)
        return {k: float(v) for k, v in metrics.compute().items()}

    def row_scores(self, rows: pd.DataFrame) -> dict[str, np.ndarray]:
        pred, true = table_classes(rows, self.name)
        error = (rows[f"{self.name}_pred_years"] - rows[f"{self.name}_true_years"]).abs()
        return {"acc": (pred == true).numpy(), "mae": error.to_numpy(np.float64)}

    def save_plots(self, rows: pd.DataFrame, metrics: Mapping[str, float], split: str,
                   label: str, folder: Path) -> list[Path]:
        from mtlface.evaluate.plots import age_plot

        return [confusion(self, rows, metrics, split, label, folder),
                age_plot(rows, self.name, self.classes, self.bins.edges, label,
                         folder / f"{self.name}_years.png")]
