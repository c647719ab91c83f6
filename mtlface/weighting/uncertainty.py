"""Homoscedastic uncertainty weighting (Kendall, Gal & Cipolla, CVPR 2018)."""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import Tensor, nn

from mtlface.weighting.base import LossWeighting, WeightedLoss


class UncertaintyWeighting(LossWeighting):
    """Learns one log-variance ``s_t = log sigma_t^2`` per task and minimises

        sum_t  c_t * exp(-s_t) * L_t  +  s_t / 2

    with ``c_t = 1`` for classification (softmax likelihood, the paper's eq. 10) and ``c_t = 1/2``
    for regression (Gaussian likelihood, eq. 7). The ``s_t / 2`` term (log sigma_t) keeps the
    variances from growing without bound; at the optimum the weight ``c_t exp(-s_t)`` is
    ``1 / (2 L_t)`` in both forms, so tasks with a larger loss scale get a smaller weight. The
    log-variances are trained by the module's optimiser with the network.
    """

    def __init__(self, init_log_var: float = 0.0) -> None:
        super().__init__()
        self.init_log_var = float(init_log_var)
        self.log_vars = nn.ParameterDict()
        self.likelihood_scale: dict[str, float] = {}

    def setup(self, tasks: Mapping[str, nn.Module]) -> None:
        super().setup(tasks)
        for name, task in tasks.items():
            if name not in self.log_vars:
                self.log_vars[name] = nn.Parameter(torch.tensor(self.init_log_var))
            self.likelihood_scale[name] = 0.5 if getattr(task, "regresses", False) else 1.0

    def forward(self, losses: Mapping[str, Tensor], features: Tensor | None = None) -> WeightedLoss:
        self._index(losses)
        s = torch.stack([self.log_vars[n] for n in losses])
        c = torch.tensor([self.likelihood_scale[n] for n in losses], device=s.device)
        weights = c * torch.exp(-s)
        total = (weights * torch.stack(list(losses.values()))).sum() + 0.5 * s.sum()
        return WeightedLoss(total, dict(zip(losses, weights.detach())))
