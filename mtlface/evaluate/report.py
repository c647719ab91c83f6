"""The evaluation as readable markdown: what was evaluated, the metrics per task overall and
per source, what could not be evaluated and why, accuracy by group, and the plots."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd

# Report columns: metric key -> (header, format).
# MAE is in the task's units: years for age.
COLUMNS = {"count": ("n", "{:.0f}"), "acc": ("acc", "{:.3f}"), "f1": ("macro-F1", "{:.3f}"),
           "acc_1off": ("1-off", "{:.3f}"), "mae": ("MAE", "{:.2f}"), "rmse": ("RMSE", "{:.3f}"),
           "ccc": ("CCC", "{:.3f}"), "ece": ("ECE", "{:.3f}")}


def _table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    return ["| " + " | ".join(header) + " |", "|" + "---|" * len(header),
            *("| " + " | ".join(r) + " |" for r in rows)]


def metrics_table(metrics: Mapping[str, float], tasks: Sequence[str], sources: Sequence[str],
                  split: str) -> list[str]:
    """One row per task (all sources pooled) and per source labelling it; a column no task
    has (e.g. CCC without a numeric task) is left out."""
    rows = []
    for task in tasks:
        for source in (None, *sources):
            prefix = f"{split}/{task}" if source is None else f"{split}/{source}/{task}"
            if f"{prefix}/count" not in metrics:
                continue
            cells = [fmt.format(metrics[f"{prefix}/{k}"]) if f"{prefix}/{k}" in metrics else ""
                     for k, (_, fmt) in COLUMNS.items()]
            rows.append([task if source is None else "", source or "**all**", *cells])
    used = [j for j in range(len(COLUMNS)) if any(r[2 + j] for r in rows)]
    headers = [h for h, _ in COLUMNS.values()]
    return _table(["task", "source", *(headers[j] for j in used)],
                  [r[:2] + [r[2 + j] for j in used] for r in rows])


def group_tables(groups: pd.DataFrame, gaps: Mapping[str, float], min_count: int) -> list[str]:
    """Per attribute: one row per task, one column per group (accuracy and count), the gap."""
    lines = []
    for attribute, part in groups.groupby("attribute", sort=False):
        names = list(dict.fromkeys(part["group"]))
        rows = []
        for (split, task), mine in part.groupby(["split", "task"], sort=False):
            by_group = mine.set_index("group")
            cells = []
            for g in names:
                if g not in by_group.index:
                    cells.append("")
                    continue
                r = by_group.loc[g]
                mae = f", MAE {r['mae']:.1f}" if not np.isnan(r["mae"]) else ""
                acc = "" if np.isnan(r["acc"]) else f"{r['acc']:.3f} "
                cells.append(f"{acc}(n={int(r['count'])}{mae})")
            gap = gaps.get(f"{split}/{task}/acc_gap_{attribute}")
            rows.append([task, *cells, "" if gap is None else f"{gap:.3f}"])
        lines += ["", f"By {attribute} (accuracy, n; gap = best - worst group with "
                      f"n >= {min_count}):", "", *_table(["task", *names, "gap"], rows)]
    return lines


def headline(band: Mapping | None, group: Mapping | None, level: float | None) -> list[str]:
    """The report's first lines: the age band and the group the model serves worst."""
    def describe(row: Mapping) -> str:
        parts = [f"MAE {row['mae']:.1f} years", f"age accuracy {row['acc']:.3f}"]
        if level is not None and not pd.isna(row.get("coverage")):
            parts.insert(0, f"interval coverage {row['coverage']:.3f} of {level:g}")
        return f"{', '.join(parts)}, n={int(row['count'])}"

    lines = []
    if band is not None:
        lines.append(f"**Worst age band: {band['group']}** ({describe(band)}).")
    if group is not None:
        by = "" if level is not None else "highest age MAE: "
        lines.append(f"**Worst group: {group['attribute']} {group['group']}** ({by}"
                     f"{describe(group)}).")
    return lines


def calibration_lines(metrics: Mapping[str, float], tasks: Sequence[str],
                      sources: Sequence[str], split: str,
                      temperatures: Mapping[str, float]) -> list[str]:
    """ECE and NLL before and after calibration, per task and source."""
    rows = []
    for task in tasks:
        for source in (None, *sources):
            prefix = f"{split}/{task}" if source is None else f"{split}/{source}/{task}"
            if f"{prefix}/ece_uncal" not in metrics:
                continue
            rows.append([task if source is None else "", source or "**all**",
                         f"{temperatures[task]:.3f}" if source is None else "",
                         f"{metrics[f'{prefix}/count']:.0f}",
                         f"{metrics[f'{prefix}/ece_uncal']:.3f}", f"{metrics[f'{prefix}/ece']:.3f}",
                         f"{metrics[f'{prefix}/nll_uncal']:.3f}", f"{metrics[f'{prefix}/nll']:.3f}"])
    if not rows:
        return []
    return ["", "## Calibration", "",
            "Temperature scaling fitted on the validation split (`calibration.json`): "
            "probabilities are softmax(logits / T); the predictions themselves do not change.",
            "", *_table(["task", "source", "T", "n", "ECE before", "ECE after", "NLL before",
                         "NLL after"], rows)]


def coverage_lines(frame: pd.DataFrame, task: str, level: float | None, min_count: int,
                   note: str | None = None) -> list[str]:
    """The age interval's coverage and width, and MAE and accuracy, by source, gender, race
    and age band; groups more than 5 points under the level are flagged."""
    if frame.empty:
        return []
    has_interval = level is not None and not frame["coverage"].isna().all()
    header = ["by", "group", "n", "MAE (years)", "age acc"]
    if has_interval:
        header += ["coverage", "mean width (years)", ""]
    rows = []
    for _, r in frame.iterrows():
        cells = [r["attribute"], r["group"], f"{int(r['count'])}", f"{r['mae']:.2f}",
                 f"{r['acc']:.3f}"]
        if has_interval:
            small = " (small)" if r["count"] < min_count else ""
            cells += [f"{r['coverage']:.3f}", f"{r['width']:.1f}",
                      f"**under**{small}" if r["flagged"] else ""]
        rows.append(cells)
    title = (f"## Age errors and the {level:.0%} interval" if has_interval
             else "## Age errors by group and age band")
    lines = ["", title, ""]
    if has_interval:
        flagged = frame[frame["flagged"]]
        lines += [f"The interval (predicted age +- q, `calibration.json`) should hold the true "
                  f"age of {level:.0%} of faces; **under** marks a group more than 5 points "
                  f"below that ({len(flagged)} group(s))."]
        if note:
            lines += ["", note]
        lines += [""]
    return lines + _table(header, rows)


def render(*, title: str, facts: Sequence[tuple[str, str]], metrics: Mapping[str, float],
           tasks: Sequence[str], sources: Sequence[str], split: str,
           not_evaluated: Mapping[str, str], notes: Sequence[str], groups: pd.DataFrame,
           gaps: Mapping[str, float], min_count: int, plots: Sequence[Path],
           first_lines: Sequence[str] = (), sections: Sequence[str] = ()) -> str:
    """``first_lines`` go right under the title (the worst band and group); ``sections``
    (calibration, coverage) after the metrics table."""
    lines = [f"# {title}", ""]
    if first_lines:
        lines += [*first_lines, ""]
    lines += [*(f"- {k}: {v}" for k, v in facts), "", f"## Metrics ({split})", ""]
    lines += metrics_table(metrics, [t for t in tasks if t not in not_evaluated], sources, split)
    lines += ["", "acc: exact (age: the bin); 1-off: at most one age bin off (Adience's 1-off "
                  "with age_bins=adience8); ECE: expected calibration error of the predicted "
                  "class's probability."]
    lines += list(sections)
    if not_evaluated or notes:
        lines += ["", "## Not evaluated / notes", ""]
        lines += [f"- {task}: not evaluated: {why}" for task, why in not_evaluated.items()]
        lines += [f"- {note}" for note in notes]
    lines += ["", "## Accuracy by group"]
    if groups.empty:
        lines += ["", "No evaluated row carries a gender or race label."]
    else:
        lines += group_tables(groups, gaps, min_count)
    if plots:
        lines += ["", "## Plots", ""]
        lines += [f"![{p.stem}]({p.name})" for p in plots]
    return "\n".join(lines) + "\n"
