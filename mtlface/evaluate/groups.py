"""Per-group accuracy, to expose bias: every task's accuracy (age: exact bin accuracy, and its
MAE; a numeric task: its MAE) among the rows of each gender and each race, wherever the evaluated rows carry those
labels, with the count of each group and the gap between the best and the worst group."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd

from mtlface.evaluate.metrics import labelled_rows
from mtlface.evaluate.predictions import GROUP_ATTRIBUTES
from mtlface.labels import label
from mtlface.tasks import Task

GROUP_COLUMNS = ["split", "task", "attribute", "group", "count", "acc", "mae"]


def group_table(table: pd.DataFrame, tasks: Mapping[str, Task], split: str,
                attributes: Sequence[str] = GROUP_ATTRIBUTES) -> pd.DataFrame:
    """One row per (task, attribute, group) among the rows labelled for both the task and the
    attribute: ``count`` and the group means of the task's per-row scores (``acc``; ``mae`` in
    the task's units for age and numeric tasks; NaN where the task has no such score)."""
    out = []
    for name, task in tasks.items():
        rows = labelled_rows(table, name)
        for attribute in attributes:
            if attribute not in rows:
                continue
            known = rows[rows[attribute].notna()]
            scores = task.row_scores(known)
            values = known[attribute].to_numpy(np.int64)
            classes = label(attribute).classes
            for value in np.unique(values):
                mine = values == value
                out.append({"split": split, "task": name, "attribute": attribute,
                            "group": classes[value], "count": int(mine.sum()),
                            **{k: float(scores[k][mine].mean()) if k in scores else np.nan
                               for k in ("acc", "mae")}})
    return pd.DataFrame(out, columns=GROUP_COLUMNS)


def group_gaps(groups: pd.DataFrame, min_count: int = 1) -> dict[str, float]:
    """``{<split>/<task>/acc_gap_<attribute>: best - worst group accuracy}`` over the groups
    with at least ``min_count`` rows, where two or more such groups exist."""
    gaps = {}
    big = groups[(groups["count"] >= min_count) & groups["acc"].notna()]  # numbers: no acc
    for (split, task, attribute), part in big.groupby(["split", "task", "attribute"], sort=False):
        if len(part) >= 2:
            gaps[f"{split}/{task}/acc_gap_{attribute}"] = float(part["acc"].max()
                                                                 - part["acc"].min())
    return gaps
