"""Age groups: the classes an age target is bucketed into."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor


class AgeBins:
    """Age groups: bin ``i`` holds ages in ``[edges[i], edges[i+1])``; ages below the first
    edge go to bin 0 and ages from the last edge up go to the last bin. ``centres`` are the
    ages a bin stands for when computing an expected age (default: bin midpoints)."""

    def __init__(self, edges: Sequence[float], centres: Sequence[float] | None = None) -> None:
        edges = [float(e) for e in edges]
        if len(edges) < 3 or any(b <= a for a, b in zip(edges, edges[1:])):
            raise ValueError(f"age bin edges must be >= 3 strictly increasing values "
                             f"(>= 2 bins), got {edges}")
        if centres is None:
            centres = [(a + b) / 2 for a, b in zip(edges, edges[1:])]
        centres = [float(c) for c in centres]
        if len(centres) != len(edges) - 1:
            raise ValueError(f"need one centre per bin ({len(edges) - 1}), got {len(centres)}")
        self.edges = edges
        self.centres = centres

    @classmethod
    def uniform(cls, num_bins: int, low: float = 0.0, high: float = 80.0) -> AgeBins:
        """``num_bins`` equal-width bins over ``[low, high)``."""
        if int(num_bins) < 2:
            raise ValueError(f"num_bins must be >= 2, got {num_bins}")
        if high <= low:
            raise ValueError(f"age range must have high > low, got [{low}, {high})")
        step = (high - low) / num_bins
        return cls([low + i * step for i in range(int(num_bins) + 1)])

    @classmethod
    def from_groups(cls, groups: Sequence[Sequence[float]]) -> AgeBins:
        """Labelled age groups such as Adience's ``(0, 2) (4, 6) ...``: an age between two
        groups goes to the nearer one, and a group stands for its midpoint."""
        groups = [(float(lo), float(hi)) for lo, hi in groups]
        if any(hi < lo for lo, hi in groups):
            raise ValueError(f"each age group needs low <= high, got {groups}")
        inner = [(a_hi + b_lo) / 2 for (_, a_hi), (b_lo, _) in zip(groups, groups[1:])]
        return cls([groups[0][0], *inner, groups[-1][1]], [(lo + hi) / 2 for lo, hi in groups])

    @property
    def num_bins(self) -> int:
        return len(self.centres)

    @property
    def names(self) -> list[str]:
        """``16-32`` per bin, but open-ended where the bin is: the last bin also holds every
        age from the last edge up (``64+``), and the first every age below its edge, which
        exists when that edge is above 0 (``<16``)."""
        edges = self.edges
        names = [f"{a:g}-{b:g}" for a, b in zip(edges, edges[1:])]
        names[-1] = f"{edges[-2]:g}+"
        if edges[0] > 0:
            names[0] = f"<{edges[1]:g}"
        return names

    def bucketize(self, years: Tensor) -> Tensor:
        inner = torch.tensor(self.edges[1:-1], dtype=years.dtype, device=years.device)
        return torch.bucketize(years, inner, right=True)

    def expected_years(self, logits: Tensor) -> Tensor:
        centres = torch.tensor(self.centres, dtype=logits.dtype, device=logits.device)
        return logits.softmax(dim=-1) @ centres

    def __repr__(self) -> str:
        return f"AgeBins(edges={self.edges}, centres={self.centres})"
