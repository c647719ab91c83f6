"""BKNet (Dinh et al.), the VGG-style trunk of the smile/gender/age MTL seed."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from mtlface.backbones.spec import InputSpec


def _conv_bn_relu(cin: int, cout: int) -> list[nn.Module]:
    return [nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(True)]


class BKNet(nn.Module):
    """BKNet trunk (Dinh et al., smile/gender/age MTL): four VGG-style blocks of 3x3
    conv + BN + ReLU, with 32x2, 64x2, 128x2, 256x3 channels, each ending in a 2x2 max-pool,
    then flattened. At the published 48x48 greyscale input that is 3x3x256 = 2304 features;
    the published heads (two FC-256 with dropout) are task heads here."""

    def __init__(
        self,
        in_chans: int = 1,
        input_size: int = 48,
        widths: Sequence[int] = (32, 64, 128, 256),
        depths: Sequence[int] = (2, 2, 2, 3),
    ) -> None:
        super().__init__()
        if len(widths) != len(depths) or not widths:
            raise ValueError(f"widths {list(widths)} and depths {list(depths)} must be equally long")
        reduction = 2 ** len(widths)
        if input_size % reduction:
            raise ValueError(f"BKNet input_size must be a multiple of {reduction}, got {input_size}")
        layers: list[nn.Module] = []
        cin = in_chans
        for width, depth in zip(widths, depths):
            for i in range(depth):
                layers += _conv_bn_relu(cin if i == 0 else width, width)
            layers.append(nn.MaxPool2d(2))
            cin = width
        self.features = nn.Sequential(*layers, nn.Flatten())
        self.out_features = widths[-1] * (input_size // reduction) ** 2
        self.input_spec = InputSpec(input_size, in_chans, (0.5,) * in_chans, (0.5,) * in_chans)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.features(x)
