"""Typed predictions of one task for one face, one class per kind of read-out: a class
(``TaskPrediction``), an age (``AgePrediction``: a class over age groups plus the years) or a
number (``ValuePrediction``). Each says how it is captioned and written to a CSV row, so code
that shows or stores predictions never asks which kind of task made them."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any


def ema(older: float, newer: float, keep: float) -> float:
    return keep * older + (1 - keep) * newer


def mixed_probs(older: Mapping[str, float], newer: Mapping[str, float], keep: float
                ) -> dict[str, float]:
    return {c: round(ema(older.get(c, p), p, keep), 6) for c, p in newer.items()}


@dataclass(frozen=True)
class TaskPrediction:
    """``label``: the class name (for age: the group, e.g. ``"16-32"``); ``index``: its class
    index; ``probs``: class name -> probability (empty when the head gives none)."""

    label: str
    index: int
    probs: dict[str, float]

    @property
    def confidence(self) -> float | None:
        return self.probs.get(self.label)

    def caption(self, task: str) -> str:
        conf = self.confidence
        return f"{task} {self.label}" + (f" {conf:.0%}" if conf is not None else "")

    def csv_cells(self, task: str) -> dict[str, Any]:
        conf = self.confidence
        return {task: self.label, f"{task}_prob": "" if conf is None else round(conf, 4)}


@dataclass(frozen=True)
class AgePrediction(TaskPrediction):
    """Also the age in years (the task's read-out, the age a user is told). ``label``,
    ``index`` and ``bin`` (``[low, high)``, ``None`` at an open end: ``64+``) are the age
    group that holds ``years``, so "age 43 (32-48)" never names a group the age is not in;
    ``probs`` still gives every group's probability."""

    years: float
    bin: tuple[float | None, float | None]
    # [low, high] in years holding the true age with probability ``interval_level`` (split-
    # conformal, from the run's calibration.json); None when the run has no calibration.
    interval: tuple[float, float] | None = None
    interval_level: float | None = None

    @property
    def value(self) -> float:
        return self.years

    def caption(self, task: str) -> str:
        text = f"{task} {self.years:.0f} ({self.label})"
        if self.interval is not None:  # e.g. "90%: 35-53": the true age's likely range
            lo, hi = self.interval
            text += f" {self.interval_level:.0%}: {lo:.0f}-{hi:.0f}"
        return text

    def csv_cells(self, task: str) -> dict[str, Any]:
        conf = self.confidence
        cells = {f"{task}_years": round(self.years, 1), f"{task}_bin": self.label,
                 f"{task}_prob": "" if conf is None else round(conf, 4)}
        if self.interval is not None:
            cells[f"{task}_interval"] = f"[{self.interval[0]:.1f}, {self.interval[1]:.1f}]"
        return cells


@dataclass(frozen=True)
class ValuePrediction:
    """A number (a ``regression`` task: valence, arousal, ...), in the task's own units."""

    value: float

    @property
    def confidence(self) -> None:
        return None

    def caption(self, task: str) -> str:
        return f"{task} {self.value:.2f}"

    def csv_cells(self, task: str) -> dict[str, Any]:
        return {task: round(self.value, 4)}
