"""``Task``: one kind of task (binary, multiclass, age, regression) owns everything that
depends on its kind: the label it learns from, its head size, masked loss and metrics, its
decoding and typed predictions, its columns in the evaluation table, its description in a run
and an export, and its plots. Code outside ``mtlface.tasks`` calls these and never asks which
kind a task is."""

from __future__ import annotations

import importlib
from abc import ABC, abstractmethod
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np
import pandas as pd
import torch
from torch import Tensor, nn
from torchmetrics import MetricCollection

from mtlface.heads import HeadFactory, MLPHead

if TYPE_CHECKING:
    from mtlface.labels import LabelSpec


def no_head(in_features: int, out_features: int) -> nn.Module:
    """Head of a task rebuilt from its description: it only decodes exported outputs."""
    return nn.Identity()


class Task(nn.Module, ABC):
    """A head, its masked loss, its metrics and its decoding. ``kind`` is the name a run's
    and an export's description give it; ``score_metric`` names the metric (higher is
    better) that enters the aggregate validation score.

    ``head(in_features, out_features)`` builds the head (from config: a partial of
    ``mtlface.heads.MLPHead``); ``None`` is a linear head."""

    kind: ClassVar[str]
    score_metric: ClassVar[str] = "acc"
    # The one metric a summary table shows for the task (the cross-dataset matrix).
    main_metric: ClassVar[str] = "acc"
    # True for a task whose number (an age in years) gets a conformal interval.
    conformal_interval: ClassVar[bool] = False

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

    # ---- declaration -----------------------------------------------------------------------
    @classmethod
    @abstractmethod
    def label_spec(cls, name: str, options: Mapping[str, Any]) -> LabelSpec:
        """The label this kind learns from, out of its declaration (a task config's keys)."""

    @property
    def label(self) -> LabelSpec:
        """The label column this task reads: its kind's ``label_spec`` of its description,
        so a built task and its declaration say the same."""
        return self.label_spec(self.name, self._describe())

    @staticmethod
    def kinds() -> list[str]:
        """``_target_`` paths of the task kinds, for messages."""
        found, todo = [], list(Task.__subclasses__())
        while todo:
            cls = todo.pop(0)
            todo += cls.__subclasses__()
            if "kind" in vars(cls):
                found.append(f"{cls.__module__.rsplit('.', 1)[0]}.{cls.__qualname__}")
        return sorted(found)

    def describe(self) -> dict[str, Any]:
        """What decoding needs, saved with a run's export; :func:`task_from_description`
        rebuilds a task that decodes exactly as this one."""
        cls = type(self)
        return {"name": self.name, "kind": self.kind,
                "target": f"{cls.__module__}.{cls.__qualname__}", **self._describe()}

    @abstractmethod
    def _describe(self) -> dict[str, Any]: ...

    @classmethod
    @abstractmethod
    def from_description(cls, desc: Mapping[str, Any]) -> Task: ...

    @property
    def classes(self) -> tuple[str, ...]:
        """Class names (an age task: its groups); empty for a task that predicts a number."""
        return ()

    @property
    def has_probs(self) -> bool:
        """Whether the head gives class probabilities (calibration, ECE, NLL apply)."""
        return bool(self.classes)

    @property
    def regresses(self) -> bool:
        """Whether the loss regresses a number (a Gaussian likelihood, for the uncertainty
        weighting) rather than classifying."""
        return not self.has_probs

    # ---- training ----------------------------------------------------------------------------
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
        """A fresh collection; the module keeps one per stage, evaluation fills one from the
        predictions table (:meth:`table_metrics`): one definition for both."""

    @abstractmethod
    def _update_metrics(self, metrics: MetricCollection, pred: Tensor, target: Tensor) -> None: ...

    # ---- inference ---------------------------------------------------------------------------
    @abstractmethod
    def decode(self, pred: Tensor) -> dict[str, Tensor]:
        """Raw task output -> named, human-level predictions."""

    @abstractmethod
    def predictions(self, decoded: Mapping[str, Tensor]) -> list:
        """One typed prediction (``mtlface.tasks.outputs``) per row of ``decode``'s output."""

    @abstractmethod
    def label_values(self, decoded: Mapping[str, Tensor]) -> Tensor:
        """The predicted label of each row as a manifest holds it (class index or number)."""

    @abstractmethod
    def csv_columns(self, interval: bool = False) -> list[str]:
        """The columns the predictions' ``csv_cells`` fill (``interval``: with an age
        interval column)."""

    @abstractmethod
    def mix(self, older: Any, newer: Any, keep: float) -> Any:
        """``keep * older + (1 - keep) * newer`` of two predictions of one face (a video
        track's running average and its newest frame), its label re-derived from the mix."""

    def point(self, pred: Tensor) -> Tensor:
        """The number a conformal interval is put around (tasks with ``conformal_interval``)."""
        raise TypeError(f"task {self.name} ({self.kind}) has no conformal interval")

    def log_probs(self, raw: Tensor) -> Tensor:
        """Log class probabilities of raw outputs, for temperature scaling."""
        return self.decode(raw)["probs"].clamp_min(1e-12).log()

    def class_targets(self, values: np.ndarray) -> tuple[np.ndarray, Tensor]:
        """(mask of labelled rows, their class indices) of targets as a dataset holds them."""
        values = np.asarray(values, dtype=np.int64)
        mask = values >= 0
        return mask, torch.from_numpy(values[mask])

    # ---- evaluation table (mtlface.evaluate.predictions) --------------------------------------
    @abstractmethod
    def table_targets(self, values: np.ndarray) -> dict[str, pd.Series]:
        """Table columns of this task's targets as a dataset holds them (-1 / NaN = missing);
        ``<task>_true`` is NA where a row is unlabelled."""

    @abstractmethod
    def table_predictions(self, decoded: Mapping[str, Tensor]) -> dict[str, np.ndarray]:
        """Table columns of decoded outputs: ``<task>_pred`` and, with probabilities,
        ``<task>_conf``, ``<task>_p<k>`` (and ``<task>_conf_raw`` given ``probs_raw``)."""

    @abstractmethod
    def table_metrics(self, rows: pd.DataFrame) -> dict[str, float]:
        """:meth:`metrics` over table rows labelled for this task."""

    @abstractmethod
    def row_scores(self, rows: pd.DataFrame) -> dict[str, np.ndarray]:
        """Per-row scores whose group means make the bias table (``acc``: right or not;
        ``mae``: the absolute error in the task's units)."""

    def save_plots(self, rows: pd.DataFrame, metrics: Mapping[str, float], split: str,
                   label: str, folder: Path) -> list[Path]:
        """This kind's own plots of labelled ``rows`` (reliability diagrams, shared by every
        task with probabilities, are drawn by the evaluation)."""
        return []


def nullable_classes(values: np.ndarray, missing: int = -1) -> pd.Series:
    """Class indices as nullable ``Int64`` (NA where ``missing``)."""
    values = np.asarray(values, dtype=np.int64)
    return pd.Series(pd.array(np.where(values == missing, None, values), dtype="Int64"))


def kind_class(target: Any) -> type[Task] | None:
    """The Task class a ``_target_`` path names, or None (quietly: the caller says which task
    and file; hydra's ``get_class`` would log its own error first)."""
    module, _, name = str(target or "").rpartition(".")
    try:
        cls = getattr(importlib.import_module(module), name) if module else None
    except (ImportError, AttributeError, ValueError):
        return None
    return cls if isinstance(cls, type) and issubclass(cls, Task) else None


def task_from_description(desc: Mapping[str, Any]) -> Task:
    """A task rebuilt from :meth:`Task.describe`, decoding exported outputs exactly as the
    trained one did."""
    cls = kind_class(desc.get("target"))
    if cls is None:
        raise ValueError(f"task {desc.get('name')}: unknown task kind {desc.get('target')!r}")
    return cls.from_description(desc)
