"""Metrics from the predictions table (see :mod:`mtlface.evaluate.predictions`), torchmetrics
wherever it has them. Keys follow ``results.json``: ``<split>/<task>/<metric>`` over every
evaluated row, ``<split>/<source>/<task>/<metric>`` per source.

Per task, over the rows labelled for it: ``count``, the metrics the task's kind defines (the
same collection training logs): class tasks ``acc`` (exact; age: the bin) and ``f1`` (macro);
age also ``acc_1off`` (at most one bin off: with ``age_bins=adience8`` Adience's published
1-off, at most one adjacent group off) and ``mae`` (years); regression ``mae``, ``rmse`` and
``ccc``. Tasks with probabilities add ``ece`` (expected calibration error of the predicted
class's probability, equal-width confidence bins; not for age regression) and ``nll`` (mean
minus log-probability of the labelled class); with a calibration, ``ece`` and
``nll`` are calibrated and ``ece_uncal``, ``nll_uncal`` are the same before calibration.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd
import torch
from torchmetrics.functional.classification import binary_calibration_error

from mtlface.tasks import Task
from mtlface.tasks.classification import table_classes

ECE_BINS = 15  # torchmetrics' default


def labelled_rows(table: pd.DataFrame, task: str) -> pd.DataFrame:
    return table[table[f"{task}_true"].notna()]


def task_metrics(rows: pd.DataFrame, task: Task, ece_bins: int = ECE_BINS) -> dict[str, float]:
    """The metrics of one task over ``rows`` (all labelled for it): ``count``, the task's own
    metrics (:meth:`Task.table_metrics`, the collection it logs in training) and, for a task
    with probabilities, the calibration metrics."""
    out = {"count": float(len(rows)), **task.table_metrics(rows)}
    if task.has_probs:
        out["ece"] = binary_calibration_error(*_confidence(rows, task.name), n_bins=ece_bins,
                                              norm="l1").item()
        if f"{task.name}_nll" in rows:
            out["nll"] = float(rows[f"{task.name}_nll"].mean())
        if f"{task.name}_conf_raw" in rows:
            out["ece_uncal"] = binary_calibration_error(
                *_confidence(rows, task.name, "conf_raw"), n_bins=ece_bins, norm="l1").item()
            out["nll_uncal"] = float(rows[f"{task.name}_nll_raw"].mean())
    return out


def _confidence(rows: pd.DataFrame, task: str, column: str = "conf"
                ) -> tuple[torch.Tensor, torch.Tensor]:
    """(confidence of the predicted class, 1 where it is right): top-label calibration is
    binary calibration of these two, whatever the task's read-out. ``column``: ``conf`` or,
    before calibration, ``conf_raw``."""
    pred, target = table_classes(rows, task)
    conf = torch.tensor(rows[f"{task}_{column}"].to_numpy(np.float64)).clamp(0, 1)
    return conf, (pred == target).long()


def compute_metrics(table: pd.DataFrame, tasks: Mapping[str, Task], split: str,
                    ece_bins: int = ECE_BINS) -> tuple[dict[str, float], dict[str, str]]:
    """``({key: value}, {task: why it was not evaluated})`` over the whole table and per
    source. A task no row is labelled for is not evaluated (no NaN metrics)."""
    metrics: dict[str, float] = {}
    skipped: dict[str, str] = {}
    for name, task in tasks.items():
        rows = labelled_rows(table, name)
        if rows.empty:
            sources = ", ".join(sorted(table["source"].unique()))
            skipped[name] = f"no evaluated {split} row is labelled for {name} (sources: {sources})"
            continue
        metrics |= {f"{split}/{name}/{k}": v for k, v in task_metrics(rows, task, ece_bins).items()}
        for source, part in rows.groupby("source", sort=True):
            metrics |= {f"{split}/{source}/{name}/{k}": v
                        for k, v in task_metrics(part, task, ece_bins).items()}
    return metrics, skipped


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
