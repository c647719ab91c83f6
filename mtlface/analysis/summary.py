"""A sweep's summary: its runs grouped by the swept parameters, each metric as mean ± std.

Repeat axes (``seed``, ``data.fold`` by default) are what a row averages over, so a k-fold
sweep ``data.fold=0,1,2,3,4`` gives one row and ``age_bins.num_bins=3,5,10 seed=1,2`` three.
An Optuna sweep (its folder holds ``optimization_results.yaml``) gets a trials table instead,
best first, with the best parameters. Failed runs are counted per row, never dropped.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
import yaml

from mtlface.analysis.runs import (
    load_runs,
    metric_columns,
    natural_key,
    override_columns,
)
from mtlface.runs import RunFolder

REPEAT_AXES = ("seed", "data.fold")
OPTUNA_RESULTS = "optimization_results.yaml"  # written by hydra-optuna-sweeper
SUMMARY_CSV, SUMMARY_MD = "summary.csv", "summary.md"


def swept_columns(runs: pd.DataFrame, over: Sequence[str] = REPEAT_AXES) -> list[str]:
    """Override keys whose value differs between runs, less the repeat axes ``over``."""
    return [c for c in override_columns(runs)
            if c not in over and runs[c].astype(str).nunique() > 1]


def default_metrics(runs: pd.DataFrame, objective: str = "val/score") -> list[str]:
    """The objective, then every test metric but the losses."""
    test = [c for c in metric_columns(runs)
            if c.startswith("test/") and not c.endswith("loss")]
    return [c for c in dict.fromkeys([objective, *test]) if c in runs.columns]


def check_metrics(runs: pd.DataFrame, metrics: Sequence[str]) -> list[str]:
    unknown = [m for m in metrics if m not in runs.columns]
    if unknown:
        raise ValueError(f"unknown metric(s) {', '.join(unknown)}; the runs have: "
                         f"{', '.join(metric_columns(runs)) or 'none (no run finished)'}")
    return list(metrics)


def summarize(runs: pd.DataFrame, over: Sequence[str] = REPEAT_AXES,
              metrics: Sequence[str] | None = None) -> pd.DataFrame:
    """One row per combination of swept values: those values, ``n`` (finished runs),
    ``failed`` (runs without results), and ``<metric>_mean`` / ``<metric>_std`` (sample std,
    NaN for a single run) over the finished runs."""
    metrics = check_metrics(runs, metrics) if metrics is not None else metric_columns(runs)
    keys = swept_columns(runs, over)
    groups = runs.groupby(keys, dropna=False, sort=False) if keys else [((), runs)]
    rows = []
    for values, group in groups:
        ok = group[group["status"] == "ok"]
        row: dict[str, Any] = dict(zip(keys, values))
        row |= {"n": len(ok), "failed": len(group) - len(ok)}
        for metric in metrics:
            row[f"{metric}_mean"] = ok[metric].mean()
            row[f"{metric}_std"] = ok[metric].std()  # ddof=1: the spread of a repeat
        rows.append(row)
    rows.sort(key=lambda r: tuple(natural_key(r[k]) for k in keys))
    return pd.DataFrame(rows)


def trials(runs: pd.DataFrame, objective: str, direction: str = "maximize",
           params: Sequence[str] = (), metrics: Sequence[str] | None = None) -> pd.DataFrame:
    """An Optuna sweep's trials, best ``objective`` first, failed trials last. Columns: run,
    status, the searched ``params`` and any other override that differs, then metrics."""
    metrics = check_metrics(runs, metrics) if metrics is not None else metric_columns(runs)
    metrics = [m for m in dict.fromkeys([objective, *metrics]) if m in runs.columns]
    params = [p for p in dict.fromkeys([*params, *swept_columns(runs, over=())])
              if p in runs.columns]
    table = runs[["run", "status", *params, *metrics]]
    if objective not in table.columns:  # every trial failed: nothing to rank by
        return table.reset_index(drop=True)
    return table.sort_values(objective, ascending=direction == "minimize",
                             na_position="last", kind="stable").reset_index(drop=True)


@dataclass
class SweepInfo:
    """What the sweep's own files say: the objective and, for Optuna, direction and best."""

    objective: str = "val/score"
    direction: str = "maximize"
    optuna: dict[str, Any] | None = None  # optimization_results.yaml
    common: dict[str, Any] = field(default_factory=dict)  # overrides every run shares


def sweep_info(sweep_dir: Path, runs: pd.DataFrame) -> SweepInfo:
    info = SweepInfo()
    first = RunFolder(runs["path"].iloc[0])
    if first.config.is_file():
        objective = (yaml.safe_load(first.config.read_text()) or {}).get("objective")
        if isinstance(objective, dict):  # {metric, mode}
            info.objective = objective.get("metric", info.objective)
            info.direction = {"min": "minimize"}.get(objective.get("mode"), "maximize")
        elif isinstance(objective, str):  # a bare metric name: higher is better
            info.objective = objective
    if (sweep_dir / OPTUNA_RESULTS).is_file():
        info.optuna = yaml.safe_load((sweep_dir / OPTUNA_RESULTS).read_text())
        hydra_cfg = (yaml.safe_load(first.hydra_config.read_text())
                     if first.hydra_config.is_file() else {})
        direction = (hydra_cfg.get("hydra", {}).get("sweeper") or {}).get("direction")
        info.direction = direction if isinstance(direction, str) else info.direction
    searched = (info.optuna or {}).get("best_params") or {}
    info.common = {c: runs[c].iloc[0] for c in override_columns(runs) if c not in searched
                   and runs[c].astype(str).nunique() == 1 and runs[c].notna().all()}
    return info


def _cell(mean: float, std: float | None = None, n: int = 1) -> str:
    if mean is None or math.isnan(mean):
        return "—"
    if std is None or n < 2 or math.isnan(std):
        return f"{mean:.4f}"
    return f"{mean:.4f} ± {std:.4f}"


def _text(value: Any) -> str:
    """A table cell: floats (an Optuna learning rate) to 4 significant digits."""
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def markdown_table(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    lines = ["| " + " | ".join(map(str, header)) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(_text(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)


def summary_markdown(summary: pd.DataFrame, metrics: Sequence[str]) -> str:
    """The grouped table: swept values, n, failed, then ``mean ± std`` per metric."""
    keys = [c for c in summary.columns if c not in ("n", "failed") and not c.endswith(
        ("_mean", "_std"))]
    rows = [[*(r[k] for k in keys), r["n"], r["failed"],
             *(_cell(r[f"{m}_mean"], r[f"{m}_std"], r["n"]) for m in metrics)]
            for r in summary.to_dict("records")]  # records keep each column's type
    return markdown_table([*keys, "n", "failed", *metrics], rows)


def trials_markdown(table: pd.DataFrame, metrics: Sequence[str]) -> str:
    fixed = [c for c in table.columns if "/" not in c]
    rows = [[*(r[c] for c in fixed), *(_cell(r[m]) for m in metrics)]
            for r in table.to_dict("records")]
    return markdown_table([*fixed, *metrics], rows)


def _failures(runs: pd.DataFrame) -> str:
    failed = runs[runs["status"] != "ok"]
    if failed.empty:
        return ""
    lines = [f"- `{r.run}`: {r.error} ({r.path})" for r in failed.itertuples()]
    return "\n\n## Failed runs\n\n" + "\n".join(lines)


def sweep_markdown(sweep_dir: Path, runs: pd.DataFrame, info: SweepInfo,
                   over: Sequence[str], metrics: Sequence[str]) -> tuple[pd.DataFrame, str]:
    """The table for summary.csv (every metric) and the text of summary.md (``metrics``)."""
    n_failed = int((runs["status"] != "ok").sum())
    head = [f"# Sweep summary: {sweep_dir.name}", "",
            f"{len(runs)} runs: {len(runs) - n_failed} ok, {n_failed} failed."]
    if info.optuna is not None:
        best_params = info.optuna.get("best_params") or {}
        table = trials(runs, info.objective, info.direction, params=list(best_params))
        best = ", ".join(f"`{k}={v}`" for k, v in best_params.items())
        head += [f"Optuna ({info.direction} `{info.objective}`): best value "
                 f"{info.optuna.get('best_value')} with {best or 'no parameters'} "
                 f"({OPTUNA_RESULTS}). Trials, best first; a failed trial is FAIL in the study."]
        body = trials_markdown(table, [m for m in dict.fromkeys([info.objective, *metrics])
                                       if m in table.columns])
    else:
        table = summarize(runs, over)
        keys = swept_columns(runs, over)
        repeats = [c for c in over if c in runs.columns and runs[c].astype(str).nunique() > 1]
        over_text = ", ".join(f"`{r}`" for r in repeats) or "a row's runs"
        head += [f"Rows: {', '.join(f'`{k}`' for k in keys) or 'all runs'}; cells: mean ± std "
                 f"over {over_text} (n: finished runs; failed: runs without results)."]
        body = summary_markdown(table, metrics)
    common = " ".join(f"`{k}={v}`" for k, v in info.common.items())
    tail = f"\n\nCommon overrides: {common}" if common else ""
    return table, "\n".join(head) + "\n\n" + body + _failures(runs) + tail + "\n"


def write_summary(sweep_dir: str | Path, over: Sequence[str] = REPEAT_AXES,
                  metrics: Sequence[str] | None = None) -> Path:
    """Write ``summary.csv`` (every metric) and ``summary.md`` (``metrics``; default: the
    objective and every test metric but the losses) into ``sweep_dir``; return the .md path."""
    sweep_dir = Path(sweep_dir)
    runs = load_runs(sweep_dir)
    info = sweep_info(sweep_dir, runs)
    metrics = (check_metrics(runs, metrics) if metrics
               else default_metrics(runs, info.objective))
    table, text = sweep_markdown(sweep_dir, runs, info, over, metrics)
    table.to_csv(sweep_dir / SUMMARY_CSV, index=False)
    (sweep_dir / SUMMARY_MD).write_text(text)
    return sweep_dir / SUMMARY_MD
