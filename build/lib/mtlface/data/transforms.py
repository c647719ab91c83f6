"""Albumentations pipelines: config-driven augmentation, framed by the resize/crop and
normalisation that the backbone's ``InputSpec`` dictates."""

from __future__ import annotations

import random
from collections.abc import Sequence

import albumentations as A
import cv2
import numpy as np

from mtlface.backbones import InputSpec


def geometry(spec: InputSpec, train: bool) -> list[A.BasicTransform]:
    """Resize to the backbone's input; a backbone with ``spec.resize`` (e.g. 227 crops of
    256) gets a random crop for training and the centre crop for evaluation."""
    # Area interpolation: sources come in many sizes, and shrinking with bilinear
    # interpolation aliases thin strokes (a mouth, a brow) into a different look.
    if spec.resize is None:
        return [A.Resize(spec.size, spec.size, interpolation=cv2.INTER_AREA)]
    crop = A.RandomCrop if train else A.CenterCrop
    return [A.Resize(spec.resize, spec.resize, interpolation=cv2.INTER_AREA),
            crop(spec.size, spec.size)]


def build_transform(
    spec: InputSpec,
    augment: Sequence[A.BasicTransform] = (),
    seed: int | None = None,
    *,
    train: bool,
) -> A.Compose:
    """Resize (and crop) to the backbone's input, apply ``augment`` (instantiated from
    config), normalise and convert to a CHW float tensor. Albumentations draws from its own
    generator, which ``seed_everything`` does not reach: ``seed`` makes the augmentation
    repeatable.

    ``train`` picks the random crop (backbones whose spec crops from a larger resize) over the
    centre one; it is explicit so that ``data.augment=[]`` still trains on random crops."""
    for t in augment:
        if not isinstance(t, A.BasicTransform | A.BaseCompose):
            raise TypeError(f"data.augment entries must be albumentations transforms, got {t!r}")
    return A.Compose(
        [
            *geometry(spec, train),
            *augment,
            A.Normalize(mean=spec.mean, std=spec.std, max_pixel_value=255.0),
            A.ToTensorV2(),
        ],
        seed=seed,
    )


def reseed(transform: A.BaseCompose, seed: int) -> None:
    """Make ``transform``'s next draws a function of ``seed`` alone: one numpy and one Python
    generator, shared by all its transforms (``Compose.set_random_seed`` would give each
    transform its own generator on the same seed, i.e. correlated draws). The training
    sampler passes one seed per sample, so augmentation does not depend on the order samples
    reach a worker, the number of workers, or where a resumed run restarted."""
    if not isinstance(transform, A.BaseCompose):
        raise TypeError(f"a per-sample seed needs an albumentations Compose, got {transform!r}")
    transform.set_random_state(np.random.default_rng(seed), random.Random(seed))
