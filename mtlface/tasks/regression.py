"""``regression``: a number per face (AffectNet's valence and arousal in [-1, 1], a beauty
score, ...), with an optional valid range."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from torch import Tensor
from torchmetrics import (ConcordanceCorrCoef, MeanAbsoluteError, MeanSquaredError,
                          MetricCollection)

from mtlface.errors import ConfigError
from mtlface.heads import HeadFactory
from mtlface.labels import LabelSpec
from mtlface.tasks.base import Task, no_head
from mtlface.tasks.outputs import ValuePrediction, ema


class RegressionTask(Task):
    """One output, smooth-L1 loss on the target standardised over ``value_range`` (so the head
    starts near its middle; unscaled without a range); ``mae``, ``rmse`` and the concordance
    correlation ``ccc`` (the score: higher is better, as AffectNet reports valence/arousal)."""

    kind = "regression"
    score_metric = "ccc"
    main_metric = "ccc"

    def __init__(
        self,
        name: str,
        in_features: int,
        value_range: Sequence[float] | None = None,
        head: HeadFactory | None = None,
        loss_weight: float = 1.0,
    ) -> None:
        self.value_range = self._check_range(name, value_range)
        super().__init__(name, in_features, 1, head, loss_weight)
        low, high = self.value_range or (-1.0, 1.0)
        self.centre, self.scale = (low + high) / 2, (high - low) / 2

    @staticmethod
    def _check_range(name: str, value_range: Sequence[float] | None
                     ) -> tuple[float, float] | None:
        if value_range is None:
            return None
        try:
            low, high = (float(v) for v in value_range)
        except (TypeError, ValueError):
            low = high = float("nan")
        if not low < high:
            raise ConfigError(f"tasks.{name}: value_range must be [low, high] with low < high, "
                              f"got {value_range!r}")
        return low, high

    @classmethod
    def label_spec(cls, name: str, options: Mapping[str, Any]) -> LabelSpec:
        return LabelSpec(name, value_range=cls._check_range(name, options.get("value_range")))

    def _describe(self) -> dict[str, Any]:
        return {"value_range": list(self.value_range) if self.value_range else None}

    @classmethod
    def from_description(cls, desc: Mapping[str, Any]) -> RegressionTask:
        return cls(desc["name"], 1, desc.get("value_range"), head=no_head)

    # ---- training ----------------------------------------------------------------------------
    def labelled(self, target: Tensor) -> Tensor:
        return ~torch.isnan(target)

    def values(self, pred: Tensor) -> Tensor:
        return self.centre + self.scale * pred[:, 0]

    def _loss(self, pred: Tensor, target: Tensor) -> Tensor:
        return F.smooth_l1_loss(pred[:, 0], (target - self.centre) / self.scale, beta=0.1)

    def metrics(self) -> MetricCollection:
        return MetricCollection({"mae": MeanAbsoluteError(),
                                 "rmse": MeanSquaredError(squared=False),
                                 "ccc": ConcordanceCorrCoef()}, compute_groups=False)

    def _update_metrics(self, metrics: MetricCollection, pred: Tensor, target: Tensor) -> None:
        metrics.update(self.values(pred).float(), target.float())

    # ---- inference ---------------------------------------------------------------------------
    def decode(self, pred: Tensor) -> dict[str, Tensor]:
        return {"value": self.values(pred)}

    def predictions(self, decoded: Mapping[str, Tensor]) -> list[ValuePrediction]:
        return [ValuePrediction(float(v)) for v in decoded["value"].tolist()]

    def label_values(self, decoded: Mapping[str, Tensor]) -> Tensor:
        return decoded["value"]

    def mix(self, older: ValuePrediction, newer: ValuePrediction, keep: float
            ) -> ValuePrediction:
        return ValuePrediction(ema(older.value, newer.value, keep))

    def csv_columns(self, interval: bool = False) -> list[str]:
        return [self.name]

    def class_targets(self, values: np.ndarray) -> tuple[np.ndarray, Tensor]:
        raise TypeError(f"task {self.name} predicts a number: it has no classes")

    # ---- evaluation table --------------------------------------------------------------------
    def table_targets(self, values: np.ndarray) -> dict[str, pd.Series]:
        return {f"{self.name}_true": pd.Series(np.asarray(values, dtype=np.float64))}

    def table_predictions(self, decoded: Mapping[str, Tensor]) -> dict[str, np.ndarray]:
        return {f"{self.name}_pred": decoded["value"].double().numpy()}

    def table_metrics(self, rows: pd.DataFrame) -> dict[str, float]:
        metrics = self.metrics()
        pred, true = (torch.tensor(rows[f"{self.name}_{c}"].to_numpy(np.float64)).float()
                      for c in ("pred", "true"))
        metrics.update(pred, true)
        return {k: float(v) for k, v in metrics.compute().items()}

    def row_scores(self, rows: pd.DataFrame) -> dict[str, np.ndarray]:
        return {"mae": (rows[f"{self.name}_pred"] - rows[f"{self.name}_true"]).abs().to_numpy(
            np.float64)}

    def save_plots(self, rows: pd.DataFrame, metrics: Mapping[str, float], split: str,
                   label: str, folder: Path) -> list[Path]:
        from mtlface.evaluate.plots import value_plot

        return [value_plot(rows[f"{self.name}_true"].to_numpy(np.float64),
                           rows[f"{self.name}_pred"].to_numpy(np.float64), self.name, label,
                           folder / f"{self.name}_values.png")]
