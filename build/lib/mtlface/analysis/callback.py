"""Hydra callback: write a sweep's summary when the multirun ends (conf/hydra/default.yaml)."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig

from mtlface.analysis.summary import REPEAT_AXES, write_summary

log = logging.getLogger(__name__)


class SweepSummary(Callback):
    """``summary.csv`` / ``summary.md`` into ``hydra.sweep.dir`` after the last job, for the
    basic and the Optuna sweeper alike; ``python -m mtlface.analysis <dir>`` does the same
    on demand. A summary that cannot be written is logged, not raised: the jobs are done."""

    def __init__(self, over: Sequence[str] = REPEAT_AXES,
                 metrics: Sequence[str] | None = None) -> None:
        self.over = tuple(over)
        self.metrics = list(metrics) if metrics else None

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        sweep_dir = Path(config.hydra.sweep.dir)
        try:
            path = write_summary(sweep_dir, over=self.over, metrics=self.metrics)
        except (OSError, ValueError, KeyError) as error:
            log.error("no sweep summary (%s); retry: python -m mtlface.analysis %s",
                      error, sweep_dir)
            return
        log.info("sweep summary: %s\n%s", path, path.read_text())
