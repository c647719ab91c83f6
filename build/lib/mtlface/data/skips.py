"""Counting rows that are skipped, by reason, so no data is ever dropped silently."""

from __future__ import annotations

import logging
from collections import Counter

log = logging.getLogger(__name__)


class SkipReport(Counter):
    """``Counter`` of skipped items keyed by reason, e.g. ``{"age out of range": 12}``."""

    def skip(self, reason: str, n: int = 1) -> None:
        if n:
            self[reason] += n

    @property
    def total(self) -> int:
        return sum(self.values())

    def log(self, what: str, logger: logging.Logger = log) -> None:
        """One warning line per reason; nothing when nothing was skipped."""
        for reason, n in sorted(self.items()):
            logger.warning("%s: skipped %d (%s)", what, n, reason)

    def as_dict(self) -> dict[str, int]:
        return dict(sorted(self.items()))
