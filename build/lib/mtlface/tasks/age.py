"""Age: one task whose target form and read-out are config (``tasks.age.readout``)."""

from __future__ import annotations

from enum import StrEnum

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torchmetrics import MeanAbsoluteError, Metric, MetricCollection
from torchmetrics.classification import MulticlassAccuracy

from mtlface.heads import HeadFactory
from mtlface.tasks.base import Task
from mtlface.tasks.bins import AgeBins


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
    """Age in years; ``readout`` (an :class:`AgeReadout` name) sets how it is learnt and read.

    Every read-out reports exact and 1-off accuracy over ``bins`` and the MAE in years, so the
    logged keys (``acc``, ``acc_1off``, ``mae``) are the same whichever is chosen.
    ``regression=True`` is shorthand for ``readout="regression"``."""

    def __init__(
        self,
        in_features: int,
        bins: AgeBins,
        readout: str | AgeReadout = AgeReadout.EXPECTED,
        regression: bool = False,
        head: HeadFactory | None = None,
        loss_weight: float = 1.0,
        name: str = "age",
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

    @property
    def regression(self) -> bool:
        return self.readout is AgeReadout.REGRESSION

    def forward(self, features: Tensor) -> Tensor:
        return self.decoder(self.head(features))

    def labelled(self, target: Tensor) -> Tensor:
        return ~torch.isnan(target)

    def years(self, pred: Tensor) -> Tensor:
        return self.decoder.years(pred)

    def predicted_bins(self, pred: Tensor) -> Tensor:
        return self.decoder.predicted_bins(pred)

    def _loss(self, pred: Tensor, target: Tensor) -> Tensor:
        return self.decoder.loss(pred, target)

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
        probs = self.decoder.probs(pred)
        if probs is not None:
            out["probs"] = probs
        return out
