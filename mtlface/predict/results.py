"""Typed predictions: one ``FacePrediction`` per face, holding one prediction per task (a
``TaskPrediction``, an ``AgePrediction`` or a ``ValuePrediction``: the task's kind decides),
decoded by the tasks' own ``decode`` so the read-out matches training (expected age, CORAL,
regression...)."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass, replace

from torch import Tensor

from mtlface.calibration.store import decode as calibrated_decode
from mtlface.tasks import AgePrediction, Task, TaskPrediction, ValuePrediction

__all__ = ["AgePrediction", "FacePrediction", "TaskPrediction", "ValuePrediction",
           "decode_batch", "with_intervals"]

Box = tuple[float, float, float, float]  # x1, y1, x2, y2 in image pixels


@dataclass(frozen=True)
class FacePrediction:
    """One face: its box in the input image, the detector's score (NaN when the crop was
    given, not detected) and one prediction per task."""

    box: Box
    score: float
    tasks: dict[str, TaskPrediction | ValuePrediction]

    def __getitem__(self, task: str) -> TaskPrediction | ValuePrediction:
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
        if age is None:
            continue
        group = faces[interval.groupwise].label if interval.groupwise in faces else None
        lo, hi = interval.bounds(age.years, group)
        faces[interval.task] = replace(age, interval=(round(lo, 2), round(hi, 2)),
                                       interval_level=interval.level)


def _decode_task(task: Task, pred: Tensor, temperature: float | None = None) -> list:
    return task.predictions(calibrated_decode(task, pred, temperature))
