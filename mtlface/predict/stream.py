"""Predictions over a sequence of frames: faces detected every ``detect_every`` frames, carried
by the tracker between detections, each face given its track id and its predictions smoothed
per track. Frames in, ``TrackedFace`` lists out; reading and writing video is ``video``'s."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from mtlface.data.preprocess.detectors import Face
from mtlface.predict.predictor import Predictor
from mtlface.predict.results import FacePrediction
from mtlface.predict.smoothing import VIDEO_DEFAULT, PredictionSmoother
from mtlface.predict.tracking import Box, IoUTracker

Detect = Callable[[Sequence[np.ndarray]], list[list[Face]]]


@dataclass(frozen=True)
class TrackingOptions:
    """``detect_every``: run the detector on every N-th frame (the first included) and carry
    the boxes by the tracker between; ``smooth``: share of a track's running average kept per
    frame (0: off); ``min_iou``/``max_missed``: :class:`IoUTracker`'s."""

    detect_every: int = 1
    smooth: float = VIDEO_DEFAULT
    min_iou: float = 0.3
    max_missed: int = 15

    def __post_init__(self) -> None:
        if self.detect_every < 1:
            raise ValueError(f"detect_every must be at least 1, got {self.detect_every}")


@dataclass(frozen=True)
class TrackedFace:
    """One face in one frame: ``frame`` (0-based index in the stream), ``track`` (the same
    number for the same face in every frame), ``detected`` (False: a box carried by the
    tracker on a frame without detection) and its (smoothed) predictions."""

    frame: int
    track: int
    detected: bool
    face: FacePrediction

    def to_dict(self) -> dict:
        return {"frame": self.frame, "track": self.track, "detected": self.detected,
                **self.face.to_dict()}


class FaceStream:
    """Feed frames in order with :meth:`process` (RGB uint8, several at once for one model
    batch). ``detect`` replaces the predictor's detector (e.g. known boxes)."""

    def __init__(self, predictor: Predictor, options: TrackingOptions | None = None,
                 detect: Detect | None = None) -> None:
        self.predictor = predictor
        self.options = options or TrackingOptions()
        self.detect = detect or predictor.finder.find_all
        self.tracker = IoUTracker(self.options.min_iou, self.options.max_missed)
        self.smoother = PredictionSmoother(self.options.smooth, predictor.tasks)
        self.frames = 0  # the next frame's index in the stream
        self._last: dict[int, Face] = {}  # each track's last detection: its landmarks move on

    @property
    def tracks(self) -> int:
        """Tracks started so far."""
        return self.tracker.next_id

    def process(self, frames: Sequence[np.ndarray], numbers: Sequence[int] | None = None
                ) -> list[list[TrackedFace]]:
        """The faces of each frame. ``numbers``: the frames' indices in the stream when some
        were left out (default: the frames follow the ones processed before)."""
        if numbers is None:
            numbers = range(self.frames, self.frames + len(frames))
        if len(numbers):
            self.frames = numbers[-1] + 1
        detect_at = [i for i, n in enumerate(numbers) if n % self.options.detect_every == 0]
        detected = dict(zip(detect_at, self.detect([frames[i] for i in detect_at])
                            if detect_at else []))
        faces: list[list[Face]] = []
        ids: list[list[int]] = []
        ended: list[int] = []
        for i, frame in enumerate(frames):
            if i in detected:
                found = detected[i]
                ids.append(self.tracker.update([f.box for f in found], [f.score for f in found]))
                self._last.update(zip(ids[-1], found))
                ended += self.tracker.ended
            else:
                carried = [(t.id, box) for t in self.tracker.carry()
                           if (box := _inside(t.box, frame.shape)) is not None]
                found = [_moved(self._last[track], box) for track, box in carried]
                ids.append([track for track, _ in carried])
            faces.append(found)
        for track in ended:
            self._last.pop(track, None)
        preds = self.predictor.predict_at(frames, faces)
        out = [[TrackedFace(numbers[i], track, i in detected,
                            _with_tasks(p, self.smoother.smooth(track, p.tasks)))
                for track, p in zip(ids[i], preds[i])] for i in range(len(frames))]
        self.smoother.forget(ended)
        return out


def _inside(box: Box, shape: tuple[int, ...]) -> Box | None:
    """``box``, or None when less than half of it is in the image (a face carried off the
    edge). Kept unclipped: the crop pads what lies outside, as for a detected box."""
    h, w = shape[:2]
    inside = (max(0.0, min(w, box[2]) - max(0.0, box[0]))
              * max(0.0, min(h, box[3]) - max(0.0, box[1])))
    return box if inside >= 0.5 * (box[2] - box[0]) * (box[3] - box[1]) > 0 else None


def _moved(face: Face, box: Box) -> Face:
    """``face`` carried to ``box``: its landmarks (for aligned crops) move with the box; no
    detector score, as nothing was detected."""
    landmarks = face.landmarks
    if landmarks is not None:
        shift = ((box[0] + box[2] - face.box[0] - face.box[2]) / 2,
                 (box[1] + box[3] - face.box[1] - face.box[3]) / 2)
        landmarks = np.asarray(landmarks) + shift
    return Face(box, float("nan"), landmarks)


def _with_tasks(face: FacePrediction, tasks: dict) -> FacePrediction:
    return FacePrediction(face.box, face.score, tasks)
