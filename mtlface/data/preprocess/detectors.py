"""Face detectors for preprocessing: MTCNN (facenet-pytorch) and a pass-through for sources
that are already cropped. Both turn a batch of RGB images into one ``Face`` or ``Skipped`` per
image; Hydra's ``_target_`` (conf/detector/*.yaml) picks the class.

A detector's constructor arguments are the settings that shape the crops (they enter the
cache key), besides MTCNN's ``backend``: both give the same faces (see ``mtcnn.backends``), so
it is left out of the key (``cache.RUNTIME_SETTINGS``). The device is a runtime choice given to
``setup``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import ClassVar, Protocol

import cv2
import numpy as np

from mtlface.data.preprocess.mtcnn.backends import BACKENDS
from mtlface.errors import ConfigError, UserError

Box = tuple[float, float, float, float]  # x1, y1, x2, y2 in image pixels


@dataclass(frozen=True)
class Face:
    box: Box
    score: float  # detector confidence; NaN when the box was given (pass-through)
    landmarks: np.ndarray | None = None  # (5, 2): left eye, right eye, nose, mouth l/r
    num_faces: int = 1
    whole_image: bool = False  # the input is the face: crop nothing, ignore the margin


@dataclass(frozen=True)
class Skipped:
    reason: str  # the skip-report key


Detection = Face | Skipped


class Detector(Protocol):
    config_name: ClassVar[str]  # its conf/detector/<name>.yaml, for messages
    columns: tuple[str, ...]  # labels-table columns ``detect`` reads from ``rows``

    def setup(self, device: str) -> None: ...

    def detect(self, images: Sequence[np.ndarray], rows: Sequence[Mapping]) -> list[Detection]:
        """One result per image; ``rows`` are the images' labels-table rows (for given boxes)."""


class PassThrough:
    """For pre-cropped sources (UTKFace aligned, FER2013 pixels, Adience aligned): the whole
    image is the face, unless the row gives a box in ``box_columns`` (IMDB-WIKI's
    ``face_location``), which is then cropped with the margin like a detection."""

    config_name = "none"

    def __init__(
        self, box_columns: Sequence[str] | None = ("box_x1", "box_y1", "box_x2", "box_y2")
    ) -> None:
        if box_columns is not None and len(box_columns) != 4:
            raise ValueError(f"box_columns must name 4 columns (x1, y1, x2, y2), got {box_columns}")
        self.box_columns = list(box_columns) if box_columns is not None else None
        self.columns = tuple(self.box_columns or ())

    def setup(self, device: str) -> None:  # nothing to load
        pass

    def detect(self, images: Sequence[np.ndarray], rows: Sequence[Mapping]) -> list[Detection]:
        return [self._face(img, row) for img, row in zip(images, rows)]

    def _face(self, image: np.ndarray, row: Mapping) -> Face:
        if self.box_columns is not None:
            box = [row.get(c) for c in self.box_columns]
            if all(isinstance(v, int | float) and math.isfinite(v) for v in box):
                return Face(tuple(float(v) for v in box), math.nan)
        h, w = image.shape[:2]
        return Face((0.0, 0.0, float(w), float(h)), math.nan, whole_image=True)


def as_rgb(image: np.ndarray) -> np.ndarray:
    """An ``HxWx3`` uint8 view of a grey (``HxW``, ``HxWx1``), RGB or RGBA (alpha dropped)
    uint8 image; anything else is a ``UserError``."""
    image = np.asarray(image)
    if image.dtype == np.uint8 and image.ndim == 2:
        image = image[:, :, None]
    if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] not in (1, 3, 4):
        raise UserError(f"detection needs HxW, HxWx1, HxWx3 or HxWx4 uint8 images, got "
                        f"{image.dtype} of shape {image.shape}")
    if image.shape[2] == 1:
        return np.repeat(image, 3, axis=2)
    return image[:, :, :3]


class MTCNNDetector:
    """MTCNN over the P/R/O-Net weights that ship inside facenet-pytorch (nothing is
    downloaded). ``backend``: ``onnx`` (the cascade on onnxruntime, ``mtcnn.backends``) or
    ``torch`` (facenet-pytorch's own); the same faces either way.

    Batched: every image is scaled so its longer side is ``detect_size`` and padded into a
    ``detect_size`` square, so a whole chunk runs as one batch; boxes are mapped back and the
    crop is cut from the full-resolution image. ``detect_size: null`` detects at full
    resolution, batching only images of equal size.

    ``pick``: which face to crop, ``confident`` (highest probability) or ``largest``.
    ``max_second_score``: skip the image when another face scores above it (the label may
    belong to either person); null keeps such images. ``min_score``: skip a best face below it.
    """

    config_name = "mtcnn"
    columns = ()
    PICKS = ("confident", "largest")

    def __init__(
        self,
        min_face_size: int = 20,
        thresholds: Sequence[float] = (0.6, 0.7, 0.7),
        factor: float = 0.709,
        detect_size: int | None = 320,
        pick: str = "confident",
        max_second_score: float | None = 0.95,
        min_score: float = 0.9,
        backend: str = "onnx",
    ) -> None:
        if backend not in BACKENDS:
            raise ConfigError(f"detector.backend must be one of {tuple(BACKENDS)}, got "
                              f"{backend!r}")
        if pick not in self.PICKS:
            raise ValueError(f"detector.pick must be one of {self.PICKS}, got {pick!r}")
        if detect_size is not None and detect_size < 48:
            raise ValueError(f"detector.detect_size must be >= 48 or null, got {detect_size}")
        self.min_face_size = min_face_size
        self.thresholds = list(thresholds)
        self.factor = factor
        self.detect_size = detect_size
        self.pick = pick
        self.max_second_score = max_second_score
        self.min_score = min_score
        self.backend = backend
        self._mtcnn = None  # answers like facenet-pytorch's MTCNN.detect, whatever the backend

    def setup(self, device: str = "cpu") -> None:
        self._mtcnn = BACKENDS[self.backend](self.min_face_size, self.thresholds, self.factor,
                                             device)

    def detect(self, images: Sequence[np.ndarray], rows: Sequence[Mapping]) -> list[Detection]:
        if self._mtcnn is None:
            self.setup()
        results: list[Detection | None] = [None] * len(images)
        groups: dict[tuple[int, ...], list[int]] = {}
        inputs, scales = [], []
        for i, image in enumerate(images):
            image = as_rgb(image)
            if min(image.shape[:2]) < 12:  # below MTCNN's 12 px window: no pyramid at all
                results[i] = Skipped("image too small for detection")
                inputs.append(None)
                scales.append(1.0)
                continue
            canvas, scale = self._canvas(image)
            inputs.append(canvas)
            scales.append(scale)
            if min(canvas.shape[:2]) < self.min_face_size:  # the pyramid would be empty
                results[i] = Skipped("image smaller than detector.min_face_size")
                continue
            groups.setdefault(canvas.shape, []).append(i)
        for members in groups.values():
            boxes, probs, points = self._mtcnn.detect(np.stack([inputs[i] for i in members]),
                                                      landmarks=True)
            for j, i in enumerate(members):
                results[i] = self._choose(boxes[j], probs[j], points[j], scales[i])
        return results  # type: ignore[return-value]

    def _canvas(self, image: np.ndarray) -> tuple[np.ndarray, float]:
        if self.detect_size is None:
            return image, 1.0
        h, w = image.shape[:2]
        scale = self.detect_size / max(h, w)
        size = (max(1, round(w * scale)), max(1, round(h * scale)))
        small = cv2.resize(image, size, interpolation=cv2.INTER_AREA if scale < 1
                           else cv2.INTER_LINEAR)
        canvas = np.zeros((self.detect_size, self.detect_size, 3), np.uint8)
        canvas[: size[1], : size[0]] = small
        return canvas, scale

    def _choose(self, boxes, probs, points, scale: float) -> Detection:
        if boxes is None or len(boxes) == 0:
            return Skipped("no face found")
        boxes = np.asarray(boxes, dtype=float).reshape(-1, 4) / scale
        probs = np.asarray(probs, dtype=float).reshape(-1)
        points = np.asarray(points, dtype=float).reshape(-1, 5, 2) / scale
        if self.pick == "largest":
            best = int(np.argmax((boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])))
        else:
            best = int(np.argmax(probs))
        if probs[best] < self.min_score:
            return Skipped(f"face score below {self.min_score:g}")
        others = np.delete(probs, best)
        second = others.max() if len(others) else -1.0
        if self.max_second_score is not None and second > self.max_second_score:
            return Skipped(f"second face scoring above {self.max_second_score:g}")
        return Face(tuple(boxes[best].tolist()), float(probs[best]), points[best], len(probs))
