"""The embedded default dataset: deterministic synthetic faces from several "sources".

Each source mimics a real dataset (which tasks it labels, split sizes, colour or grey, image size).
Every face has all five attributes drawn as visible traits that survive greyscale and 48 px:

- age: child faces are rounder with bigger, lower eyes (1-22 y); forehead wrinkles darken from
  ~22 y, hair greys from ~38 y, eye bags and nose-to-mouth folds from ~45 y. All ramps are
  continuous with per-face jitter, so both regression and age bins are learnable.
- gender: hair length (long hair beside the face vs a short cap), jaw shape (square vs pointed),
  beard shadow / moustache on some adult males, thinner brows and lipstick on some females;
  ~7 % of faces get the other gender's hair style so the task is not trivial.
- race: skin luminance (five levels ~30 grey values apart) plus eye height/tilt, nose width,
  lip thickness and brow weight.
- emotion: each class is a distinct mix of mouth curve/opening/asymmetry, brow angle and height,
  and eye openness, scaled by a random intensity. smile is the happy mouth (corners up).

Nuisances (pose, scale, lighting, noise, blur, background clutter, occluders) keep it non-trivial.
A manifest is generated once per settings hash under ``<root>/<hash>/`` and reused afterwards.
"""

from __future__ import annotations

import argparse
import functools
import hashlib
import json
import logging
import multiprocessing
import os
import re
import shutil
import sys
import time
import zlib
from collections.abc import Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pandas as pd

from mtlface.data.manifest import COLUMNS, MANIFEST_NAME, SPLITS, read_manifest, write_manifest
from mtlface.labels import LABELS

log = logging.getLogger(__name__)

# Part of the cache key: bump it whenever sampling or drawing changes, so old caches are not reused.
GENERATOR_VERSION = 3

DEFAULT_SOURCES: dict[str, dict[str, Any]] = {
    "imdb_like": {"tasks": ["age", "gender"], "image_size": 64, "grey": False,
                  "splits": {"train": 3000, "val": 300, "test": 300}},
    "utk_like": {"tasks": ["age", "gender", "race"], "image_size": 64, "grey": False,
                 "splits": {"train": 2000, "val": 300, "test": 300}},
    "genki_like": {"tasks": ["smile"], "image_size": 64, "grey": False,
                   "splits": {"train": 1500, "val": 300, "test": 300}},
    "fer_like": {"tasks": ["emotion"], "image_size": 48, "grey": True,
                 "splits": {"train": 2500, "val": 300, "test": 300}},
}

# JPEG quality 95, not PNG: measured on 64 px faces (cv2 encode + PIL decode), JPEG ~50 + 150 us
# vs PNG ~220 + 270 us, and 3x smaller (2.9 vs 8.6 KB: the noise defeats PNG compression).
IMAGE_EXT = ".jpg"
_IMAGE_PARAMS = [cv2.IMWRITE_JPEG_QUALITY, 95]
_SOURCE_KEYS = ("tasks", "splits", "image_size", "grey", "folds")
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")
_IMAGE_SIZES = (16, 512)
_CHUNK = 250  # images per worker job: big enough to amortise pickling, small enough to balance

HAPPY = LABELS["emotion"].classes.index("happy")
DISGUST = LABELS["emotion"].classes.index("disgust")
_NOT_HAPPY = [e for e in range(LABELS["emotion"].num_classes) if e != HAPPY]

# Per emotion: brow inner/outer end offsets (face units, + = down), brow raise, eye openness,
# mouth curve (+ = corners up), mouth opening, mouth width, mouth asymmetry.
_EMOTION_STYLE = np.array([
    # inner  outer  raise  eyes  curve  open  width  asym
    [0.13, -0.05, 0.00, 0.65, -0.10, 0.00, 0.80, 0.00],  # angry: V brows, narrow eyes, tight mouth
    [0.06, 0.02, 0.00, 0.50, -0.12, 0.06, 0.85, 0.22],  # disgust: squint, lopsided snarl
    [-0.09, 0.03, 0.10, 1.40, -0.08, 0.14, 1.20, 0.00],  # fear: raised worried brows, wide eyes
    [0.00, 0.00, 0.02, 0.75, 0.30, 0.08, 1.15, 0.00],  # happy: corners up
    [-0.11, 0.07, 0.00, 0.70, -0.28, 0.00, 0.90, 0.00],  # sad: inner brows up, corners down
    [0.00, 0.00, 0.18, 1.50, 0.00, 0.42, 0.55, 0.00],  # surprise: high brows, wide eyes, O mouth
    [0.00, 0.00, 0.00, 1.00, 0.00, 0.00, 1.00, 0.00],  # neutral
])
_NEUTRAL = _EMOTION_STYLE[LABELS["emotion"].classes.index("neutral")]
_EXPRESSION_GAIN = 1.4

# Per race (white, black, asian, indian, others): skin grey level, eye height, eye tilt, nose
# width, lip thickness, brow weight. Luminance is the main cue, the shapes a second one.
_RACE_STYLE = np.array([
    # lum  eye_h  tilt  nose  lips  brow
    [200, 1.00, 0.00, 0.85, 0.9, 1.0],
    [84, 1.00, 0.00, 1.45, 1.4, 1.0],
    [171, 0.62, 0.10, 1.00, 1.0, 0.9],
    [113, 1.08, -0.03, 1.15, 1.1, 1.45],
    [142, 0.82, 0.04, 1.25, 1.2, 1.2],
])
_SKIN_HUE = np.array([1.15, 0.96, 0.80])  # RGB factors whose luminance is ~1: a warm skin tint

_NOISE_BANK = 640  # side of the shared noise image (>= the largest image_size)
_FIX_BITS = 4  # cv2 fixed-point coordinates: 1/16 px precision for anti-aliased sub-pixel shapes
_FIX = 1 << _FIX_BITS


# ----------------------------------------------------------------------------- drawing

def _ramp(x: float, lo: float, hi: float) -> float:
    """0 below ``lo``, 1 above ``hi``, linear between."""
    return min(1.0, max(0.0, (x - lo) / (hi - lo)))


def _colour(rgb: np.ndarray | Sequence[float]) -> tuple[float, ...]:
    # No clipping needed: cv2 saturates colour values to the image's 0..255.
    return tuple(np.asarray(rgb, dtype=float).tolist())


@functools.cache
def _unit_arc(t0: float, t1: float, n: int) -> np.ndarray:
    t = np.linspace(t0, t1, n, endpoint=t1 - t0 < 2 * np.pi)
    return np.stack([np.cos(t), np.sin(t)], axis=1)


def _ellipse(cx: float, cy: float, ax: float, ay: float, t0: float = 0.0,
             t1: float = 2 * np.pi, n: int = 24) -> np.ndarray:
    """Points on an ellipse (or the arc t0..t1; angles grow clockwise on screen, y is down)."""
    return _unit_arc(t0, t1, n) * (ax, ay) + (cx, cy)


_T9 = np.linspace(-1.0, 1.0, 9)


def _curve(x0: float, x1: float, y: Any) -> np.ndarray:
    """9 points along x0..x1 with ``y`` a function of t in [-1, 1]."""
    return np.stack([x0 + (_T9 + 1) * (x1 - x0) / 2, y(_T9)], axis=1)


class _Pen:
    """Draws in face units (origin at the face centre, x right, y down, 1 = half the face width)
    through the face's pose (rotation, scale, translation) straight onto the pixel canvas."""

    def __init__(self, img: np.ndarray, centre: tuple[float, float], unit: float, angle: float):
        c, s = np.cos(angle), np.sin(angle)
        self.img, self.unit = img, unit
        self.m = unit * _FIX * np.array([[c, -s], [s, c]])
        self.t = np.asarray(centre) * _FIX

    def _px(self, shapes: Sequence[np.ndarray]) -> list[np.ndarray]:
        return [(np.asarray(pts) @ self.m.T + self.t).astype(np.int32) for pts in shapes]

    def fill(self, rgb: Any, *shapes: np.ndarray) -> None:
        """Fill polygons (one cv2 call for all, e.g. both eyes)."""
        cv2.fillPoly(self.img, self._px(shapes), _colour(rgb), cv2.LINE_AA, _FIX_BITS)

    def line(self, rgb: Any, width: float, *shapes: np.ndarray, closed: bool = False) -> None:
        """Stroke polylines ``width`` face units thick (at least 1 px)."""
        thickness = max(1, round(width * self.unit))
        cv2.polylines(self.img, self._px(shapes), closed, _colour(rgb), thickness, cv2.LINE_AA,
                      _FIX_BITS)


_OUTLINE_S, _OUTLINE_C = _unit_arc(0.0, 2 * np.pi, 40).T[::-1]  # starts at the chin, y is down
_OUTLINE_LOW = _OUTLINE_C > 0


def _face_outline(aspect: float, jaw_power: float, jaw_width: float, hairline: float) -> np.ndarray:
    """Round forehead, a squarer (``jaw_power`` > 2) or pointier lower half, cut at the hairline."""
    s, c = _OUTLINE_S, _OUTLINE_C
    exponent = np.where(_OUTLINE_LOW, 2 / jaw_power, 1.0)
    x = np.sign(s) * np.abs(s) ** exponent * (1 - (1 - jaw_width) * np.maximum(c, 0))
    y = aspect * np.sign(c) * np.abs(c) ** exponent
    return np.stack([x, np.maximum(y, hairline + 0.25 * x * x)], axis=1)


@functools.cache
def _noise_bank() -> np.ndarray:
    """Fixed gaussian noise that images crop from: ~15x faster than fresh normals per image."""
    return np.random.default_rng(12345).standard_normal((_NOISE_BANK, _NOISE_BANK, 3),
                                                       dtype=np.float32)


def _noise_patch(rng: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
    y, x = (int(v) for v in rng.integers(0, _NOISE_BANK - max(shape[:2]) + 1, 2))
    patch = _noise_bank()[y:y + shape[0], x:x + shape[1]]
    return patch if len(shape) == 3 else patch[..., int(rng.integers(3))]


@functools.cache
def _ramp_strip(size: int) -> np.ndarray:
    return np.linspace(-1.0, 1.0, size, dtype=np.float32)


def _background(rng: np.random.Generator, size: int) -> np.ndarray:
    """A two-colour gradient with random lines, ellipses and boxes: clutter to ignore."""
    c0, c1 = rng.uniform(0, 255, 3), rng.uniform(0, 255, 3)
    strip = (c0 + (c1 - c0) * (_ramp_strip(size)[:, None] + 1) / 2).astype(np.uint8)
    strip = strip[:, None] if rng.random() < 0.5 else strip[None, :]  # vertical or horizontal
    img = np.broadcast_to(strip, (size, size, 3)).copy()
    # One uniform draw per shape, split into its parameters (one rng call is much cheaper than 8).
    # Aliased (LINE_8): clutter needs no anti-aliasing, which would double its cost.
    for u in rng.random((int(rng.integers(2, 7)), 10)):
        rgb = _colour(u[:3] * 255)
        x0, y0, x1, y1 = (int(v) for v in u[3:7] * size)
        thickness = (-1, 1, 2)[int(u[7] * 3)]
        kind = u[8] * 3
        if kind < 1:
            cv2.line(img, (x0, y0), (x1, y1), rgb, thickness + 2, cv2.LINE_8)
        elif kind < 2:
            axes = (2 + x1 // 3, 2 + y1 // 3)
            cv2.ellipse(img, (x0, y0), axes, u[9] * 180, 0, 360, rgb, thickness, cv2.LINE_8)
        else:
            cv2.rectangle(img, (x0, y0), (x1, y1), rgb, thickness)
    return img


def render_face(attrs: Mapping[str, Any], rng: np.random.Generator, image_size: int = 64,
                grey: bool = False) -> np.ndarray:
    """Draw one face whose visible traits encode ``attrs`` (all of age, gender, race, emotion,
    smile); ``rng`` draws the individual look and the nuisances. Returns uint8 RGB HxWx3, or HxW
    when ``grey``."""
    age, female = float(attrs["age"]), int(attrs["gender"]) == 1
    lum, eye_h, eye_tilt, nose_w, lip_w, brow_w = _RACE_STYLE[int(attrs["race"])].tolist()
    # Emotion: blend from neutral by a random intensity, so some expressions are subtler; the
    # gain keeps even subtle ones readable at 48 px grey, where a brow is ~2 pixels.
    intensity = _EXPRESSION_GAIN * rng.uniform(0.75, 1.0)
    style = _NEUTRAL + intensity * (_EMOTION_STYLE[int(attrs["emotion"])] - _NEUTRAL)
    brow_in, brow_out, brow_up, eye_open, curve, mouth_open, mouth_w, asym = style.tolist()
    asym *= 1.0 if rng.random() < 0.5 else -1.0
    if int(attrs["smile"]) and curve < 0.25:  # smile without the happy label: still corners up
        curve = rng.uniform(0.3, 0.42)

    # Age ramps, each with its own per-face jitter (people age differently).
    growth = _ramp(age + rng.normal(0, 1.5), 1, 22)  # child -> adult face proportions
    child = _ramp(14 - age + rng.normal(0, 1.0), 0, 13)  # big, low-set eyes
    wrinkles = _ramp(age + rng.normal(0, 3), 22, 67)
    greying = _ramp(age + rng.normal(0, 4), 38, 73)
    sagging = _ramp(age + rng.normal(0, 4), 45, 80)

    # Individual look: skin, hair colour and style, facial hair; ~7 % get the other gender's hair.
    skin = np.clip(lum + rng.normal(0, 6), 40, 235) * _SKIN_HUE * rng.uniform(0.96, 1.04, 3)
    hair_lum = rng.uniform(25, 95) if int(attrs["race"]) == 0 else rng.uniform(15, 45)
    hair_base = hair_lum * np.array([1.2, 1.0, 0.8]) * rng.uniform(0.9, 1.1, 3)
    hair = hair_base + (rng.uniform(185, 215) - hair_base) * greying
    long_hair = female != (rng.random() < 0.07)
    adult_male = (not female) and age >= 16
    beard = adult_male and rng.random() < 0.35 * _ramp(age, 16, 26)
    moustache = adult_male and rng.random() < 0.25 * _ramp(age, 16, 26)

    # Face geometry in face units (1 = half the face width).
    aspect = 1.02 + 0.28 * growth + rng.normal(0, 0.03)
    jaw_power = 2.0 + (0.9 if not female else 0.0) * growth + rng.normal(0, 0.1)
    jaw_width = (0.97 if not female else 0.88) + rng.normal(0, 0.02)
    hairline = -aspect * rng.uniform(0.58, 0.68)
    eye_y = aspect * (-0.12 + 0.16 * child)
    eye_x = 0.42
    eye_w = 0.24 * (1 + 0.25 * child)
    eye_hh = 0.13 * (1 + 0.3 * child) * eye_h * eye_open
    brow_y = eye_y - 0.24 - 0.1 * child - brow_up
    nose_y = aspect * 0.28 + 0.05 * child
    mouth_y = aspect * 0.56
    mouth_hw = 0.40 * mouth_w * (1 - 0.15 * child)

    # Pose: rotation +-10 deg, scale 0.9-1.1 (children a bit smaller), translation. The face
    # fills most of the frame, as a detector's crop would.
    size = image_size
    img = _background(rng, size)
    unit = size * 0.34 * rng.uniform(0.9, 1.1) * (0.88 + 0.12 * growth)
    centre = (size * (0.5 + rng.uniform(-0.06, 0.06)), size * (0.5 + rng.uniform(-0.06, 0.06)))
    pen = _Pen(img, centre, unit, np.deg2rad(rng.uniform(-10, 10)))

    # Clothes, neck, hair behind the head, ears, then the face over them.
    pen.fill(rng.uniform(0, 255, 3), _ellipse(0, aspect * 1.75 + 0.6, 2.3, 0.9))
    pen.fill(skin * 0.85, np.array([[-0.45, 0.5 * aspect], [0.45, 0.5 * aspect],
                                    [0.5, 1.9 * aspect], [-0.5, 1.9 * aspect]]))
    top = -0.1 * aspect
    hair_shape = _ellipse(0, top, 1.12, aspect * 1.02, np.pi, 2 * np.pi, 13)  # skull, left to right
    if long_hair:
        length = aspect * rng.uniform(0.9, 1.35)
        hair_shape = np.concatenate([hair_shape, [[1.32, length], [-1.32, length]]])
    pen.fill(hair, hair_shape)
    if not long_hair:
        ears = (_ellipse(side * 0.98, -0.02 * aspect, 0.15, 0.25) for side in (-1, 1))
        pen.fill(skin * 0.9, *ears)
    outline = _face_outline(aspect, jaw_power, jaw_width, hairline)
    pen.fill(skin, outline)
    if beard:
        pen.fill(skin + (hair_base - skin) * 0.35, outline[outline[:, 1] > nose_y + 0.08])

    # Age marks: forehead lines (each darkens in turn), eye bags and nose-to-mouth folds.
    for k in range(3):
        strength = min(1.0, wrinkles * 3 - k)
        if strength > 0:
            y = brow_y - 0.1 - 0.1 * k
            pen.line(skin * (1 - 0.45 * strength), 0.06,
                     _curve(-0.45, 0.45, lambda t, y=y: y - 0.03 * (1 - t * t)))
    if sagging > 0:
        bag = eye_y + eye_hh + 0.09
        pen.line(skin * (1 - 0.4 * sagging), 0.05,
                 *(_curve(side * eye_x - eye_w, side * eye_x + eye_w,
                          lambda t: bag + 0.04 * (1 - t * t)) for side in (-1, 1)),
                 *(np.array([[side * 0.22 * nose_w, nose_y],
                             [side * (mouth_hw + 0.1), mouth_y + 0.08]]) for side in (-1, 1)))

    # Eyes: sclera, iris, upper-lid line; eye height = race shape x emotion openness. The outer
    # corners are raised by eye_tilt (a shear of the eye ellipse).
    iris = min(0.12 * (1 + 0.3 * child), eye_hh)
    eye = _ellipse(0, 0, eye_w, eye_hh)
    lash = _ellipse(0, 0, eye_w, eye_hh, np.pi, 2 * np.pi, 9)
    eyes, lashes = [], []
    for side in (-1, 1):
        shear = np.array([[1.0, 0.0], [-side * eye_tilt / eye_w, 1.0]]).T
        eyes.append(eye @ shear + (side * eye_x, eye_y))
        lashes.append(lash @ shear + (side * eye_x, eye_y))
    pen.fill(rng.uniform(215, 240) * np.ones(3), *eyes)
    pen.fill(rng.uniform(30, 90) * np.array([1.0, 0.9, 0.8]),
             *(_ellipse(side * eye_x, eye_y, iris, iris) for side in (-1, 1)))
    pen.line(hair_base * 0.5, 0.06, *lashes)

    # Brows: inner and outer ends move by emotion; weight by race and gender.
    pen.line(hair_base + (hair - hair_base) * 0.6, 0.13 * brow_w * (0.8 if female else 1.0),
             *(np.array([[side * 0.16, brow_y + brow_in], [side * 0.44, brow_y - 0.05],
                         [side * 0.72, brow_y + brow_out]]) for side in (-1, 1)))

    # Nose: a shaded wedge and nostrils, width by race; disgust wrinkles the bridge.
    pen.fill(skin * 0.88,
             np.array([[0, eye_y + 0.12], [-0.2 * nose_w, nose_y], [0.2 * nose_w, nose_y]]))
    pen.fill(skin * 0.45, *(_ellipse(side * 0.11 * nose_w, nose_y, 0.06 * nose_w, 0.04)
                            for side in (-1, 1)))
    if int(attrs["emotion"]) == DISGUST:
        pen.line(skin * 0.6, 0.05, *(np.array([[side * 0.05, eye_y + 0.12],
                                               [side * 0.15, eye_y + 0.22]]) for side in (-1, 1)))

    # Mouth: corners up (smile) or down, opened into a dark hole, lopsided for disgust.
    lips = np.array([160.0, 40, 60]) if female and rng.random() < 0.5 else skin * [0.8, 0.55, 0.55]
    upper = _curve(-mouth_hw, mouth_hw, lambda t: mouth_y + curve * (0.4 - t * t) + asym * t)
    if moustache:
        pen.line(hair, 0.12, upper - (0, 0.13))
    if mouth_open > 0.02:
        lower = upper + np.stack([np.zeros(9), mouth_open * (1 - _T9 ** 2)], 1)
        pen.fill(skin * 0.2, np.concatenate([upper, lower[::-1]]))
        if curve > 0.15:  # an open smile shows teeth
            pen.line((235, 235, 225), 0.07, upper[2:-2] + (0, 0.04))
        pen.line(lips, 0.11 * lip_w, lower)
    pen.line(lips, 0.11 * lip_w, upper)

    # Occasional occluder: glasses or a blob (hand, microphone, sticker).
    if rng.random() < 0.12:
        if rng.random() < 0.5:
            frame = rng.uniform(0, 80, 3)
            rim = eye_w * 1.3
            pen.line(frame, 0.05, *(_ellipse(side * eye_x, eye_y, rim, 0.22) for side in (-1, 1)),
                     closed=True)
            pen.line(frame, 0.05, np.array([[rim - eye_x, eye_y], [eye_x - rim, eye_y]]))
        else:
            pen.fill(rng.uniform(0, 255, 3),
                     _ellipse(*rng.uniform(-0.9, 0.9, 2), *rng.uniform(0.15, 0.35, 2)))

    # Photometric nuisance: contrast, brightness, colour cast, a lighting gradient, blur, noise.
    out = img.astype(np.float32)
    contrast = rng.uniform(0.8, 1.2)
    out *= contrast
    out += (128 * (1 - contrast) + rng.uniform(-15, 15) + rng.uniform(-8, 8, 3)).astype(np.float32)
    light = _ramp_strip(size) * rng.uniform(0, 30)
    out += light[:, None, None] if rng.random() < 0.5 else light[None, :, None]
    if grey:
        out = cv2.cvtColor(out, cv2.COLOR_RGB2GRAY)
    if rng.random() < 0.5:
        out = cv2.GaussianBlur(out, (0, 0), rng.uniform(0.3, 0.9) * size / 64)
    out += _noise_patch(rng, out.shape) * rng.uniform(1.5, 6)
    return np.clip(out + 0.5, 0, 255).astype(np.uint8)


def sample_attributes(rng: np.random.Generator, tasks: Sequence[str]) -> dict[str, Any]:
    """All five attributes, balanced. smile follows emotion (happy smiles) except for a source
    that labels smile but not emotion: there smile is drawn 50/50 first and emotion follows."""
    age = float(rng.integers(1, 91))
    gender = int(rng.integers(2))
    race = int(rng.integers(LABELS["race"].num_classes))
    if "smile" in tasks and "emotion" not in tasks:
        smile = int(rng.integers(2))
        emotion = HAPPY if smile else _NOT_HAPPY[int(rng.integers(len(_NOT_HAPPY)))]
    else:
        emotion = int(rng.integers(LABELS["emotion"].num_classes))
        smile = int(emotion == HAPPY)
    return {"age": age, "gender": gender, "smile": smile, "emotion": emotion, "race": race}


# ----------------------------------------------------------------------------- settings

def normalize_sources(sources: Mapping[str, Mapping[str, Any]]) -> dict[str, dict[str, Any]]:
    """Validate source settings (plain mappings or Hydra DictConfigs) into canonical plain dicts,
    sorted by name, with defaults filled in (``image_size`` 64, ``grey`` false)."""
    if not isinstance(sources, Mapping) or not sources:
        raise ValueError(f"synthetic sources must be a non-empty mapping of name -> settings, "
                         f"got {sources!r}")
    return {str(name): _normalize_source(str(name), spec)
            for name, spec in sorted(sources.items(), key=lambda kv: str(kv[0]))}


def _normalize_source(name: str, spec: Any) -> dict[str, Any]:
    where = f"synthetic source {name!r}"
    if not _NAME.fullmatch(name):
        raise ValueError(f"{where}: the name must be letters, digits, '_', '.', '-' (it names a "
                         f"folder)")
    if not isinstance(spec, Mapping):
        raise ValueError(f"{where}: settings must be a mapping with keys {list(_SOURCE_KEYS)}")
    spec = dict(spec)
    unknown = sorted(set(map(str, spec)) - set(_SOURCE_KEYS))
    if unknown:
        raise ValueError(f"{where}: unknown key(s) {unknown}; valid keys are {list(_SOURCE_KEYS)}")

    tasks = spec.get("tasks")
    if isinstance(tasks, str) or not isinstance(tasks, Sequence) or not tasks:
        raise ValueError(f"{where}: 'tasks' must be a non-empty list drawn from {list(LABELS)}, "
                         f"got {tasks!r}")
    bad = [t for t in tasks if t not in LABELS]
    if bad:
        raise ValueError(f"{where}: unknown task(s) {bad}; valid tasks are {list(LABELS)}")
    tasks = [t for t in LABELS if t in tasks]  # canonical order: order is irrelevant to the data

    splits = spec.get("splits")
    if not isinstance(splits, Mapping) or not splits:
        raise ValueError(f"{where}: 'splits' must be a non-empty mapping of split -> count with "
                         f"splits from {list(SPLITS)}, got {splits!r}")
    splits = dict(splits)
    bad = [s for s in splits if s not in SPLITS]
    if bad:
        raise ValueError(f"{where}: unknown split(s) {bad}; valid splits are {list(SPLITS)}")
    for split, n in splits.items():
        if isinstance(n, bool) or not isinstance(n, int) or n <= 0:
            raise ValueError(f"{where}: split {split!r} size must be a positive integer, "
                             f"got {n!r}")

    image_size = spec.get("image_size", 64)
    lo, hi = _IMAGE_SIZES
    if isinstance(image_size, bool) or not isinstance(image_size, int) \
            or not lo <= image_size <= hi:
        raise ValueError(f"{where}: 'image_size' must be an integer in [{lo}, {hi}], "
                         f"got {image_size!r}")
    grey = spec.get("grey", False)
    if not isinstance(grey, bool):
        raise ValueError(f"{where}: 'grey' must be true or false, got {grey!r}")
    out = {"tasks": tasks, "splits": {s: int(splits[s]) for s in SPLITS if s in splits},
           "image_size": int(image_size), "grey": grey}
    folds = spec.get("folds")
    if folds is not None:  # only when set: the settings hash of a fold-less source is unchanged
        if isinstance(folds, bool) or not isinstance(folds, int) or folds < 3:
            raise ValueError(f"{where}: 'folds' must be an integer >= 3 (fold k tests, k+1 "
                             f"validates, the rest train) or null, got {folds!r}")
        out["folds"] = folds
    return out


def assign_folds(rows: pd.DataFrame, folds: int, seed: int) -> np.ndarray:
    """A ``fold`` per row (0..folds-1, sizes differing by at most one), from a permutation
    seeded by the generator seed and the source: like Adience's fold files, a fold column over
    all of a source's images, so ``data.fold=k`` cross-validates without new images."""
    source_id = zlib.crc32(str(rows["source"].iloc[0]).encode())
    order = np.random.default_rng([seed, source_id]).permutation(len(rows))
    fold = np.empty(len(rows), dtype=np.int64)
    fold[order] = np.arange(len(rows)) % folds
    return fold


# ----------------------------------------------------------------------------- generation

def _render_chunk(job: tuple[str, str, str, dict[str, Any], int, int, int]) -> list[dict]:
    """Render and write images ``start..stop-1`` of one source split; returns their manifest rows.
    Each image has its own seed, so chunking and worker count never change the result."""
    folder, name, split, spec, seed, start, stop = job
    tasks = spec["tasks"]
    source_id, split_id = zlib.crc32(name.encode()), SPLITS.index(split)
    rows = []
    for i in range(start, stop):
        rng = np.random.default_rng([seed, source_id, split_id, i])
        attrs = sample_attributes(rng, tasks)
        img = render_face(attrs, rng, spec["image_size"], spec["grey"])
        rel = f"{name}/{split}/{i:06d}{IMAGE_EXT}"
        if img.ndim == 3:
            img = img[..., ::-1]  # cv2 writes BGR
        if not cv2.imwrite(os.path.join(folder, rel), img, _IMAGE_PARAMS):
            raise OSError(f"could not write {os.path.join(folder, rel)}")
        rows.append({"path": rel, "source": name, "split": split,
                     **{t: (attrs[t] if t in tasks else None) for t in LABELS}})
    return rows


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)  # signal 0: only checks that the process exists
    except ProcessLookupError:
        return False
    except PermissionError:  # it exists, owned by another user
        pass
    return True


class SyntheticFaces:
    """Provider of a manifest: generates once per settings hash, then returns the cached one."""

    def __init__(self, root: str | os.PathLike, sources: Mapping[str, Mapping],
                 seed: int = 0, num_workers: int = 2):
        if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
            raise ValueError(f"synthetic seed must be a non-negative integer, got {seed!r}")
        self.root = Path(root)
        self.sources = normalize_sources(sources)
        self.seed = seed
        self.num_workers = num_workers
        self.settings = {"version": GENERATOR_VERSION, "seed": seed, "sources": self.sources}
        canonical = json.dumps(self.settings, sort_keys=True, separators=(",", ":"))
        self.key = hashlib.sha256(canonical.encode()).hexdigest()[:12]

    @property
    def folder(self) -> Path:
        return self.root / self.key

    @property
    def manifest_path(self) -> Path:
        return self.folder / MANIFEST_NAME

    def prepare(self) -> Path:
        """Return the path of ``manifest.csv``, generating the images first if needed.

        The folder only ever appears complete: everything is written into ``.tmp-<hash>-<pid>``
        and renamed into place at the end."""
        if self.manifest_path.is_file():
            return self.manifest_path
        self.root.mkdir(parents=True, exist_ok=True)
        self._remove_stale_temps()
        tmp = self.root / f".tmp-{self.key}-{os.getpid()}"
        shutil.rmtree(tmp, ignore_errors=True)
        start = time.perf_counter()
        try:
            n = self._generate(tmp)
            (tmp / "settings.json").write_text(json.dumps(self.settings, indent=2, sort_keys=True))
            self._publish(tmp)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        log.info("generated %d synthetic faces in %.1f s into %s", n, time.perf_counter() - start,
                 self.folder)
        return self.manifest_path

    def _generate(self, tmp: Path) -> int:
        jobs = []
        for name, spec in self.sources.items():
            for split, count in spec["splits"].items():
                (tmp / name / split).mkdir(parents=True)
                jobs += [(str(tmp), name, split, spec, self.seed, a, min(a + _CHUNK, count))
                         for a in range(0, count, _CHUNK)]
        if self.num_workers <= 1:
            chunks = list(map(_render_chunk, jobs))
        else:
            # fork on Linux: workers start in milliseconds and do not re-import the caller's
            # __main__ (a training script); elsewhere the platform default.
            ctx = multiprocessing.get_context("fork") if sys.platform == "linux" else None
            with ProcessPoolExecutor(min(self.num_workers, len(jobs)), mp_context=ctx) as pool:
                chunks = list(pool.map(_render_chunk, jobs))
        frame = pd.DataFrame([row for chunk in chunks for row in chunk], columns=list(COLUMNS))
        folded = {name: spec["folds"] for name, spec in self.sources.items() if "folds" in spec}
        if folded:
            frame["fold"] = pd.Series(pd.NA, index=frame.index, dtype="Int64")
            for name, folds in folded.items():
                mine = frame["source"] == name
                frame.loc[mine, "fold"] = assign_folds(frame[mine], folds, self.seed)
        write_manifest(frame, tmp / MANIFEST_NAME)
        rows = frame
        return len(rows)

    def _publish(self, tmp: Path) -> None:
        """Rename the finished folder into place; a concurrent run that got there first wins."""
        if self.folder.exists() and not self.manifest_path.is_file():
            log.warning("removing incomplete synthetic cache %s", self.folder)
            shutil.rmtree(self.folder)
        try:
            os.replace(tmp, self.folder)
        except OSError:
            if not self.manifest_path.is_file():
                raise

    def _remove_stale_temps(self) -> None:
        """Delete temp folders of this hash left by killed runs (their process is gone)."""
        if os.name != "posix":  # os.kill(pid, 0) is only a liveness probe on POSIX
            return
        for path in self.root.glob(f".tmp-{self.key}-*"):
            pid = path.name.rsplit("-", 1)[-1]
            if pid.isdigit() and int(pid) != os.getpid() and not _pid_alive(int(pid)):
                log.info("removing stale synthetic temp folder %s", path)
                shutil.rmtree(path, ignore_errors=True)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m mtlface.data.synthetic",
        description="Generate (or find cached) the default synthetic multi-source face dataset.")
    parser.add_argument("--root", required=True, help="cache folder; data goes in ROOT/<hash>/")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    path = SyntheticFaces(args.root, DEFAULT_SOURCES, args.seed, args.workers).prepare()
    counts = read_manifest(path).groupby(["source", "split"]).size().unstack(fill_value=0)
    print(path)
    print(counts.reindex(columns=list(SPLITS), fill_value=0).to_string())


if __name__ == "__main__":
    # Run the package's copy of this module, not __main__'s: the logger is then named
    # mtlface.data.synthetic and worker processes unpickle their function from the package.
    from mtlface.data.synthetic import main as package_main

    package_main()
