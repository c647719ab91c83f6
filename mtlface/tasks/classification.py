"""Single-label classification over declared classes: ``multiclass`` (emotion, race, FairFace's
seven races, ...) and ``binary`` (gender, smile, eyeglasses, CelebA's attributes)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from torch import Tensor
from torchmetrics import MetricCollection
from torchmetrics.classification import MulticlassAccuracy, MulticlassF1Score

from mtlface.errors import ConfigError
from mtlface.heads import HeadFactory
from mtlface.labels import MISSING_CLASS, LabelSpec
from mtlface.tasks.base import Task, no_head, nullable_classes
from mtlface.tasks.outputs import TaskPrediction, mixed_probs


class MulticlassTask(Task):
    """One class out of ``classes`` (their order is the label convention: index ``k`` in a
    manifest means ``classes[k]``); softmax cross-entropy; ``acc`` (micro) and macro ``f1``."""

    kind = "multiclass"

    def __init__(
        self,
        name: str,
        in_features: int,
        classes: Sequence[str],
        head: HeadFactory | None = None,
        loss_weight: float = 1.0,
        label_smoothing: float = 0.0,
    ) -> None:
        self.class_names = self._check_classes(name, classes)
        super().__init__(name, in_features, len(self.class_names), head, loss_weight)
        self.label_smoothing = label_smoothing

    @classmethod
    def _check_classes(cls, name: str, classes: Sequence[str] | None) -> tuple[str, ...]:
        if classes is None or isinstance(classes, str) or len(classes) < 2:
            raise ConfigError(f"tasks.{name}: a {cls.kind} task declares its classes, a list of "
                              f"two or more names (got {classes!r})")
        if not all(isinstance(c, str) for c in classes):
            raise ConfigError(f"tasks.{name}: class names must be text, got {list(classes)}: "
                              f"quote them in YAML (it reads no/yes as false/true)")
        names = tuple(classes)
        if len(set(names)) != len(names):
            raise ConfigError(f"tasks.{name}: class names repeat in {list(names)}")
        return names

    @classmethod
    def label_spec(cls, name: str, options: Mapping[str, Any]) -> LabelSpec:
        return LabelSpec(name, cls._check_classes(name, options.get("classes")))

    @property
    def classes(self) -> tuple[str, ...]:
        return self.class_names

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    def _describe(self) -> dict[str, Any]:
        return {"classes": list(self.class_names)}

    @classmethod
    def from_description(cls, desc: Mapping[str, Any]) -> MulticlassTask:
        return cls(desc["name"], 1, desc["classes"], head=no_head)

    # ---- training ----------------------------------------------------------------------------
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
        metrics.update(pred, target)  # logits or class indices alike

    # ---- inference ---------------------------------------------------------------------------
    def decode(self, pred: Tensor) -> dict[str, Tensor]:
        probs = pred.softmax(dim=-1)
        return {"label": probs.argmax(dim=-1), "probs": probs}

    def log_probs(self, raw: Tensor) -> Tensor:
        return F.log_softmax(raw, dim=-1)

    def predictions(self, decoded: Mapping[str, Tensor]) -> list[TaskPrediction]:
        names, probs = self.class_names, decoded["probs"]
        return [TaskPrediction(label=names[c], index=c, probs=class_probs(names, probs, i))
                for i, c in enumerate(decoded["label"].tolist())]

    def label_values(self, decoded: Mapping[str, Tensor]) -> Tensor:
        return decoded["label"]

    def mix(self, older: TaskPrediction, newer: TaskPrediction, keep: float) -> TaskPrediction:
        probs = mixed_probs(older.probs, newer.probs, keep)
        best = max(range(self.num_classes), key=lambda k: probs[self.class_names[k]])
        return replace(newer, label=self.class_names[best], index=best, probs=probs)

    def csv_columns(self, interval: bool = False) -> list[str]:
        return [self.name, f"{self.name}_prob"]

    # ---- evaluation table --------------------------------------------------------------------
    def table_targets(self, values: np.ndarray) -> dict[str, pd.Series]:
        return {f"{self.name}_true": nullable_classes(values, MISSING_CLASS)}

    def table_predictions(self, decoded: Mapping[str, Tensor]) -> dict[str, np.ndarray]:
        return class_columns(self.name, decoded["label"], decoded)

    def table_metrics(self, rows: pd.DataFrame) -> dict[str, float]:
        metrics = self.metrics()
        self._update_metrics(metrics, *table_classes(rows, self.name))
        return {k: float(v) for k, v in metrics.compute().items()}

    def row_scores(self, rows: pd.DataFrame) -> dict[str, np.ndarray]:
        pred, true = table_classes(rows, self.name)
        return {"acc": (pred == true).numpy()}

    def save_plots(self, rows: pd.DataFrame, metrics: Mapping[str, float], split: str,
                   label: str, folder: Path) -> list[Path]:
        return [confusion(self, rows, metrics, split, label, folder)]


class BinaryTask(MulticlassTask):
    """Two classes (``classes`` default ``[no, yes]``: index 1 is the attribute present), read
    as a two-way softmax so that a binary attribute decodes, calibrates and exports as any
    other class task."""

    kind = "binary"

    def __init__(
        self,
        name: str,
        in_features: int,
        classes: Sequence[str] = ("no", "yes"),
        head: HeadFactory | None = None,
        loss_weight: float = 1.0,
        label_smoothing: float = 0.0,
    ) -> None:
        super().__init__(name, in_features, classes, head, loss_weight, label_smoothing)

    @classmethod
    def _check_classes(cls, name: str, classes: Sequence[str] | None) -> tuple[str, ...]:
        names = super()._check_classes(name, ("no", "yes") if classes is None else classes)
        if len(names) != 2:
            raise ConfigError(f"tasks.{name}: a binary task has two classes, got {list(names)}: "
                              f"use mtlface.tasks.MulticlassTask for more")
        return names


# ---- table helpers shared by every kind with classes (age groups too) -------------------------
def class_probs(names: Sequence[str], probs: Tensor | None, i: int) -> dict[str, float]:
    if probs is None:
        return {}
    return {name: round(float(p), 6) for name, p in zip(names, probs[i].tolist())}


def table_classes(rows: pd.DataFrame, task: str) -> tuple[Tensor, Tensor]:
    """(predicted, true) class tensors of labelled rows."""
    return (torch.tensor(rows[f"{task}_pred"].to_numpy(np.int64)),
            torch.tensor(rows[f"{task}_true"].to_numpy(np.int64)))


def class_columns(name: str, pred: Tensor, decoded: Mapping[str, Tensor]
                  ) -> dict[str, np.ndarray]:
    """``<name>_pred``, ``_conf`` (NaN without probabilities), ``_p<k>``, ``_conf_raw``."""
    columns = {f"{name}_pred": pred.numpy().astype(np.int64)}
    probs = decoded.get("probs")
    if probs is None:
        columns[f"{name}_conf"] = np.full(len(pred), np.nan)
        return columns
    columns[f"{name}_conf"] = probs.gather(1, pred[:, None])[:, 0].double().numpy()
    columns |= {f"{name}_p{k}": p for k, p in enumerate(probs.double().numpy().T)}
    if "probs_raw" in decoded:
        columns[f"{name}_conf_raw"] = (
            decoded["probs_raw"].gather(1, pred[:, None])[:, 0].double().numpy())
    return columns


def confusion(task: Task, rows: pd.DataFrame, metrics: Mapping[str, float], split: str,
              label: str, folder: Path) -> Path:
    from mtlface.evaluate.plots import confusion_plot
    from torchmetrics.functional.classification import multiclass_confusion_matrix

    counts = multiclass_confusion_matrix(*table_classes(rows, task.name),
                                         len(task.classes)).numpy()
    return confusion_plot(counts, task.classes,
                          f"{label}: acc {metrics[f'{split}/{task.name}/acc']:.3f}",
                          folder / f"confusion_{task.name}.png")
