"""Drawing one synthetic face: every attribute as visible traits that survive greyscale and
48 px, with pose, scale, lighting, noise, blur, background clutter and occluders as nuisances."""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence
from typing import Any

import cv2
import numpy as np

from mtlface.data.synthetic.attributes import DISGUST
from mtlface.labels import label

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
_NEUTRAL = _EMOTION_STYLE[label("emotion").classes.index("neutral")]
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
    smile; ``eyeglasses`` and ``no_beard`` where given, else drawn by chance, unlabelled); ``rng`` draws the individual look and the nuisances. Returns uint8 RGB HxWx3, or HxW
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
    if "no_beard" in attrs:  # a labelled beard: drawn as the label says
        beard = not int(attrs["no_beard"])
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

    # Occasional occluder: glasses or a blob (hand, microphone, sticker). A source labelling
    # eyeglasses draws them as the label says (and no unlabelled ones).
    def glasses() -> None:
        frame = rng.uniform(0, 80, 3)
        rim = eye_w * 1.3
        pen.line(frame, 0.05, *(_ellipse(side * eye_x, eye_y, rim, 0.22) for side in (-1, 1)),
                 closed=True)
        pen.line(frame, 0.05, np.array([[rim - eye_x, eye_y], [eye_x - rim, eye_y]]))

    occluder = rng.random() < 0.12
    glasses_drawn = occluder and rng.random() < 0.5
    if "eyeglasses" in attrs:
        glasses_drawn = bool(int(attrs["eyeglasses"]))
    if glasses_drawn:
        glasses()
    elif occluder:
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
