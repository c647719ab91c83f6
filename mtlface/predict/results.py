"""Typed predictions: one ``FacePrediction`` per face, holding one ``TaskPrediction`` per task
(``AgePrediction`` for age), decoded by the tasks' own ``decode`` so the read-out matches
training (expected age, CORAL, regression...)."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass, replace

from torch import Tensor

from mtlface.calibration.store import decode as calibrated_decode
from mtlface.tasks import AgeBins, AgeTask, ClassificationTask, Task

Box = tuple[float, float, float, float]  # x1, y1, x2, y2 in image pixels


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


@dataclass(frozen=True)
class FacePrediction:
    """One face: its box in the input image, the detector's score (NaN when the crop was
    given, not detected) and one prediction per task."""

    box: Box
    score: float
    tasks: dict[str, TaskPrediction]

    def __getitem__(self, task: str) -> TaskPrediction:
        return self.tasks[task]

    def to_dict(self) -> dict:
        """JSON-ready (a NaN score becomes ``None``)."""
        return {"box": [round(v, 2) for v in self.box],
                "score": None if math.isnan(self.score) else round(self.score, 4),
                "tasks": {name: asdict(p) for name, p in self.tasks.items()}}


def decode_batch(tasks: Mapping[str, Task], raw: Mapping[str, Tensor],
                 temperatures: Mapping[str, float] | None = None
                 ) -> list[dict[str, TaskPrediction]]:
    """Raw head outputs ``{task: Tensor[B, ...]}`` -> one ``{task: prediction}`` per sample;
    a task in ``temperatures`` gets the probabilities of its logits divided by it."""
    temperatures = temperatures or {}
    per_task = {name: _decode_task(task, raw[name].float().cpu(), temperatures.get(name))
                for name, task in tasks.items()}
    size = len(next(iter(raw.values()))) if raw else 0
    return [{name: preds[i] for name, preds in per_task.items()} for i in range(size)]


def with_intervals(preds: list[dict[str, TaskPrediction]], interval) -> None:
    """Give each face's age prediction its interval (an ``AgeInterval``: ``q`` pooled, or of
    the face's predicted group when it is group-wise), in place."""
    for faces in preds:
        age = faces.get(interval.task)
        if not isinstance(age, AgePrediction):
            continue
        group = faces[interval.groupwise].label if interval.groupwise in faces else None
        lo, hi = interval.bounds(age.years, group)
        faces[interval.task] = replace(age, interval=(round(lo, 2), round(hi, 2)),
                                       interval_level=interval.level)


def _decode_task(task: Task, pred: Tensor, temperature: float | None = None
                 ) -> list[TaskPrediction]:
    out = calibrated_decode(task, pred, temperature)
    if isinstance(task, AgeTask):
        bins, names, probs = task.bins, task.bins.names, out.get("probs")
        # Not out["bin"]: with the expected-age read-out the most probable group can be one the
        # expected age is not in (age 43, group 64+).
        groups = bins.bucketize(out["years"]).tolist()
        return [AgePrediction(label=names[g], index=g, probs=_probs(names, probs, i),
                              years=float(out["years"][i]), bin=_bounds(bins, g))
                for i, g in enumerate(groups)]
    if isinstance(task, ClassificationTask):
        names = task.class_names
        return [TaskPrediction(label=names[c], index=c, probs=_probs(names, out["probs"], i))
                for i, c in enumerate(out["label"].tolist())]
    raise TypeError(f"no decoding for task type {type(task).__name__}")


def _bounds(bins: AgeBins, group: int) -> tuple[float | None, float | None]:
    """``[low, high)`` of an age group, ``None`` where it is open, as its name says
    (:attr:`AgeBins.names`: the last group, and the first when its low edge is above 0)."""
    low = None if group == 0 and bins.edges[0] > 0 else bins.edges[group]
    high = None if group == bins.num_bins - 1 else bins.edges[group + 1]
    return low, high


def _probs(names, probs: Tensor | None, i: int) -> dict[str, float]:
    if probs is None:
        return {}
    return {name: round(float(p), 6) for name, p in zip(names, probs[i].tolist())}
