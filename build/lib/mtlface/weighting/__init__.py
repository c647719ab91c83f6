"""Loss weighting: how the per-task losses of a step become one update (``weighting=``).

Loss-level strategies return a weighted scalar (fixed, uncertainty, DWA, GradNorm); gradient
aggregation (torchjd's PCGrad, MGDA, UPGrad, CAGrad, ...) combines per-task gradients of the
shared trunk in the backward pass instead. All share :class:`LossWeighting`'s interface.
"""

from mtlface.weighting.aggregation import GradientAggregation
from mtlface.weighting.base import LossWeighting, WeightedLoss
from mtlface.weighting.dwa import DynamicWeightAveraging
from mtlface.weighting.fixed import FixedWeighting
from mtlface.weighting.gradnorm import GradNorm
from mtlface.weighting.uncertainty import UncertaintyWeighting

__all__ = [
    "DynamicWeightAveraging",
    "FixedWeighting",
    "GradNorm",
    "GradientAggregation",
    "LossWeighting",
    "UncertaintyWeighting",
    "WeightedLoss",
]
