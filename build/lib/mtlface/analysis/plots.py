"""Matplotlib figures of runs, learning curves and sweep summaries (used by notebooks/)."""

from __future__ import annotations

import fnmatch
from collections.abc import Sequence

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.figure import Figure


def expand(patterns: Sequence[str], keys: Sequence[str]) -> list[str]:
    """Keys matching any glob pattern (``val/*/acc``), in pattern order, each once."""
    return list(dict.fromkeys(k for p in patterns for k in sorted(fnmatch.filter(keys, p))))


def _panels(n: int, cols: int = 3, size: tuple[float, float] = (4.0, 3.0)):
    cols = max(1, min(cols, n))
    rows = max(1, -(-n // cols))
    fig, axes = plt.subplots(rows, cols, figsize=(size[0] * cols, size[1] * rows),
                             squeeze=False, layout="constrained")
    for ax in axes.flat[n:]:
        ax.set_visible(False)
    return fig, list(axes.flat[:n])


def plot_curves(curves: pd.DataFrame, keys: Sequence[str] = ("val/*/acc",),
                x: str = "epoch") -> Figure:
    """One panel per logged key (glob patterns allowed), one line per run, against ``x``
    (``epoch`` or ``step``)."""
    names = expand(keys, curves["key"].unique().tolist())
    if not names:
        raise ValueError(f"no logged key matches {list(keys)}; logged: "
                         f"{sorted(curves['key'].unique())}")
    fig, axes = _panels(len(names))
    for ax, key in zip(axes, names):
        for run, points in curves[curves["key"] == key].groupby("run", sort=False):
            points = points.dropna(subset=[x]).groupby(x, as_index=False)["value"].last()
            ax.plot(points[x], points["value"], marker="o", markersize=3, label=run)
        ax.set(title=key, xlabel=x)
    axes[0].legend(fontsize="small")
    return fig


def plot_metrics(runs: pd.DataFrame, metrics: Sequence[str] = ("test/*/acc",)) -> Figure:
    """Final metrics (results.json): one panel per metric, one bar per run (failed runs
    are labelled, with no bar)."""
    names = expand(metrics, [c for c in runs.columns if "/" in c])
    if not names:
        raise ValueError(f"no results.json metric matches {list(metrics)}")
    labels = [r if s == "ok" else f"{r} ({s})" for r, s in zip(runs["run"], runs["status"])]
    fig, axes = _panels(len(names))
    for ax, metric in zip(axes, names):
        ax.bar(range(len(runs)), runs[metric].to_numpy(dtype=float))
        ax.set_xticks(range(len(runs)), labels, rotation=45, ha="right", fontsize="small")
        ax.set_title(metric)
    return fig


def group_labels(summary: pd.DataFrame) -> list[str]:
    keys = [c for c in summary.columns
            if c not in ("n", "failed") and not c.endswith(("_mean", "_std"))]
    return [" ".join(f"{k}={r[k]}" for k in keys) or "all runs"
            for r in summary.to_dict("records")]


def plot_summary(summary: pd.DataFrame, metrics: Sequence[str]) -> Figure:
    """A sweep summary (:func:`mtlface.analysis.summarize`): one panel per metric, one bar per
    row at its mean, error bar = std over the row's repeats, ``n`` (and failures) on top."""
    names = [m for m in metrics if f"{m}_mean" in summary.columns]
    if not names:
        raise ValueError(f"none of {list(metrics)} is in the summary")
    labels = group_labels(summary)
    fig, axes = _panels(len(names))
    where = np.arange(len(summary))
    for ax, metric in zip(axes, names):
        mean = summary[f"{metric}_mean"].to_numpy(dtype=float)
        std = np.nan_to_num(summary[f"{metric}_std"].to_numpy(dtype=float))
        bars = ax.bar(where, np.nan_to_num(mean), yerr=std, capsize=4)
        # "—": the row's runs finished but never logged this metric (e.g. an STL run's other task)
        notes = [("—" if n and np.isnan(m) else f"n={n}") + (f", {f} failed" if f else "")
                 for m, n, f in zip(mean, summary["n"], summary["failed"])]
        ax.bar_label(bars, notes, fontsize="x-small", padding=2)
        ax.set_xticks(where, labels, rotation=30, ha="right", fontsize="small")
        ax.set_title(metric)
    return fig
