"""Errors by age band and group, and whether the age interval keeps its promise.

With an age interval (the run's ``calibration.json``), every evaluated row gets
``[age_lo, age_hi]``; its empirical coverage (share of true ages inside) and mean width are
computed overall, per source, per gender, per race and per age band of the true age. A group
whose coverage is more than :data:`SHORTFALL` under the level is flagged: the interval is too
narrow for it. Age MAE and bin accuracy are broken down the same way."""

from __future__ import annotations

import math
from collections.abc import Mapping

import numpy as np
import pandas as pd

from mtlface.calibration.store import AgeInterval
from mtlface.evaluate.metrics import labelled_rows
from mtlface.evaluate.predictions import GROUP_ATTRIBUTES
from mtlface.labels import label
from mtlface.tasks import Task

AGE_BANDS = (("0-12", 0, 13), ("13-19", 13, 20), ("20-39", 20, 40), ("40-64", 40, 65),
             ("65+", 65, math.inf))
SHORTFALL = 0.05  # flag a group whose coverage is more than 5 points under the level
BAND = "age band"
COLUMNS = ["attribute", "group", "count", "mae", "acc", "coverage", "width", "flagged"]


def age_band(years: np.ndarray) -> np.ndarray:
    """The band name of each age (``""`` for NaN)."""
    out = np.full(len(years), "", dtype=object)
    for name, lo, hi in AGE_BANDS:
        out[(years >= lo) & (years < hi)] = name
    return out


def add_intervals(table: pd.DataFrame, interval: AgeInterval,
                  tasks: Mapping[str, Task]) -> None:
    """``<age>_lo``, ``<age>_hi`` columns from the predicted age (in place); a group-wise
    interval uses each row's predicted group, as the Predictor does for a new face."""
    name = interval.task
    years = table[f"{name}_pred_years"].to_numpy(np.float64)
    q = np.full(len(table), interval.q)
    if interval.groupwise and f"{interval.groupwise}_pred" in table:
        classes = tasks[interval.groupwise].classes
        predicted = [classes[i] for i in table[f"{interval.groupwise}_pred"].to_numpy(np.int64)]
        q = np.array([interval.q_for(g) for g in predicted])
    table[f"{name}_lo"] = np.maximum(0.0, years - q)
    table[f"{name}_hi"] = years + q


def _stats(rows: pd.DataFrame, name: str, has_interval: bool) -> dict[str, float]:
    true = rows[f"{name}_true_years"].to_numpy(np.float64)
    pred = rows[f"{name}_pred_years"].to_numpy(np.float64)
    out = {"count": len(rows), "mae": float(np.abs(pred - true).mean()),
           "acc": float((rows[f"{name}_pred"].to_numpy(np.int64)
                         == rows[f"{name}_true"].to_numpy(np.int64)).mean())}
    if has_interval:
        lo, hi = rows[f"{name}_lo"].to_numpy(), rows[f"{name}_hi"].to_numpy()
        out["coverage"] = float(((true >= lo) & (true <= hi)).mean())
        out["width"] = float((hi - lo).mean())
    return out


def coverage_table(table: pd.DataFrame, name: str, level: float | None) -> pd.DataFrame:
    """One row per group (``all``; each source, gender, race and age band): count, age MAE and
    bin accuracy, and with an interval (``level`` not None) coverage, mean width and whether
    the coverage is more than :data:`SHORTFALL` under ``level``."""
    rows = labelled_rows(table, name)
    has_interval = level is not None and f"{name}_lo" in rows
    out = [{"attribute": "all", "group": "all", **_stats(rows, name, has_interval)}]
    parts = [("source", rows["source"])]
    for attribute in GROUP_ATTRIBUTES:
        if attribute in rows:
            labels = rows[attribute]
            named = labels.map(lambda v, a=attribute: None if pd.isna(v)
                               else label(a).classes[int(v)])
            parts.append((attribute, named))
    parts.append((BAND, pd.Series(age_band(rows[f"{name}_true_years"].to_numpy(np.float64)),
                                  index=rows.index)))
    for attribute, values in parts:
        order = [b for b, _, _ in AGE_BANDS] if attribute == BAND else sorted(
            v for v in values.dropna().unique())
        for group in order:
            mine = rows[values == group]
            if len(mine):
                out.append({"attribute": attribute, "group": str(group),
                            **_stats(mine, name, has_interval)})
    frame = pd.DataFrame(out).reindex(columns=COLUMNS)
    frame["flagged"] = (frame["coverage"] < level - SHORTFALL) if has_interval else False
    return frame


def coverage_metrics(frame: pd.DataFrame, name: str, split: str) -> dict[str, float]:
    """``<split>/<age>/coverage``, ``.../interval_width`` overall; by group
    ``<split>/<age>/by_<attribute>/<group>/<metric>`` (``by_age_band``, ``by_source``, ...)."""
    out = {}
    for _, row in frame.iterrows():
        base = (f"{split}/{name}" if row["attribute"] == "all" else
                f"{split}/{name}/by_{row['attribute'].replace(' ', '_')}/{row['group']}")
        for metric, key in (("coverage", "coverage"), ("width", "interval_width")):
            if not pd.isna(row[metric]):
                out[f"{base}/{key}"] = float(row[metric])
        if row["attribute"] != "all":
            out[f"{base}/count"] = float(row["count"])
            out[f"{base}/mae"] = float(row["mae"])
            out[f"{base}/acc"] = float(row["acc"])
    return out


def worst(frame: pd.DataFrame, min_count: int) -> tuple[dict | None, dict | None]:
    """(worst age band: the highest MAE; worst group among sources, genders and races: the
    lowest coverage, or without an interval the highest MAE), among groups with at least
    ``min_count`` rows (all groups when none has that many)."""
    def pick(part: pd.DataFrame, by: str, largest: bool) -> dict | None:
        if part.empty or part[by].isna().all():
            return None
        big = part[part["count"] >= min_count]
        part = big if not big.empty else part
        row = part.loc[part[by].idxmax() if largest else part[by].idxmin()]
        return row.to_dict()

    bands = frame[frame["attribute"] == BAND]
    groups = frame[~frame["attribute"].isin(["all", BAND])]
    has_interval = not frame["coverage"].isna().all()
    return (pick(bands, "mae", True),
            pick(groups, "coverage", False) if has_interval else pick(groups, "mae", True))
