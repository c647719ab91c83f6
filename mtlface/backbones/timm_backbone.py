"""Any timm model by name, as a backbone."""

from __future__ import annotations

import os
from pathlib import Path

import timm
import torch
from torch import nn

from mtlface.backbones.spec import InputSpec


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
        # timm's own resolution of the model's input settings. Its crop_pct (a centre crop for
        # evaluation) is not applied: face crops are already tight around the face, and every
        # backbone shares the pipeline's resize.
        cfg = timm.data.resolve_model_data_config(self.model)
        size = input_size or int(cfg["input_size"][-1])
        mean, std = tuple(cfg["mean"]), tuple(cfg["std"])
        if in_chans == 1:  # a grey input is the mean of RGB: average the statistics likewise
            mean, std = (sum(mean) / len(mean),), (sum(std) / len(std),)
        self.input_spec = InputSpec(size, in_chans, mean, std)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)
