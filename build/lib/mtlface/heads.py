"""Task heads: small MLPs on top of the shared trunk's features.

A task builds its head from a factory ``head(in_features, out_features) -> nn.Module``; the
task configs pass ``MLPHead`` as a Hydra partial (``_partial_: true``) so that depth, width
and dropout are config, per task, and another head class is one ``_target_`` away."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from torch import nn

HeadFactory = Callable[[int, int], nn.Module]


class MLPHead(nn.Sequential):
    """``hidden`` fully connected ReLU layers, each followed by dropout, then a linear output.
    ``hidden=[]`` is a linear head; BKNet's published heads are ``hidden=[256, 256]``,
    ``dropout=0.5``."""

    def __init__(
        self, in_features: int, out_features: int, hidden: Sequence[int] = (), dropout: float = 0.0
    ) -> None:
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"head dropout must be in [0, 1), got {dropout}")
        hidden = list(hidden)
        if any(not isinstance(h, int) or h < 1 for h in hidden):
            raise ValueError(f"head hidden sizes must be integers >= 1, got {hidden}")
        layers: list[nn.Module] = []
        width = in_features
        for h in hidden:
            # Dropout(0) too: state_dict keys stay the same whatever the dropout, so a
            # checkpoint loads into a model configured with another rate.
            layers += [nn.Linear(width, h), nn.ReLU(inplace=True), nn.Dropout(dropout)]
            width = h
        layers.append(nn.Linear(width, out_features))
        super().__init__(*layers)
