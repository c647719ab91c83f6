"""Albumentations pipelines: config-driven augmentation, framed by the resize and
normalisation that the backbone's ``InputSpec`` dictates."""

from __future__ import annotations

from collections.abc import Sequence

import albumentations as A
import cv2

from mtlface.backbones import InputSpec


def build_transform(
    spec: InputSpec, augment: Sequence[A.BasicTransform] = (), seed: int | None = None
) -> A.Compose:
    """Resize to the backbone's input, apply ``augment`` (instantiated from config), normalise
    and convert to a CHW float tensor. Albumentations draws from its own generator, which
    ``seed_everything`` does not reach: ``seed`` makes the augmentation repeatable."""
    for t in augment:
        if not isinstance(t, A.BasicTransform | A.BaseCompose):
            raise TypeError(f"data.augment entries must be albumentations transforms, got {t!r}")
    return A.Compose(
        [
            # Area interpolation: sources come in many sizes, and shrinking with bilinear
            # interpolation aliases thin strokes (a mouth, a brow) into a different look.
            A.Resize(spec.size, spec.size, interpolation=cv2.INTER_AREA),
            *augment,
            A.Normalize(mean=spec.mean, std=spec.std, max_pixel_value=255.0),
            A.ToTensorV2(),
        ],
        seed=seed,
    )
