"""Area resampling of many image regions at once, from integral images.

facenet-pytorch resizes every candidate crop with ``interpolate(mode="area")`` (adaptive
average pooling: output cell ``i`` of ``n`` averages input rows ``floor(i*h/n)`` to
``ceil((i+1)*h/n)``), one crop at a time. Every such cell is a box sum, so one integral image
per picture serves all crops: four gathers and a division, for every region in one call. The pixels are integers and so are the sums, which
makes the result match the per-crop pooling to float rounding.
"""

from __future__ import annotations

import functools

import cv2
import numpy as np


def integral_images(images: np.ndarray) -> np.ndarray:
    """``(B, H, W, C)`` uint8 -> ``(B, H+1, W+1, C)`` sums of everything above and left."""
    b, h, w, c = images.shape
    if h * w * 255 >= 2**31:  # int32 would overflow: exact int64 sums, the slower way
        out = np.zeros((b, h + 1, w + 1, c), np.int64)
        np.cumsum(images, axis=1, dtype=np.int64, out=out[:, 1:, 1:])
        np.cumsum(out[:, 1:, 1:], axis=2, out=out[:, 1:, 1:])
        return out
    out = np.empty((b, h + 1, w + 1, c), np.int32)
    for i in range(b):  # OpenCV's is ~10x numpy's two cumsums
        out[i] = cv2.integral(images[i], sdepth=cv2.CV_32S).reshape(h + 1, w + 1, c)
    return out


def cells(start: np.ndarray, stop: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Adaptive-pooling cell edges of ``n`` cells over ``[start, stop)``, per region:
    two ``(R, n)`` arrays of absolute indices."""
    length = (stop - start)[:, None]
    i = np.arange(n)[None, :]
    lo = start[:, None] + (i * length) // n
    hi = start[:, None] + -((-(i + 1) * length) // n)  # ceil division
    return lo, hi


def area_resample(integral: np.ndarray, image: np.ndarray, y0: np.ndarray, y1: np.ndarray,
                  x0: np.ndarray, x1: np.ndarray, height: int, width: int) -> np.ndarray:
    """Regions ``[y0, y1) x [x0, x1)`` of images ``image`` (indices into ``integral``'s
    batch), each resampled to ``height x width``: ``(R, C, height, width)`` float32."""
    _, rows, cols, channels = integral.shape
    flat = integral.reshape(-1, channels)
    ya, yb = cells(y0, y1, height)
    xa, xb = cells(x0, x1, width)
    # Row offsets into the flattened batch: one ``take`` per corner is far cheaper than
    # numpy's advanced indexing over three index arrays.
    base = (image * rows)[:, None]
    top, bottom = ((base + ya) * cols)[:, :, None], ((base + yb) * cols)[:, :, None]
    left, right = xa[:, None, :], xb[:, None, :]
    total = flat.take(bottom + right, axis=0)
    total -= flat.take(top + right, axis=0)
    total -= flat.take(bottom + left, axis=0)
    total += flat.take(top + left, axis=0)
    count = ((yb - ya)[:, :, None] * (xb - xa)[:, None, :]).astype(np.float32)
    out = np.empty((len(image), channels, height, width), np.float32)
    np.divide(total.transpose(0, 3, 1, 2), count[:, None], out=out, dtype=np.float32)
    return out


@functools.lru_cache(maxsize=256)
def grid_cells(source: int, n: int) -> tuple[np.ndarray, np.ndarray]:
    """``cells`` of a whole side of ``source`` pixels, for every pyramid level of a canvas
    size (read-only, shared)."""
    lo, hi = (e[0] for e in cells(np.zeros(1, np.int64), np.full(1, source), n))
    lo.flags.writeable = hi.flags.writeable = False
    return lo, hi


def resize_area(integral: np.ndarray, height: int, width: int, rows: int | None = None,
                cols: int | None = None) -> np.ndarray:
    """Whole images resampled to ``height x width`` (a pyramid level) from the integral images
    ``(B, H+1, W+1, C)``: ``(B, C, height, width)`` float32, or only its first ``rows`` and
    ``cols``. The cells of a whole image form a grid, so the box sums come from two
    differences of gathered rows and columns instead of four gathers per cell; the division
    writes the channel-first layout the networks take."""
    ya, yb = (e[:rows] for e in grid_cells(integral.shape[1] - 1, height))
    xa, xb = (e[:cols] for e in grid_cells(integral.shape[2] - 1, width))
    strips = integral.take(yb, axis=1)
    strips -= integral.take(ya, axis=1)
    total = strips.take(xb, axis=2)
    total -= strips.take(xa, axis=2)
    count = ((yb - ya)[:, None] * (xb - xa)[None, :]).astype(np.float32)
    out = np.empty((len(integral), integral.shape[3], len(yb), len(xb)), np.float32)
    np.divide(total.transpose(0, 3, 1, 2), count, out=out, dtype=np.float32)
    return out
