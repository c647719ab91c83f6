"""Learning curves: every run's ``csv/metrics.csv`` (Lightning's CSVLogger) in long form."""

from __future__ import annotations

import logging
from collections.abc import Iterable
from pathlib import Path

import pandas as pd

from mtlface.analysis.runs import load_runs

log = logging.getLogger(__name__)

METRICS_CSV = Path("csv") / "metrics.csv"
CURVE_COLUMNS = ["run", "epoch", "step", "key", "value"]


def load_curves(runs: pd.DataFrame | str | Path | Iterable[str | Path]) -> pd.DataFrame:
    """Columns ``run, epoch, step, key, value``, one row per logged value (a key such as
    ``val/age/acc`` or ``train/loss_step``). ``runs`` is a :func:`load_runs` frame or the
    folders to load; a run without a readable metrics.csv is skipped and counted in the log
    (``debug=fast`` runs log nothing)."""
    if not isinstance(runs, pd.DataFrame):
        runs = load_runs(runs)
    parts, skipped = [], []
    for name, path in zip(runs["run"], runs["path"]):
        csv = Path(path) / METRICS_CSV
        try:
            wide = pd.read_csv(csv)
        except (FileNotFoundError, pd.errors.EmptyDataError, pd.errors.ParserError):
            skipped.append(str(csv))
            continue
        ids = [c for c in ("epoch", "step") if c in wide.columns]
        long = wide.melt(id_vars=ids, var_name="key").dropna(subset=["value"])
        parts.append(long.assign(run=name))
    if skipped:
        log.info("%d of %d runs have no readable %s, skipped: %s", len(skipped), len(runs),
                 METRICS_CSV, ", ".join(skipped))
    if not parts:
        return pd.DataFrame(columns=CURVE_COLUMNS)
    return pd.concat(parts, ignore_index=True).reindex(columns=CURVE_COLUMNS)
