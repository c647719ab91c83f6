"""Steadier video predictions: per track, an exponential moving average of each task's
prediction (class probabilities, the age in years and its interval, a number), each task's kind
re-deriving its label from the average (``Task.mix``), so ages and emotions stop flickering
from frame to frame."""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from mtlface.tasks import Task

# Share of the running average kept per frame for -v and the webcam: a frame's weight halves
# every 3 frames (0.12 s at 25 fps), so a changed expression shows within a few frames.
VIDEO_DEFAULT = 0.8


class PredictionSmoother:
    """``smooth(track, predictions)`` returns the track's predictions averaged with its earlier
    ones: ``average = keep * average + (1 - keep) * newest``. ``keep`` 0 returns the
    predictions as they are; the first frame of a track is taken as it is."""

    def __init__(self, keep: float, tasks: Mapping[str, Task]) -> None:
        if not 0 <= keep < 1:
            raise ValueError(f"the smoothing weight must be in [0, 1), got {keep}")
        self.keep = keep
        self.tasks = dict(tasks)
        self._state: dict[int, dict[str, object]] = {}

    def smooth(self, track: int, predictions: Mapping[str, object]) -> dict[str, object]:
        if self.keep == 0:
            return dict(predictions)
        state = self._state.setdefault(track, {})
        for name, pred in predictions.items():
            state[name] = (self.tasks[name].mix(state[name], pred, self.keep)
                           if name in state else pred)
        return {name: state[name] for name in predictions}

    def forget(self, tracks: Iterable[int]) -> None:
        """Drop the averages of tracks that ended."""
        for track in tracks:
            self._state.pop(track, None)
