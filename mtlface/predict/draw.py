"""Drawing predictions onto an image: a box per face and its labels on a filled background,
sized to the image so they stay legible from thumbnails to 4K frames."""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np

from mtlface.predict.results import FacePrediction, TaskPrediction

BOX_COLOUR = (60, 200, 60)  # green in BGR and RGB order alike: frames come in either
TEXT_COLOUR = (255, 255, 255)
BACKGROUND = (30, 30, 30)
FONT = cv2.FONT_HERSHEY_SIMPLEX


def caption(name: str, pred: TaskPrediction) -> str:
    return pred.caption(name)


def draw_faces(image: np.ndarray, faces: Sequence[FacePrediction]) -> np.ndarray:
    """Draws in place on an HxWx3 uint8 image (either channel order) and returns it."""
    h, w = image.shape[:2]
    scale = max(0.4, min(h, w) / 900)
    thick = max(1, round(scale * 2))
    for face in faces:
        x1, y1, x2, y2 = (int(round(v)) for v in face.box)
        cv2.rectangle(image, (x1, y1), (x2, y2), BOX_COLOUR, thick + 1)
        lines = [caption(n, p) for n, p in face.tasks.items()]
        put_label(image, lines, (x1, y1), scale, thick, below=(x1, y2))
    return image


def put_label(image: np.ndarray, lines: Sequence[str], anchor: tuple[int, int], scale: float,
              thick: int, below: tuple[int, int] | None = None) -> None:
    """Lines of text on a filled box whose bottom-left is ``anchor`` (above a face box); when
    that leaves the image it goes at ``below`` (under the box), then inside the image."""
    if not lines:
        return
    sizes = [cv2.getTextSize(t, FONT, scale, thick) for t in lines]
    line_h = max(s[0][1] + s[1] for s in sizes) + 4
    width = max(s[0][0] for s in sizes) + 8
    height = line_h * len(lines) + 4
    h, w = image.shape[:2]
    x, y = anchor
    top = y - height
    if top < 0 and below is not None:
        top = below[1]
    top = int(min(max(0, top), max(0, h - height)))
    x = int(min(max(0, x), max(0, w - width)))
    cv2.rectangle(image, (x, top), (x + width, top + height), BACKGROUND, cv2.FILLED)
    for i, (text, ((_, text_h), base)) in enumerate(zip(lines, sizes)):
        baseline_y = top + 2 + line_h * i + text_h + 2
        cv2.putText(image, text, (x + 4, baseline_y), FONT, scale, TEXT_COLOUR, thick,
                    cv2.LINE_AA)


def put_status(image: np.ndarray, text: str) -> None:
    """A one-line status (e.g. frames per second) in the top-left corner."""
    h, w = image.shape[:2]
    scale = max(0.4, min(h, w) / 900)
    put_label(image, [text], (0, 0), scale, max(1, round(scale * 2)), below=(0, 0))
