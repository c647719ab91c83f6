"""GradNorm (Chen, Badrinarayanan, Lee & Rabinovich, ICML 2018)."""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import Tensor, nn

from mtlface.weighting.base import LossWeighting, WeightedLoss, weighted_sum


class GradNorm(LossWeighting):
    """Learns task weights ``w_t`` (summing to the number of tasks) so that every task's
    gradient norm at the shared features, ``G_t = ||d(w_t L_t)/d features||``, approaches

        target_t = mean(G) * (r_t) ** alpha,   r_t = (L_t / L_t(0)) / mean_j(L_j / L_j(0))

    i.e. equal norms (``alpha = 0``) tilted towards tasks that have trained less (larger
    ``alpha``). ``L_t(0)`` is task t's loss on the first batch that labels it.

    The weights follow the paper's GradNorm loss ``sum_t |G_t - target_t|`` (target held
    constant), divided by ``mean(G)`` and differentiated w.r.t. ``log w_t``: scale-free steps of
    about ``lr`` in relative weight whatever the loss scales, weights that stay positive. They
    are then renormalised, as in the paper. They update on training steps only, after this
    step's weighted loss is formed. The norms are taken at the shared features (the brief's
    allowed alternative to the last shared layer: cheaper, the heads alone are differentiated).
    """

    def __init__(self, alpha: float = 1.5, lr: float = 0.025) -> None:
        super().__init__()
        if alpha < 0:
            raise ValueError(f"gradnorm alpha must be >= 0, got {alpha}")
        if not lr > 0:
            raise ValueError(f"gradnorm lr must be > 0, got {lr}")
        self.alpha = float(alpha)
        self.lr = float(lr)

    def setup(self, tasks: Mapping[str, nn.Module]) -> None:
        super().setup(tasks)
        n = len(self.task_names)
        self.register_buffer("weights", torch.ones(n))
        self.register_buffer("initial_losses", torch.full((n,), float("nan")))

    def forward(self, losses: Mapping[str, Tensor], features: Tensor) -> WeightedLoss:
        index = self._index(losses)
        out = weighted_sum(losses, self.weights[index])  # a copy: the update below leaves it
        if self.training and features.requires_grad:
            self._update(losses, features, index)
        return out

    @torch.no_grad()
    def _update(self, losses: Mapping[str, Tensor], features: Tensor, index: list[int]) -> None:
        with torch.enable_grad():  # one pass through each head only, not through the trunk
            norms = torch.stack([_grad_norm(loss, features) for loss in losses.values()])
        loss = torch.stack(list(losses.values())).detach()
        initial = self.initial_losses[index]
        initial = torch.where(initial.isnan(), loss, initial)
        self.initial_losses[index] = initial

        w = self.weights[index]
        g = w * norms
        g_mean = g.mean().clamp_min(1e-12)  # all-zero norms give a zero step
        progress = loss / initial.clamp_min(1e-12)
        target = g_mean * (progress / progress.mean().clamp_min(1e-12)) ** self.alpha
        step = torch.sign(g - target) * g / g_mean  # d (sum |G - target| / mean G) / d log w
        new = w * torch.exp(-self.lr * step)
        self.weights[index] = new * (w.sum() / new.sum())  # keeps sum over all tasks = T


def _grad_norm(loss: Tensor, features: Tensor) -> Tensor:
    (grad,) = torch.autograd.grad(loss, features, retain_graph=True, allow_unused=True)
    return grad.norm() if grad is not None else features.new_zeros(())
