"""Cutting the face out: a square window around the box with a margin, or a 5-point
similarity alignment, resized to a fixed size. The settings here shape the crops, so they are
part of the cache key; inference must crop with the same ``CropSpec``."""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np

from mtlface.data.preprocess.detectors import Face
from mtlface.data.preprocess.images import ImageError

# ArcFace's 112x112 template (left eye, right eye, nose, mouth left, mouth right), as fractions.
TEMPLATE = np.array([[38.2946, 51.6963], [73.5318, 51.5014], [56.0252, 71.7366],
                     [41.5493, 92.3655], [70.7299, 92.2041]]) / 112.0
BAD_BOX = "face box empty or not finite"
CONFIG_GROUP, CONFIG_NAME = "crop", "spec"  # conf/preprocess.yaml's defaults: `crop: spec`


@dataclass(frozen=True)
class CropSpec:
    """``size``: output side in pixels (null: the window's own size). ``margin``: added on each
    side, as a fraction of the box's longer side. ``align``: rotate/scale the 5 landmarks onto
    a template (detections with landmarks only; others fall back to the plain window)."""

    size: int | None = 224
    margin: float = 0.2
    align: bool = False
    jpeg_quality: int = 95

    def __post_init__(self) -> None:
        if self.size is not None and not 8 <= self.size <= 2048:
            raise ValueError(f"crop.size must be in 8..2048 or null, got {self.size}")
        if not 0 <= self.margin <= 2:
            raise ValueError(f"crop.margin must be in [0, 2], got {self.margin}")
        if not 1 <= self.jpeg_quality <= 100:
            raise ValueError(f"crop.jpeg_quality must be in 1..100, got {self.jpeg_quality}")


def register_config() -> None:
    """``CropSpec`` as the ``crop`` node of conf/preprocess.yaml (``crop: spec`` in its
    defaults), a structured config in Hydra's ConfigStore: the YAML repeats no default, and
    ``crop.margin=abc`` or a misspelt ``crop.*`` key stops at composition with the key named.
    The ranges stay ``__post_init__``'s. Idempotent."""
    from hydra.core.config_store import ConfigStore
    from omegaconf import OmegaConf

    node = OmegaConf.structured(CropSpec)
    OmegaConf.set_readonly(node, False)  # frozen is for the dataclass; overrides must apply
    ConfigStore.instance().store(group=CONFIG_GROUP, name=CONFIG_NAME, node=node)


# Stored on import, as Hydra's structured configs are: whatever composes conf/preprocess.yaml
# (the command, tests, the benchmarks) has imported the preprocessing package by then.
register_config()


def crop_face(image: np.ndarray, face: Face, spec: CropSpec) -> np.ndarray:
    """The face of ``image`` (HxWx3 uint8) as a square uint8 crop."""
    if face.whole_image:
        return _resize(_centre_square(image), spec.size)
    x1, y1, x2, y2 = face.box
    if not all(math.isfinite(v) for v in face.box) or x2 - x1 < 1 or y2 - y1 < 1:
        raise ImageError(BAD_BOX, str(face.box))
    side = max(x2 - x1, y2 - y1) * (1 + 2 * spec.margin)
    out = spec.size or max(8, round(side))
    if spec.align and face.landmarks is not None:
        return _aligned(image, face.landmarks, spec.margin, side, out)
    cx, cy = (x1 + x2) / 2, (y1 + y2) / 2
    left, top = round(cx - side / 2), round(cy - side / 2)
    n = max(1, round(side))
    return _resize(_window(image, left, top, n), out)


def _window(image: np.ndarray, left: int, top: int, n: int) -> np.ndarray:
    """``image[top:top+n, left:left+n]``, zero-padded where it leaves the image."""
    h, w = image.shape[:2]
    pad = [max(0, -top), max(0, top + n - h), max(0, -left), max(0, left + n - w)]
    if any(pad):
        image = cv2.copyMakeBorder(image, *pad, cv2.BORDER_CONSTANT, value=0)
        top, left = top + pad[0], left + pad[2]
    return image[top: top + n, left: left + n]


def _centre_square(image: np.ndarray) -> np.ndarray:
    h, w = image.shape[:2]
    n = min(h, w)
    return image[(h - n) // 2: (h - n) // 2 + n, (w - n) // 2: (w - n) // 2 + n]


def _resize(image: np.ndarray, size: int | None) -> np.ndarray:
    if size is None or image.shape[0] == size:
        return np.ascontiguousarray(image)
    # Area when shrinking (no aliasing of thin strokes), bilinear when enlarging.
    inter = cv2.INTER_AREA if image.shape[0] > size else cv2.INTER_LINEAR
    return cv2.resize(image, (size, size), interpolation=inter)


def _aligned(image: np.ndarray, landmarks: np.ndarray, margin: float, side: float,
             out: int) -> np.ndarray:
    # The template spans about the detector's box; the margin surrounds it as in a plain crop.
    target = out / 2 + (TEMPLATE - 0.5) * out / (1 + 2 * margin)
    shrink = out / side
    if shrink < 0.5:  # warpAffine interpolates bilinearly: pre-shrink so it does not alias
        factor = 2 * shrink
        image = cv2.resize(image, None, fx=factor, fy=factor, interpolation=cv2.INTER_AREA)
        landmarks = landmarks * factor
    matrix, _ = cv2.estimateAffinePartial2D(landmarks.astype(np.float32),
                                            target.astype(np.float32), method=cv2.LMEDS)
    if matrix is None:
        raise ImageError("landmarks degenerate (alignment failed)")
    return cv2.warpAffine(image, matrix, (out, out), flags=cv2.INTER_LINEAR,
                          borderMode=cv2.BORDER_CONSTANT, borderValue=0)
