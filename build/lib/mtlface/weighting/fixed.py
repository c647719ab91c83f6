"""Static weighting: the plain sum of the (``loss_weight``-scaled) task losses."""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import Tensor

from mtlface.weighting.base import LossWeighting, WeightedLoss, weighted_sum


class FixedWeighting(LossWeighting):
    """Every task weighs 1 on top of its own static ``tasks.<t>.loss_weight``."""

    def forward(self, losses: Mapping[str, Tensor], features: Tensor | None = None) -> WeightedLoss:
        if not losses:
            raise ValueError("no task losses to weight")
        first = next(iter(losses.values()))
        return weighted_sum(losses, torch.ones(len(losses), device=first.device))
