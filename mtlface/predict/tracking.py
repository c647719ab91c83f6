"""Faces followed across video frames: an IoU tracker whose matches are the Hungarian
assignment (``scipy.optimize.linear_sum_assignment``), so each face keeps one integer id while
it moves, crosses another face or is missed by the detector for a few frames."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

import numpy as np
from scipy.optimize import linear_sum_assignment

Box = tuple[float, float, float, float]  # x1, y1, x2, y2 in image pixels


@dataclass(frozen=True)
class Track:
    """One face followed over frames. ``box``: where it is expected in the current frame
    (the last detection moved on by ``velocity``); ``missed``: detections in a row that did not
    find it (0 while it is seen); ``score``: the detector's score at its last match."""

    id: int
    box: Box
    velocity: tuple[float, float] = (0.0, 0.0)  # pixels per frame, x and y
    score: float = float("nan")
    missed: int = 0
    seen_box: Box | None = None  # the last detection matched to it, and its frame number
    seen_frame: int = 0

    @property
    def seen(self) -> bool:
        return self.missed == 0


def iou(a: Box, b: Box) -> float:
    """Intersection over union of two boxes (0 when either is empty)."""
    w = min(a[2], b[2]) - max(a[0], b[0])
    h = min(a[3], b[3]) - max(a[1], b[1])
    if w <= 0 or h <= 0:
        return 0.0
    inter = w * h
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def match(tracks: Sequence[Box], detections: Sequence[Box], min_iou: float
          ) -> list[tuple[int, int]]:
    """(track index, detection index) pairs maximising the summed IoU over all pairs (the
    Hungarian assignment), keeping only pairs whose IoU is at least ``min_iou``."""
    if not tracks or not detections:
        return []
    overlap = np.array([[iou(t, d) for d in detections] for t in tracks])
    overlap[overlap < min_iou] = 0  # a pair too far apart must not win over a valid one
    rows, cols = linear_sum_assignment(overlap, maximize=True)
    return [(int(r), int(c)) for r, c in zip(rows, cols) if overlap[r, c] >= min_iou]


class IoUTracker:
    """Give each detection of a frame a track id: :meth:`update` with a frame's detected boxes,
    :meth:`carry` on a frame where detection is skipped (the seen tracks move on by their
    velocity). A track ends when ``max_missed`` frames have passed since its last detection
    (checked on frames with detection); a face seen again later gets a new id."""

    def __init__(self, min_iou: float = 0.3, max_missed: int = 15) -> None:
        if not 0 < min_iou <= 1:
            raise ValueError(f"min_iou must be in (0, 1], got {min_iou}")
        if max_missed < 0:
            raise ValueError(f"max_missed must be >= 0, got {max_missed}")
        self.min_iou = min_iou
        self.max_missed = max_missed
        self.tracks: list[Track] = []
        self.ended: list[int] = []  # ids ended by the last update, for per-track state to drop
        self.next_id = 0  # the id the next new track gets: also the count of tracks so far
        self.frame = -1  # the current frame: 0 at the first update or carry

    def update(self, boxes: Sequence[Box], scores: Sequence[float] | None = None) -> list[int]:
        """The track id of each box of this frame, in the order given."""
        self._advance()
        scores = list(scores) if scores is not None else [float("nan")] * len(boxes)
        pairs = match([t.box for t in self.tracks], boxes, self.min_iou)
        ids: list[int] = [-1] * len(boxes)
        kept: list[Track] = []
        matched = dict(pairs)
        for i, track in enumerate(self.tracks):
            if i in matched:
                d = matched[i]
                kept.append(self._follow(track, boxes[d], scores[d]))
                ids[d] = track.id
            elif self.frame - track.seen_frame <= self.max_missed:
                kept.append(replace(track, missed=track.missed + 1))
        self.ended = [t.id for t in self.tracks if t.id not in {k.id for k in kept}]
        for d, box in enumerate(boxes):
            if ids[d] < 0:
                box = tuple(map(float, box))
                kept.append(Track(self.next_id, box, score=scores[d], seen_box=box,
                                  seen_frame=self.frame))
                ids[d] = self.next_id
                self.next_id += 1
        self.tracks = kept
        return ids

    def carry(self) -> list[Track]:
        """A frame without detection: the tracks seen at the last detection, moved on."""
        self._advance()
        return [t for t in self.tracks if t.seen]

    def _advance(self) -> None:
        """Move every track on by one frame of its velocity."""
        self.frame += 1
        self.tracks = [replace(t, box=_shift(t.box, t.velocity)) for t in self.tracks]

    def _follow(self, track: Track, box: Box, score: float) -> Track:
        box = tuple(map(float, box))
        frames = max(1, self.frame - track.seen_frame)
        (cx, cy), (lx, ly) = _centre(box), _centre(track.seen_box or box)
        return Track(track.id, box, ((cx - lx) / frames, (cy - ly) / frames), score, 0,
                     box, self.frame)


def _centre(box: Box) -> tuple[float, float]:
    return (box[0] + box[2]) / 2, (box[1] + box[3]) / 2


def _shift(box: Box, by: tuple[float, float]) -> Box:
    return (box[0] + by[0], box[1] + by[1], box[2] + by[0], box[3] + by[1])
