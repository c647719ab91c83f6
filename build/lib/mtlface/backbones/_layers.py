"""Pieces shared by the Adience-era age/gender CNNs (Levi & Hassner, LMTCNN)."""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence

from torch import nn


def lrn() -> nn.LocalResponseNorm:
    """AlexNet/Caffe local response normalisation (size 5, alpha 1e-4, beta 0.75); torch, like
    Caffe, divides alpha by the window size."""
    return nn.LocalResponseNorm(size=5, alpha=1e-4, beta=0.75, k=1.0)


def conv7_stem(in_chans: int, ceil_mode: bool) -> list[nn.Module]:
    """conv 7x7/4, 96 filters + ReLU, 3x3/2 max-pool, LRN: the first layer of both networks."""
    return [nn.Conv2d(in_chans, 96, 7, stride=4), nn.ReLU(inplace=True),
            nn.MaxPool2d(3, 2, ceil_mode=ceil_mode), lrn()]


def fc_stack(in_features: int, dims: Sequence[int], dropout: float) -> nn.Sequential:
    """``dims`` fully connected ReLU layers, each followed by dropout."""
    if not 0.0 <= dropout < 1.0:
        raise ValueError(f"backbone dropout must be in [0, 1), got {dropout}")
    if any(int(d) < 1 for d in dims):
        raise ValueError(f"backbone fc sizes must be >= 1, got {list(dims)}")
    layers: list[nn.Module] = []
    for d in dims:
        layers += [nn.Linear(in_features, int(d)), nn.ReLU(inplace=True), nn.Dropout(dropout)]
        in_features = int(d)
    return nn.Sequential(*layers)


def spatial_size(layers: Iterable[nn.Module], size: int, name: str) -> int:
    """Side of the feature map after ``layers`` for a ``size`` input (no forward pass, so
    BatchNorm statistics stay untouched); a clear error when the input is too small."""
    for m in layers:
        if isinstance(m, nn.Conv2d | nn.MaxPool2d):
            k, s, p = (_first(getattr(m, a)) for a in ("kernel_size", "stride", "padding"))
            rnd = math.ceil if getattr(m, "ceil_mode", False) else math.floor
            size = rnd((size + 2 * p - k) / s) + 1
            if size < 1:
                raise ValueError(f"{name}: input too small for its layers (feature map vanishes)")
    return size


def _first(v) -> int:
    return v[0] if isinstance(v, tuple) else v
