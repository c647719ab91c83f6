"""Decoding any input image to RGB uint8, with a counted reason instead of a crash.

Real datasets hold greyscale, palette, RGBA, CMYK and 16-bit files next to broken ones
(zero bytes, truncated JPEGs). Every input either becomes an ``HxWx3`` uint8 array, noting the
mode it was converted from, or an ``ImageError`` whose ``reason`` is a skip-report key.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageOps

# Decoders of sources whose images are not files (FER2013's CSV rows: "<csv>#<row>").
Loader = Callable[[str], np.ndarray]

MISSING = "image file missing"
EMPTY = "zero-byte file"
CORRUPT = "unreadable or corrupt image"
TOO_LARGE = "image too large to decode"


class ImageError(Exception):
    """An input that cannot become an image; ``reason`` is the counted skip reason."""

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason


@dataclass(frozen=True)
class Decoded:
    image: np.ndarray  # HxWx3 uint8 RGB
    converted_from: str | None  # the input's mode when it was not 8-bit RGB (counted)


def load_rgb(path: str, loader: Loader | None = None) -> Decoded:
    """``path`` decoded to RGB; ``loader`` (if given) decodes paths that are not files."""
    if loader is not None and not os.path.isfile(path):
        try:
            return _from_array(loader(path))
        except (KeyError, ValueError, OSError) as exc:
            raise ImageError(MISSING, str(exc)) from exc
    try:
        if os.path.getsize(path) == 0:
            raise ImageError(EMPTY)
    except FileNotFoundError as exc:
        raise ImageError(MISSING) from exc
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path) as img:
                img.load()  # decodes now: a truncated file fails here, not later
                # Phone photos stored sideways; in place: without an orientation tag the
                # default returns a copy of the whole image.
                ImageOps.exif_transpose(img, in_place=True)
                return _from_pil(img)
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise ImageError(TOO_LARGE, str(exc)) from exc
    except (OSError, ValueError, SyntaxError) as exc:  # PIL's errors for broken files
        raise ImageError(CORRUPT, str(exc)) from exc


def _from_pil(img: Image.Image) -> Decoded:
    mode = img.mode
    if mode == "RGB":
        return Decoded(np.asarray(img), None)
    if mode in ("I;16", "I;16B", "I;16L", "I"):  # 16-bit: scale, do not clip to white
        arr = np.asarray(img, dtype=np.float64)
        scale = 257.0 if arr.max(initial=0) > 255 else 1.0
        grey = np.clip(arr / scale, 0, 255).astype(np.uint8)
        return Decoded(np.repeat(grey[..., None], 3, axis=2), mode)
    if mode == "F":
        grey = np.clip(np.asarray(img), 0, 255).astype(np.uint8)
        return Decoded(np.repeat(grey[..., None], 3, axis=2), mode)
    if "A" in mode or (mode == "P" and "transparency" in img.info):
        # Transparent pixels over mid grey: their hidden RGB is often black or garbage.
        rgba = img.convert("RGBA")
        canvas = Image.new("RGBA", rgba.size, (128, 128, 128, 255))
        return Decoded(np.asarray(Image.alpha_composite(canvas, rgba).convert("RGB")), mode)
    return Decoded(np.asarray(img.convert("RGB")), mode)  # L, P, CMYK, YCbCr, 1, LAB...


def _from_array(arr: np.ndarray) -> Decoded:
    arr = np.asarray(arr)
    if arr.dtype != np.uint8:
        raise ImageError(CORRUPT, f"array of dtype {arr.dtype}")
    if arr.ndim == 2:
        return Decoded(np.repeat(arr[..., None], 3, axis=2), "L")
    if arr.ndim == 3 and arr.shape[2] == 3:
        return Decoded(arr, None)
    raise ImageError(CORRUPT, f"array of shape {arr.shape}")
