"""Read what runs and sweeps leave behind into pandas: one row per run, learning curves, and
sweep summaries (mean ± std over repeats). Plots live in ``mtlface.analysis.plots``."""

from mtlface.analysis.curves import load_curves
from mtlface.analysis.runs import (
    find_runs,
    load_runs,
    metric_columns,
    newest,
    override_columns,
    resolve_folders,
)
from mtlface.analysis.summary import (
    REPEAT_AXES,
    default_metrics,
    summarize,
    summary_markdown,
    swept_columns,
    trials,
    write_summary,
)

__all__ = ["REPEAT_AXES", "default_metrics", "find_runs", "load_curves", "load_runs",
           "metric_columns", "newest", "override_columns", "resolve_folders", "summarize",
           "summary_markdown", "swept_columns", "trials", "write_summary"]
