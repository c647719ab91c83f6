"""Loss weighting: an ``nn.Module`` that turns ``{task: loss}`` into one scalar.

Each task's static ``loss_weight`` is applied before weighting; strategies here decide any
further, possibly learnt, weights. ``last_weights`` holds the weights of the last call, for
logging.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import Tensor, nn


class FixedWeighting(nn.Module):
    """The plain (already ``loss_weight``-scaled) sum of the task losses."""

    def __init__(self) -> None:
        super().__init__()
        self.last_weights: dict[str, float] = {}

    def forward(self, losses: Mapping[str, Tensor]) -> Tensor:
        if not losses:
            raise ValueError("no task losses to weight")
        self.last_weights = {name: 1.0 for name in losses}
        return torch.stack(list(losses.values())).sum()
