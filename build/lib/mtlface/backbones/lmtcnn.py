"""LMTCNN: Lee et al., "Joint Estimation of Age and Gender from Unconstrained Face Images
using Lightweight Multi-task CNN for Mobile Applications" (MIPR 2018): Levi & Hassner's
network with its 5x5 and 3x3 convolutions replaced by depthwise-separable ones."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from mtlface.backbones._layers import conv7_stem, fc_stack, spatial_size
from mtlface.backbones.spec import InputSpec


class DepthwiseSeparable(nn.Sequential):
    """MobileNet-v1 block: 3x3 depthwise conv + BN + ReLU, 1x1 pointwise conv + BN + ReLU
    (no conv biases: BN's shift replaces them)."""

    def __init__(self, cin: int, cout: int, stride: int = 1) -> None:
        super().__init__(
            nn.Conv2d(cin, cin, 3, stride, padding=1, groups=cin, bias=False),
            nn.BatchNorm2d(cin), nn.ReLU(inplace=True),
            nn.Conv2d(cin, cout, 1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True),
        )


class LMTCNN(nn.Module):
    """conv 7x7/4 96 + ReLU, max-pool 3/2, LRN; depthwise-separable block of 256 x ``width``
    filters; depthwise-separable block, stride 2, of 384 x ``width`` filters; max-pool 3/2;
    FC 512 + dropout, FC 512 + dropout. The paper's LMTCNN-1-1 is ``width=1`` and LMTCNN-2-1
    ``width=2``; its per-task read-out is one linear layer (``head=linear``).

    Input: 227 crops of 256 images (random for training, centre for evaluation). Pools round
    down (the authors' TensorFlow code), so a 227 input ends in 6x6x(384 x width) features."""

    def __init__(
        self,
        in_chans: int = 3,
        input_size: int = 227,
        resize: int | None = 256,
        width: float = 1.0,
        fc: Sequence[int] = (512, 512),
        dropout: float = 0.5,
    ) -> None:
        super().__init__()
        if width <= 0:
            raise ValueError(f"LMTCNN width multiplier must be > 0, got {width}")
        self.input_spec = InputSpec(input_size, in_chans, (0.5,) * in_chans, (0.5,) * in_chans,
                                    resize)
        c2, c3 = round(256 * width), round(384 * width)
        self.features = nn.Sequential(
            *conv7_stem(in_chans, ceil_mode=False),
            DepthwiseSeparable(96, c2),
            DepthwiseSeparable(c2, c3, stride=2),
            nn.MaxPool2d(3, 2),
            nn.Flatten(),
        )
        flat = c3 * spatial_size(self.features.modules(), input_size, "LMTCNN") ** 2
        self.fc = fc_stack(flat, fc, dropout)
        self.out_features = int(fc[-1]) if fc else flat

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.features(x))
