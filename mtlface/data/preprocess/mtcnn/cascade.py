"""MTCNN's cascade (P-Net proposals over an image pyramid, R-Net refinement, O-Net boxes and
landmarks) for a batch of equal-sized images, with the arithmetic of facenet-pytorch's
``detect_face`` (same thresholds, regressions, NMS and rounding, so the same faces) but without
its per-box Python: pyramid levels and crops are resampled from integral images
(``resample``), the networks run once per stage (P-Net once per pyramid level) for the whole
batch, P-Net skips the zero padding of the canvases (running once per group of images with
like content extents), and NMS is OpenCV's, with torchvision's arithmetic.

Networks are callables ``(N, 3, h, w) float32 -> tuple of arrays`` in facenet-pytorch's output
order (``backends.OnnxNetwork``, or anything else that computes them). They take pixel values
(0-255): MTCNN's input scaling is part of the exported networks. The last channel of a
probability output is the face's.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import cv2
import numpy as np

from mtlface.data.preprocess.mtcnn import resample
from mtlface.data.preprocess.mtcnn.resample import area_resample, integral_images, resize_area

Network = Callable[[np.ndarray], Sequence[np.ndarray]]
# Per image: boxes (n, 4) x1 y1 x2 y2, probabilities (n,), landmarks (n, 5, 2).
Faces = tuple[np.ndarray, np.ndarray, np.ndarray]
STAGE_NAMES = ("pyramid", "pnet", "nms_boxes", "rnet_crops", "rnet", "onet_crops", "onet",
               "output")


@dataclass
class Candidates:
    """Boxes of every image of the batch, flattened: ``image`` says whose each row is."""

    boxes: np.ndarray  # (n, 4) float32
    scores: np.ndarray  # (n,) float32
    image: np.ndarray  # (n,) int64

    def take(self, index: np.ndarray) -> Candidates:
        return Candidates(self.boxes[index], self.scores[index], self.image[index])

    @staticmethod
    def join(parts: Sequence[Candidates]) -> Candidates:
        return Candidates(np.concatenate([p.boxes for p in parts]),
                          np.concatenate([p.scores for p in parts]),
                          np.concatenate([p.image for p in parts]))

    def __len__(self) -> int:
        return len(self.scores)


def pyramid_scales(height: int, width: int, min_face_size: float, factor: float) -> list[float]:
    """The scales facenet-pytorch uses: the smallest face maps to P-Net's 12 px window."""
    m = 12.0 / min_face_size
    side = min(height, width) * m
    scales = []
    scale = m
    while side >= 12:
        scales.append(scale)
        scale *= factor
        side *= factor
    return scales


def content_extents(images: np.ndarray) -> np.ndarray:
    """Per image of a ``(B, H, W, 3)`` batch, the rows and columns up to the last one holding a
    nonzero pixel, ``(B, 2)``: a canvas padded with zeros to a square has nothing beyond them."""
    batch, height = images.shape[:2]
    rows = images.reshape(batch, height, -1).max(axis=2) > 0
    cols = images.max(axis=1).max(axis=2) > 0

    def last(filled: np.ndarray) -> np.ndarray:
        return np.where(filled.any(axis=1), filled.shape[1] - filled[:, ::-1].argmax(axis=1), 0)

    return np.stack([last(rows), last(cols)], axis=1)


def extent_groups(extents: np.ndarray, height: int, width: int,
                  steps: int = 8) -> list[tuple[np.ndarray, tuple[int, int]]]:
    """Images whose content extents round up to the same ``1/steps`` of the canvas, each group
    with the largest extent of its members: P-Net runs once per group over that extent, so a
    batch of landscape and portrait photos skips each one's padding."""
    side = np.array([height, width])
    members: dict[tuple[int, int], list[int]] = {}
    for i, key in enumerate(map(tuple, -(-extents * steps // side))):  # ceil
        members.setdefault(key, []).append(i)
    groups = []
    for key in sorted(members):
        group = np.asarray(members[key])
        rows, cols = extents[group].max(axis=0)
        groups.append((group, (int(rows), int(cols))))
    return groups


def window_span(level: int, source: int, content: int) -> int:
    """How many rows (or columns) of a pyramid level P-Net has to see when the source rows from
    ``content`` on are all zero: every 12-px window (stride 2) that touches a level row made
    from nonzero rows, and no more. An even count minus the 3x3 convolution keeps P-Net's
    ceil-mode pooling from meeting a partial window, so the outputs it computes equal those of
    the whole level; 0 when no row holds anything."""
    starts, _ = resample.grid_cells(source, level)
    last = int(np.count_nonzero(starts < content)) - 1
    return 0 if last < 0 else min(level, 2 * (last // 2) + 12)


def nms(c: Candidates, threshold: float) -> np.ndarray:
    """Kept indices (by descending score) of IoU NMS within each image: torchvision's
    ``batched_nms`` arithmetic (areas without the +1, a stable sort, images kept apart by
    offsetting their boxes), by OpenCV's ``NMSBoxes`` in float64. OpenCV's call costs a
    fraction of torch's between the cascade's network runs (~20 vs ~100 us a call)."""
    if not len(c):
        return np.zeros(0, np.int64)
    boxes = c.boxes.astype(np.float64)
    if c.image[0] != c.image[-1] or (c.image != c.image[0]).any():
        boxes += (c.image * (boxes.max() + 1.0))[:, None]
    boxes[:, 2:] -= boxes[:, :2]  # x, y, width, height
    return np.asarray(cv2.dnn.NMSBoxes(boxes, c.scores, 0.0, threshold), np.int64).reshape(-1)


def nms_min(c: Candidates, threshold: float) -> np.ndarray:
    """NMS by intersection over the smaller box (facenet-pytorch's last stage), areas with the
    +1 pixel convention, images kept apart by offsetting their boxes as it does."""
    if not len(c):
        return np.zeros(0, np.int64)
    boxes = c.boxes + (c.image.astype(np.float32) * (c.boxes.max() + 1))[:, None]
    x1, y1, x2, y2 = boxes.T
    area = (x2 - x1 + 1) * (y2 - y1 + 1)
    order = np.argsort(c.scores)
    picked = []
    while order.size:
        i, rest = order[-1], order[:-1]
        picked.append(i)
        w = np.maximum(0.0, np.minimum(x2[i], x2[rest]) - np.maximum(x1[i], x1[rest]) + 1)
        h = np.maximum(0.0, np.minimum(y2[i], y2[rest]) - np.maximum(y1[i], y1[rest]) + 1)
        order = rest[(w * h) / np.minimum(area[i], area[rest]) <= threshold]
    return np.asarray(picked, np.int64)


def square(boxes: np.ndarray) -> np.ndarray:
    """facenet-pytorch's ``rerec``: the square of the longer side, same centre."""
    w, h = boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1]
    side = np.maximum(w, h)
    x1 = boxes[:, 0] + w * np.float32(0.5) - side * np.float32(0.5)
    y1 = boxes[:, 1] + h * np.float32(0.5) - side * np.float32(0.5)
    return np.stack([x1, y1, x1 + side, y1 + side], axis=1)


def regress(boxes: np.ndarray, reg: np.ndarray) -> np.ndarray:
    """facenet-pytorch's ``bbreg``: offsets in units of the (+1) box size."""
    w = boxes[:, 2] - boxes[:, 0] + 1
    h = boxes[:, 3] - boxes[:, 1] + 1
    return np.stack([boxes[:, 0] + reg[:, 0] * w, boxes[:, 1] + reg[:, 1] * h,
                     boxes[:, 2] + reg[:, 2] * w, boxes[:, 3] + reg[:, 3] * h], axis=1)


class Cascade:
    """``detect(images)``: the faces of each image of a ``(B, H, W, 3)`` uint8 batch.
    ``timings``, when a dict, accumulates seconds of ``clock`` per stage (``STAGE_NAMES``)."""

    def __init__(self, pnet: Network, rnet: Network, onet: Network, min_face_size: float = 20,
                 thresholds: Sequence[float] = (0.6, 0.7, 0.7), factor: float = 0.709) -> None:
        self.pnet, self.rnet, self.onet = pnet, rnet, onet
        self.min_face_size = min_face_size
        self.thresholds = [float(t) for t in thresholds]
        self.factor = factor
        self.timings: dict[str, float] | None = None
        self.clock: Callable[[], float] = time.perf_counter
        self._skip_blank: bool | None = None  # see blank_windows_pass

    def blank_windows_pass(self) -> bool:
        """Whether P-Net rejects an all-zero window: then the zero padding of the canvases
        holds no proposal and P-Net can skip it (``window_span``)."""
        if self._skip_blank is None:
            blank = np.zeros((1, 3, 12, 12), np.float32)
            self._skip_blank = float(self.pnet(blank)[1][0, -1, 0, 0]) < self.thresholds[0]
        return self._skip_blank

    def _tick(self, stage: str, start: float) -> float:
        now = self.clock()
        if self.timings is not None:
            self.timings[stage] = self.timings.get(stage, 0.0) + now - start
        return now

    def detect(self, images: np.ndarray) -> list[Faces]:
        batch, height, width = images.shape[:3]
        t = self.clock()
        if self.blank_windows_pass():
            groups = extent_groups(content_extents(images), height, width)
        else:
            groups = [(np.arange(batch), (height, width))]
        order = np.concatenate([members for members, _ in groups])
        if (order != np.arange(batch)).any():
            images = images[order]  # each group a slice of the batch
        integral = integral_images(images)
        t = self._tick("pyramid", t)
        found, start = [], 0
        for members, extent in groups:
            stop = start + len(members)
            group = self._proposals(integral[start:stop], height, width, extent)
            group.image += start
            found.append(group)
            start = stop
        c = Candidates.join(found)
        t = self.clock()
        if len(c):
            c, reg = self._refine(c, integral, 24, self.rnet, self.thresholds[1], "rnet")
            t = self.clock()
            keep = nms(c, 0.7)
            c = c.take(keep)
            c.boxes = square(regress(c.boxes, reg[keep]))
            t = self._tick("nms_boxes", t)
        points = np.zeros((0, 5, 2), np.float32)
        if len(c):
            c, (reg, marks) = self._refine(c, integral, 48, self.onet, self.thresholds[2],
                                           "onet", landmarks=True)
            t = self.clock()
            w = c.boxes[:, 2] - c.boxes[:, 0] + 1
            h = c.boxes[:, 3] - c.boxes[:, 1] + 1
            points = np.stack([w[:, None] * marks[:, :5] + c.boxes[:, :1] - 1,
                               h[:, None] * marks[:, 5:] + c.boxes[:, 1:2] - 1], axis=2)
            c.boxes = regress(c.boxes, reg)
            keep = nms_min(c, 0.7)
            c, points = c.take(keep), points[keep]
        out: list[Faces] = [None] * batch  # type: ignore[list-item]
        for b, original in enumerate(order):
            mine = np.flatnonzero(c.image == b)
            out[original] = (c.boxes[mine], c.scores[mine], points[mine])
        self._tick("output", t)
        return out

    def _proposals(self, integral: np.ndarray, height: int, width: int,
                   extent: tuple[int, int]) -> Candidates:
        """P-Net over every pyramid level (the part of it that is not zero padding); NMS per
        level, then across levels; regressed and squared boxes."""
        levels = []
        for scale in pyramid_scales(height, width, self.min_face_size, self.factor):
            t = self.clock()
            size = int(height * scale + 1), int(width * scale + 1)
            rows = window_span(size[0], height, extent[0])
            cols = window_span(size[1], width, extent[1])
            if not rows or not cols:  # nothing but zeros: no proposal
                continue
            pixels = resize_area(integral, *size, rows, cols)
            t = self._tick("pyramid", t)
            reg, prob = self.pnet(pixels)
            t = self._tick("pnet", t)
            image, y, x = np.nonzero(prob[:, -1] >= self.thresholds[0])
            boxes = np.empty((len(x), 4), np.float32)  # P-Net's 12-px windows, stride 2
            boxes[:, 0], boxes[:, 1] = 2 * x + 1, 2 * y + 1
            boxes[:, 2], boxes[:, 3] = 2 * x + 12, 2 * y + 12
            boxes /= np.float32(scale)
            level = Candidates(np.floor(boxes, out=boxes), prob[image, -1, y, x],
                               image.astype(np.int64))
            keep = nms(level, 0.5)
            levels.append((level.take(keep), reg[image, :, y, x][keep]))
            self._tick("nms_boxes", t)
        t = self.clock()
        if not levels:  # images smaller than min_face_size: no pyramid level at all
            return Candidates(np.zeros((0, 4), np.float32), np.zeros(0, np.float32),
                              np.zeros(0, np.int64))
        c = Candidates.join([lv for lv, _ in levels])
        reg = np.concatenate([r for _, r in levels])
        keep = nms(c, 0.7)
        c, reg = c.take(keep), reg[keep]
        w, h = c.boxes[:, 2] - c.boxes[:, 0], c.boxes[:, 3] - c.boxes[:, 1]
        c.boxes = square(np.stack([c.boxes[:, 0] + reg[:, 0] * w, c.boxes[:, 1] + reg[:, 1] * h,
                                   c.boxes[:, 2] + reg[:, 2] * w, c.boxes[:, 3] + reg[:, 3] * h],
                                  axis=1))
        self._tick("nms_boxes", t)
        return c

    def _refine(self, c: Candidates, integral: np.ndarray, size: int, network: Network,
                threshold: float, name: str, landmarks: bool = False):
        """Crop every candidate (clipped to the image, as facenet-pytorch's ``pad``), resample
        to ``size``, score; keep those above ``threshold`` with their network outputs."""
        t = self.clock()
        height, width = integral.shape[1] - 1, integral.shape[2] - 1
        edges = np.trunc(c.boxes).astype(np.int64)
        x0 = np.maximum(edges[:, 0], 1) - 1
        y0 = np.maximum(edges[:, 1], 1) - 1
        x1 = np.minimum(edges[:, 2], width)
        y1 = np.minimum(edges[:, 3], height)
        inside = (x1 > x0) & (y1 > y0)  # a box wholly outside the image has no pixels
        if not inside.all():
            c, x0, y0, x1, y1 = c.take(inside), x0[inside], y0[inside], x1[inside], y1[inside]
        pixels = area_resample(integral, c.image, y0, y1, x0, x1, size, size)
        t = self._tick(f"{name}_crops", t)
        out = network(pixels) if len(c) else None
        t = self._tick(name, t)
        if out is None:
            return c, ((np.zeros((0, 4), np.float32), np.zeros((0, 10), np.float32))
                       if landmarks else np.zeros((0, 4), np.float32))
        score = out[-1][:, 1]
        passed = score > threshold
        c = Candidates(c.boxes[passed], score[passed], c.image[passed])
        if landmarks:
            return c, (out[0][passed], out[1][passed])
        return c, out[0][passed]
