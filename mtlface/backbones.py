"""Backbones: an ``nn.Module`` that maps images to a flat feature vector.

Contract (checked by tests for every backbone config):
- ``forward(x: Tensor[B, in_chans, input_size, input_size]) -> Tensor[B, out_features]``
- attributes ``out_features`` and ``input_spec`` (what the data pipeline must feed it).
Hydra's ``_target_`` picks the class; there is no registry here.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import timm
import torch
from torch import nn


@dataclass(frozen=True)
class InputSpec:
    """What a backbone expects: square ``size`` pixels, ``channels`` (1 grey or 3 RGB), and the
    per-channel normalisation applied to [0, 1] pixel values."""

    size: int
    channels: int
    mean: tuple[float, ...]
    std: tuple[float, ...]

    def __post_init__(self) -> None:
        if self.size < 8:
            raise ValueError(f"input size must be >= 8 pixels, got {self.size}")
        if self.channels not in (1, 3):
            raise ValueError(f"in_chans must be 1 (grey) or 3 (RGB), got {self.channels}")
        if len(self.mean) != self.channels or len(self.std) != self.channels:
            raise ValueError(f"mean/std need {self.channels} values, got {self.mean}/{self.std}")


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


class TimmBackbone(nn.Module):
    """Any timm model by name, classifier removed (``num_classes=0``): pooled features.

    Pretrained weights come from a local file only (``pretrained_path``: a timm/torchvision
    ``.pth``, ``.bin`` or ``.safetensors`` state dict); timm adapts the stem to ``in_chans``
    and drops the classifier. Nothing is downloaded.
    """

    def __init__(
        self,
        model_name: str,
        in_chans: int = 3,
        input_size: int | None = None,
        pretrained_path: str | os.PathLike | None = None,
        **model_kwargs,
    ) -> None:
        super().__init__()
        if not timm.is_model(model_name):
            close = timm.list_models(f"*{model_name.split('_')[0]}*")[:15]
            raise ValueError(f"unknown timm model {model_name!r}; similar names: {close} "
                             f"(all: timm.list_models())")
        pretrained = pretrained_path is not None
        if pretrained and not Path(pretrained_path).is_file():
            raise FileNotFoundError(f"pretrained_path {pretrained_path} does not exist "
                                    f"(weights are read from a local file, never downloaded)")
        self.model = timm.create_model(
            model_name,
            pretrained=pretrained,
            pretrained_cfg_overlay={"file": str(pretrained_path)} if pretrained else None,
            num_classes=0,
            in_chans=in_chans,
            **model_kwargs,
        )
        # head_hidden_size, not num_features: they differ for models with a pre-logits layer.
        self.out_features = int(getattr(self.model, "head_hidden_size", self.model.num_features))
        cfg = self.model.pretrained_cfg
        size = input_size or int(cfg.get("input_size", (3, 224, 224))[-1])
        mean, std = tuple(cfg.get("mean", (0.5,) * 3)), tuple(cfg.get("std", (0.5,) * 3))
        if in_chans == 1:  # a grey input is the mean of RGB: average the statistics likewise
            mean, std = (sum(mean) / len(mean),), (sum(std) / len(std),)
        self.input_spec = InputSpec(size, in_chans, mean, std)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)
