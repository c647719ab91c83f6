"""Task heads: small MLPs on top of the shared trunk's features."""

from __future__ import annotations

from collections.abc import Sequence

from torch import nn


class MLPHead(nn.Sequential):
    """``hidden`` fully connected ReLU layers, each followed by dropout, then a linear output.
    ``hidden=[]`` is a linear head; BKNet's published heads are ``hidden=[256, 256]``,
    ``dropout=0.5``."""

    def __init__(
        self, in_features: int, out_features: int, hidden: Sequence[int] = (), dropout: float = 0.0
    ) -> None:
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"head dropout must be in [0, 1), got {dropout}")
        layers: list[nn.Module] = []
        width = in_features
        for h in hidden:
            layers += [nn.Linear(width, h), nn.ReLU(inplace=True), nn.Dropout(dropout)]
            width = h
        layers.append(nn.Linear(width, out_features))
        super().__init__(*layers)
