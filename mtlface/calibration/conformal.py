"""Split-conformal intervals for age in years (Vovk et al. 2005; Lei et al. 2018).

On ``n`` labelled validation rows the score is the absolute error of the predicted age,
``|years - true years|``; ``q`` is its ``ceil((n + 1) * level) / n`` empirical quantile. For a
new face drawn like those rows (exchangeable), ``[years - q, years + q]`` holds the true age
with probability at least ``level`` (and at most ``level + 1 / (n + 1)`` when scores have no
ties), whatever the model. Mondrian (group-conditional) calibration computes one ``q`` per
group, so the guarantee holds within each group; the group must be known for a new face too,
so it is the model's own prediction of gender or race.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from mtlface.errors import ConfigError, UserError


class TooFewSamples(UserError):
    """Fewer calibration rows than the level needs for a finite interval."""


def check_level(level: float, option: str = "level") -> float:
    try:
        value = float(level)
    except (TypeError, ValueError):
        value = math.nan
    if not 0.0 < value < 1.0:  # NaN fails too
        raise ConfigError(f"{option}={level}: the interval level must lie strictly between 0 "
                          f"and 1; pass e.g. {option}=0.9 (90% of true ages inside)")
    return value


def min_samples(level: float) -> int:
    """The fewest rows that give a finite ``q`` at ``level``: ``n >= level / (1 - level)``."""
    return math.ceil(round(level / (1.0 - level), 6))


def conformal_quantile(scores: Sequence[float] | np.ndarray, level: float,
                       where: str = "the validation split") -> float:
    """The ``ceil((n + 1) * level)``-th smallest of the ``n`` scores."""
    level = check_level(level)
    scores = np.sort(np.asarray(scores, dtype=np.float64))
    scores = scores[~np.isnan(scores)]
    n = len(scores)
    if n < min_samples(level):
        raise TooFewSamples(f"{n} labelled age rows in {where}, but level={level:g} needs at "
                            f"least {min_samples(level)} for a finite interval: lower the level "
                            f"(e.g. level=0.8) or give the run a larger validation split")
    k = math.ceil(round((n + 1) * level, 6))
    return float(scores[k - 1])


def groupwise_quantiles(scores: np.ndarray, groups: Sequence[str], level: float,
                        where: str = "the validation split") -> tuple[dict[str, float],
                                                                      dict[str, int]]:
    """``({group: q}, {group: n})`` for every group with enough rows for ``level``; groups
    with fewer are left out (a new face of such a group gets the pooled ``q``)."""
    groups = np.asarray(groups, dtype=object)
    quantiles, counts = {}, {}
    for group in sorted(set(groups.tolist())):
        mine = scores[groups == group]
        counts[str(group)] = int(len(mine))
        if len(mine) >= min_samples(level):
            quantiles[str(group)] = conformal_quantile(mine, level, f"{where} ({group})")
    return quantiles, counts


def interval(years: float, q: float) -> tuple[float, float]:
    """``[years - q, years + q]``, the low end clipped at 0."""
    return max(0.0, years - q), years + q
