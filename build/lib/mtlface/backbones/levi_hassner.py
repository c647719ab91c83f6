"""Levi & Hassner, "Age and Gender Classification using Convolutional Neural Networks"
(CVPR-W 2015): the Adience baseline, an AlexNet-like three-conv network."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from mtlface.backbones._layers import conv7_stem, fc_stack, lrn, spatial_size
from mtlface.backbones.spec import InputSpec


class LeviHassner(nn.Module):
    """conv 7x7/4 96 + ReLU + max-pool 3/2 + LRN; conv 5x5 256 (pad 2) + ReLU + max-pool +
    LRN; conv 3x3 384 (pad 1) + ReLU + max-pool; FC 512 + dropout 0.5, FC 512 + dropout 0.5.
    The published per-task read-out is one linear layer (``head=linear``).

    Input: 227 crops of 256 images (random for training, centre for evaluation). Pools round
    up as in the authors' Caffe model, so a 227 input ends in 7x7x384 (18816) features."""

    def __init__(
        self,
        in_chans: int = 3,
        input_size: int = 227,
        resize: int | None = 256,
        fc: Sequence[int] = (512, 512),
        dropout: float = 0.5,
    ) -> None:
        super().__init__()
        self.input_spec = InputSpec(input_size, in_chans, (0.5,) * in_chans, (0.5,) * in_chans,
                                    resize)
        self.features = nn.Sequential(
            *conv7_stem(in_chans, ceil_mode=True),
            nn.Conv2d(96, 256, 5, padding=2), nn.ReLU(inplace=True),
            nn.MaxPool2d(3, 2, ceil_mode=True), lrn(),
            nn.Conv2d(256, 384, 3, padding=1), nn.ReLU(inplace=True),
            nn.MaxPool2d(3, 2, ceil_mode=True),
            nn.Flatten(),
        )
        flat = 384 * spatial_size(self.features.modules(), input_size, "LeviHassner") ** 2
        self.fc = fc_stack(flat, fc, dropout)
        self.out_features = int(fc[-1]) if fc else flat

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.features(x))
