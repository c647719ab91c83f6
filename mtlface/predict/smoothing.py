"""Steadier video predictions: per track, an exponential moving average of each task's class
probabilities (and of the age in years and its interval), with the label re-derived from the
averages, so ages and emotions stop flickering from frame to frame."""

from __future__ import annotations

import bisect
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, fields, replace

from mtlface.predict.results import TaskPrediction

# Share of the running average kept per frame for -v and the webcam: a frame's weight halves
# every 3 frames (0.12 s at 25 fps), so a changed expression shows within a few frames.
VIDEO_DEFAULT = 0.8


@dataclass(frozen=True)
class AgeGroups:
    """The age groups a years value falls into: ``edges`` and ``names`` as the age task's
    ``AgeBins`` has them (group ``i`` holds ``[edges[i], edges[i+1])``, both ends open)."""

    edges: Sequence[float]
    names: Sequence[str]

    @classmethod
    def of_tasks(cls, tasks: Mapping[str, object]) -> dict[str, AgeGroups]:
        """Every task that has age bins (``task.bins``), by task name."""
        return {name: cls(list(bins.edges), list(bins.names)) for name, task in tasks.items()
                if (bins := getattr(task, "bins", None)) is not None}

    def index(self, years: float) -> int:
        return bisect.bisect_right(self.edges[1:-1], years)

    def bounds(self, index: int) -> tuple[float | None, float | None]:
        """``[low, high)``, ``None`` at an open end (as the group's name says)."""
        low = None if index == 0 and self.edges[0] > 0 else self.edges[index]
        high = None if index == len(self.names) - 1 else self.edges[index + 1]
        return low, high


@dataclass(frozen=True)
class _Average:
    probs: dict[str, float]
    years: float | None
    interval: tuple[float, float] | None


class PredictionSmoother:
    """``smooth(track, tasks)`` returns the track's predictions averaged with its earlier ones:
    ``average = keep * average + (1 - keep) * newest``. ``keep`` 0 returns the predictions
    as they are; the first frame of a track is taken as it is. ``groups``
    (:meth:`AgeGroups.of_tasks`) re-derive an age's group from the averaged years, so the
    group still holds the age shown; without them the group is the most probable one."""

    def __init__(self, keep: float, groups: Mapping[str, AgeGroups] | None = None) -> None:
        if not 0 <= keep < 1:
            raise ValueError(f"the smoothing weight must be in [0, 1), got {keep}")
        self.keep = keep
        self.groups = dict(groups or {})
        self._state: dict[int, dict[str, _Average]] = {}

    def smooth(self, track: int, tasks: Mapping[str, TaskPrediction]
               ) -> dict[str, TaskPrediction]:
        if self.keep == 0:
            return dict(tasks)
        state = self._state.setdefault(track, {})
        out = {}
        for name, pred in tasks.items():
            new = _Average(dict(pred.probs), getattr(pred, "years", None),
                           getattr(pred, "interval", None))
            average = self._mix(state[name], new) if name in state else new
            state[name] = average
            out[name] = self._relabel(name, pred, average)
        return out

    def forget(self, tracks: Iterable[int]) -> None:
        """Drop the averages of tracks that ended."""
        for track in tracks:
            self._state.pop(track, None)

    def _mix(self, old: _Average, new: _Average) -> _Average:
        k = self.keep

        def ema(a: float, b: float) -> float:
            return k * a + (1 - k) * b

        probs = {c: ema(old.probs.get(c, p), p) for c, p in new.probs.items()}
        years = ema(old.years, new.years) if None not in (old.years, new.years) else new.years
        interval = new.interval
        if old.interval is not None and new.interval is not None:
            interval = (ema(old.interval[0], new.interval[0]),
                        ema(old.interval[1], new.interval[1]))
        return _Average(probs, years, interval)

    def _relabel(self, name: str, pred: TaskPrediction, average: _Average) -> TaskPrediction:
        changes: dict = {"probs": {c: round(p, 6) for c, p in average.probs.items()}}
        if average.probs:  # the class order of probs is the class index order
            classes = list(average.probs)
            best = max(classes, key=average.probs.__getitem__)
            changes.update(label=best, index=classes.index(best))
        if average.years is not None:
            changes["years"] = average.years
            groups = self.groups.get(name)
            if groups is not None:
                index = groups.index(average.years)
                changes.update(label=groups.names[index], index=index)
                if "bin" in {f.name for f in fields(pred)}:
                    changes["bin"] = groups.bounds(index)
        if average.interval is not None:
            changes["interval"] = tuple(round(v, 2) for v in average.interval)
        return replace(pred, **changes)
