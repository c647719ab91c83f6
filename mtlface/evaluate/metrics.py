"""Metrics from the predictions table (see :mod:`mtlface.evaluate.predictions`), torchmetrics
wherever it has them. Keys follow ``results.json``: ``<split>/<task>/<metric>`` over every
evaluated row, ``<split>/<source>/<task>/<metric>`` per source.

Per task, over the rows labelled for it: ``count``, ``acc`` (exact; age: the bin), ``f1``
(macro over classes present in targets or predictions), ``ece`` (expected calibration error of
the predicted class's probability, equal-width confidence bins; not for age regression); age
also ``acc_1off`` (at most one bin off: with ``age_bins=adience8`` Adience's published 1-off,
at most one adjacent group off) and ``mae`` (years). Tasks with probabilities also have
``nll`` (mean minus log-probability of the labelled class); with a calibration, ``ece`` and
``nll`` are calibrated and ``ece_uncal``, ``nll_uncal`` are the same before calibration.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd
import torch
from torchmetrics.functional import mean_absolute_error
from torchmetrics.functional.classification import (binary_calibration_error,
                                                    multiclass_accuracy,
                                                    multiclass_confusion_matrix,
                                                    multiclass_f1_score)

from mtlface.evaluate.predictions import TaskInfo
from mtlface.tasks import OneOffAccuracy

ECE_BINS = 15  # torchmetrics' default


def labelled_rows(table: pd.DataFrame, task: str) -> pd.DataFrame:
    return table[table[f"{task}_true"].notna()]


def _classes(rows: pd.DataFrame, task: str) -> tuple[torch.Tensor, torch.Tensor]:
    """(predicted, true) class tensors of labelled rows."""
    return (torch.tensor(rows[f"{task}_pred"].to_numpy(np.int64)),
            torch.tensor(rows[f"{task}_true"].to_numpy(np.int64)))


def task_metrics(rows: pd.DataFrame, info: TaskInfo, ece_bins: int = ECE_BINS
                 ) -> dict[str, float]:
    """The metrics of one task over ``rows`` (all labelled for it)."""
    pred, target = _classes(rows, info.name)
    k = info.num_classes
    out = {"count": float(len(rows)),
           "acc": multiclass_accuracy(pred, target, k, average="micro").item(),
           "f1": multiclass_f1_score(pred, target, k, average="macro").item()}
    if info.is_age:
        out["acc_1off"] = OneOffAccuracy()(pred, target).item()
        out["mae"] = mean_absolute_error(
            torch.tensor(rows[f"{info.name}_pred_years"].to_numpy(np.float64)),
            torch.tensor(rows[f"{info.name}_true_years"].to_numpy(np.float64))).item()
    if info.has_probs:
        out["ece"] = binary_calibration_error(*_confidence(rows, info.name), n_bins=ece_bins,
                                              norm="l1").item()
        if f"{info.name}_nll" in rows:
            out["nll"] = float(rows[f"{info.name}_nll"].mean())
        if f"{info.name}_conf_raw" in rows:
            out["ece_uncal"] = binary_calibration_error(
                *_confidence(rows, info.name, "conf_raw"), n_bins=ece_bins, norm="l1").item()
            out["nll_uncal"] = float(rows[f"{info.name}_nll_raw"].mean())
    return out


def _confidence(rows: pd.DataFrame, task: str, column: str = "conf"
                ) -> tuple[torch.Tensor, torch.Tensor]:
    """(confidence of the predicted class, 1 where it is right): top-label calibration is
    binary calibration of these two, whatever the task's read-out. ``column``: ``conf`` or,
    before calibration, ``conf_raw``."""
    pred, target = _classes(rows, task)
    conf = torch.tensor(rows[f"{task}_{column}"].to_numpy(np.float64)).clamp(0, 1)
    return conf, (pred == target).long()


def compute_metrics(table: pd.DataFrame, infos: Mapping[str, TaskInfo], split: str,
                    ece_bins: int = ECE_BINS) -> tuple[dict[str, float], dict[str, str]]:
    """``({key: value}, {task: why it was not evaluated})`` over the whole table and per
    source. A task no row is labelled for is not evaluated (no NaN metrics)."""
    metrics: dict[str, float] = {}
    skipped: dict[str, str] = {}
    for name, info in infos.items():
        rows = labelled_rows(table, name)
        if rows.empty:
            sources = ", ".join(sorted(table["source"].unique()))
            skipped[name] = f"no evaluated {split} row is labelled for {name} (sources: {sources})"
            continue
        metrics |= {f"{split}/{name}/{k}": v for k, v in task_metrics(rows, info, ece_bins).items()}
        for source, part in rows.groupby("source", sort=True):
            metrics |= {f"{split}/{source}/{name}/{k}": v
                        for k, v in task_metrics(part, info, ece_bins).items()}
    return metrics, skipped


def confusion_counts(rows: pd.DataFrame, info: TaskInfo) -> np.ndarray:
    """``[true, predicted]`` counts over labelled ``rows``."""
    return multiclass_confusion_matrix(*_classes(rows, info.name), info.num_classes).numpy()


def reliability(rows: pd.DataFrame, task: str, ece_bins: int = ECE_BINS,
                column: str = "conf") -> pd.DataFrame:
    """Per equal-width confidence bin: ``low, high, count, confidence`` (mean) and
    ``accuracy``, the points of a reliability diagram (torchmetrics keeps its bins inside).
    The count-weighted mean of ``|accuracy - confidence|`` is the ECE."""
    conf, correct = (t.numpy() for t in _confidence(rows, task, column))
    edges = np.linspace(0, 1, ece_bins + 1)
    # [low, high) as torchmetrics bins; a confidence of exactly 1 joins the last bin here
    # (torchmetrics gives it a bin of its own, so the two ECEs differ only if some is 1.0).
    index = np.minimum(np.searchsorted(edges, conf, side="right") - 1, ece_bins - 1)
    frame = pd.DataFrame({"bin": index, "conf": conf, "correct": correct})
    stats = frame.groupby("bin").agg(count=("conf", "size"), confidence=("conf", "mean"),
                                     accuracy=("correct", "mean"))
    stats = stats.reindex(range(ece_bins))
    stats["count"] = stats["count"].fillna(0).astype(int)
    stats.insert(0, "high", edges[1:])
    stats.insert(0, "low", edges[:-1])
    return stats.reset_index(drop=True)


def expected_calibration_error(bins: pd.DataFrame) -> float:
    """ECE from :func:`reliability`'s bins."""
    used = bins[bins["count"] > 0]
    return float((used["count"] * (used["accuracy"] - used["confidence"]).abs()).sum()
                 / used["count"].sum())
