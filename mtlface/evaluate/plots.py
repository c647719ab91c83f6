"""PNG plots of an evaluation, drawn with matplotlib's object API on the Agg canvas (no pyplot
state, no display): a confusion matrix per task, a reliability diagram per task with class
probabilities, for age the predicted against the true years and the MAE by age bin, for a
numeric task the predicted against the true values. Each task kind picks its own
(``Task.save_plots``)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from mtlface.evaluate.metrics import labelled_rows, reliability
from mtlface.tasks import Task

DPI = 110


def _save(fig: Figure, path: Path) -> Path:
    FigureCanvasAgg(fig)
    fig.savefig(path, dpi=DPI)
    return path


def confusion_plot(counts: np.ndarray, classes: Sequence[str], title: str, path: Path) -> Path:
    """Rows normalised to the share of each true class; every cell shows its count."""
    k = len(classes)
    totals = counts.sum(axis=1, keepdims=True)
    shares = np.divide(counts, totals, out=np.zeros(counts.shape), where=totals > 0)
    size = 2.2 + 0.6 * k
    fig = Figure(figsize=(size + 1.2, size), layout="constrained")
    ax = fig.add_subplot()
    image = ax.imshow(shares, cmap="Blues", vmin=0, vmax=1)
    fig.colorbar(image, ax=ax, label="share of the true class", shrink=0.8)
    ticks = range(k)
    ax.set_xticks(ticks, classes, rotation=45, ha="right")
    ax.set_yticks(ticks, [f"{c} ({int(n)})" for c, n in zip(classes, totals[:, 0])])
    ax.set_xlabel("predicted")
    ax.set_ylabel("true (count)")
    for i in range(k):
        for j in range(k):
            ax.text(j, i, f"{int(counts[i, j])}\n{shares[i, j]:.0%}", ha="center", va="center",
                    fontsize=7, color="white" if shares[i, j] > 0.5 else "black")
    ax.set_title(title)
    return _save(fig, path)


def reliability_plot(bins: pd.DataFrame, ece: float, title: str, path: Path,
                     before: tuple[pd.DataFrame, float] | None = None) -> Path:
    """Accuracy against confidence per bin (the diagonal is perfect calibration), and how many
    predictions fall in each bin; with ``before`` (bins and ECE without calibration) the
    uncalibrated diagram on the left, the calibrated one on the right."""
    if before is None:
        fig = Figure(figsize=(5, 5.5), layout="constrained")
        _reliability_axes(*fig.subplots(2, 1, sharex=True, height_ratios=[3, 1]), bins, ece,
                          title)
        return _save(fig, path)
    fig = Figure(figsize=(10, 5.5), layout="constrained")
    axes = fig.subplots(2, 2, sharex=True, height_ratios=[3, 1])
    _reliability_axes(axes[0, 0], axes[1, 0], *before, f"{title}\nbefore calibration")
    _reliability_axes(axes[0, 1], axes[1, 1], bins, ece, f"{title}\nafter calibration")
    return _save(fig, path)


def _reliability_axes(top, bottom, bins: pd.DataFrame, ece: float, title: str) -> None:
    centres = (bins["low"] + bins["high"]) / 2
    width = bins["high"] - bins["low"]
    used = bins["count"] > 0
    top.bar(centres[used], bins["accuracy"][used], width=width[used], edgecolor="black",
            color="tab:blue", label="accuracy")
    top.bar(centres[used], (bins["confidence"] - bins["accuracy"])[used],
            bottom=bins["accuracy"][used], width=width[used], color="tab:red", alpha=0.3,
            edgecolor="tab:red", label="gap to confidence")
    top.plot([0, 1], [0, 1], "k--", linewidth=1, label="perfect calibration")
    top.set(xlim=(0, 1), ylim=(0, 1), ylabel="accuracy", title=f"{title} (ECE {ece:.3f})")
    top.legend(loc="upper left", fontsize=8)
    bottom.bar(centres, bins["count"], width=width, color="grey", edgecolor="black")
    bottom.set(xlabel="confidence of the predicted class", ylabel="count")


def age_plot(rows: pd.DataFrame, name: str, classes: Sequence[str], edges: Sequence[float],
             title: str, path: Path) -> Path:
    """Predicted against true years, and the MAE among the rows of each true age bin."""
    true = rows[f"{name}_true_years"].to_numpy(np.float64)
    pred = rows[f"{name}_pred_years"].to_numpy(np.float64)
    true_bin = rows[f"{name}_true"].to_numpy(np.int64)
    fig = Figure(figsize=(10, 4.5), layout="constrained")
    left, right = fig.subplots(1, 2)
    left.scatter(true, pred, s=6, alpha=0.4)
    hi = max(float(np.nanmax(true)), float(np.nanmax(pred)), edges[-1])
    lo = min(0.0, float(np.nanmin(pred)))
    left.plot([lo, hi], [lo, hi], "k--", linewidth=1)
    for edge in edges[1:-1]:
        left.axvline(edge, color="grey", linewidth=0.5)
    left.set(xlabel="true age (years)", ylabel="predicted age (years)",
             title=f"{title}: MAE {np.abs(pred - true).mean():.2f} years")
    counts = np.bincount(true_bin, minlength=len(classes))
    sums = np.bincount(true_bin, weights=np.abs(pred - true), minlength=len(classes))
    mae = np.divide(sums, counts, out=np.full(len(counts), np.nan), where=counts > 0)
    x = np.arange(len(classes))
    right.bar(x, np.nan_to_num(mae), color="tab:orange", edgecolor="black")
    for i, (m, n) in enumerate(zip(mae, counts)):
        right.text(i, 0 if np.isnan(m) else m, f"n={n}", ha="center", va="bottom", fontsize=7)
    right.set_xticks(x, classes, rotation=45, ha="right")
    right.set(xlabel="true age bin", ylabel="MAE (years)", title="MAE by age bin")
    return _save(fig, path)


def value_plot(true: np.ndarray, pred: np.ndarray, unit: str, title: str, path: Path) -> Path:
    """Predicted against true values of a numeric task, with the identity line."""
    fig = Figure(figsize=(5, 5), layout="constrained")
    ax = fig.add_subplot()
    ax.scatter(true, pred, s=6, alpha=0.4)
    lo = float(min(np.nanmin(true), np.nanmin(pred)))
    hi = float(max(np.nanmax(true), np.nanmax(pred)))
    ax.plot([lo, hi], [lo, hi], "k--", linewidth=1)
    ax.set(xlabel=f"true {unit}", ylabel=f"predicted {unit}",
           title=f"{title}: MAE {np.abs(pred - true).mean():.3f}")
    return _save(fig, path)


def save_plots(table: pd.DataFrame, tasks: Mapping[str, Task], metrics: Mapping[str, float],
               split: str, folder: Path, ece_bins: int) -> list[Path]:
    """Every plot of the evaluated tasks into ``folder``: each task's own (confusion matrix,
    age or value scatter) and, for tasks with probabilities, a reliability diagram."""
    written = []
    for name, task in tasks.items():
        rows = labelled_rows(table, name)
        if rows.empty:
            continue
        label = f"{name} ({split}, n={len(rows)})"
        written += task.save_plots(rows, metrics, split, label, folder)
        if task.has_probs:
            before = ((reliability(rows, name, ece_bins, "conf_raw"),
                       metrics[f"{split}/{name}/ece_uncal"])
                      if f"{name}_conf_raw" in rows else None)
            written.append(reliability_plot(reliability(rows, name, ece_bins),
                                            metrics[f"{split}/{name}/ece"], label,
                                            folder / f"reliability_{name}.png", before))
    return written
