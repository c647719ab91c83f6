"""Temperature scaling (Guo et al. 2017): one scalar ``T > 0`` per task divides the head's
logits, ``softmax(z / T)``. ``T > 1`` softens over-confident probabilities, ``T < 1`` sharpens
under-confident ones; the predicted class never changes. ``T`` minimises the negative
log-likelihood of the labelled validation rows (LBFGS over ``log T``, so ``T`` stays positive).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

LogProbs = Callable[[Tensor], Tensor]  # logits [N, ...] -> log class probabilities [N, K]
LOG_T_LIMIT = 5.0  # T within [e^-5, e^5]: beyond that the head says nothing anyway


@dataclass(frozen=True)
class TemperatureFit:
    temperature: float
    nll_before: float  # mean NLL at T = 1
    nll_after: float   # mean NLL at the fitted T (never above nll_before)
    count: int


def nll(logits: Tensor, targets: Tensor, temperature: float | Tensor = 1.0,
        log_probs: LogProbs | None = None) -> Tensor:
    """Mean negative log-likelihood of ``targets`` (class indices) under ``logits / T``."""
    log_probs = log_probs or (lambda z: F.log_softmax(z, dim=-1))
    return F.nll_loss(log_probs(logits / temperature), targets)


def fit_temperature(logits: Tensor, targets: Tensor, log_probs: LogProbs | None = None,
                    max_iter: int = 100) -> TemperatureFit:
    """The ``T`` that minimises the NLL of ``targets`` under ``logits / T``. Falls back to
    ``T = 1`` if the optimiser ends anywhere worse than that, so the fit never raises the NLL
    of the rows it was fitted on."""
    logits = logits.detach().double()
    targets = targets.detach().long()
    if logits.ndim != 2 or len(logits) != len(targets) or not len(targets):
        raise ValueError(f"need logits [N, K] and N targets with N >= 1, got "
                         f"{tuple(logits.shape)} and {tuple(targets.shape)}")
    with torch.no_grad():
        before = float(nll(logits, targets, 1.0, log_probs))
    log_t = torch.zeros((), dtype=torch.float64, requires_grad=True)
    optimiser = torch.optim.LBFGS([log_t], lr=1.0, max_iter=max_iter,
                                  line_search_fn="strong_wolfe")

    def closure() -> Tensor:
        optimiser.zero_grad()
        loss = nll(logits, targets, log_t.clamp(-LOG_T_LIMIT, LOG_T_LIMIT).exp(), log_probs)
        loss.backward()
        return loss

    with torch.enable_grad():
        optimiser.step(closure)
    temperature = float(log_t.detach().clamp(-LOG_T_LIMIT, LOG_T_LIMIT).exp())
    with torch.no_grad():
        after = float(nll(logits, targets, temperature, log_probs))
    if not after <= before:  # NaN included
        temperature, after = 1.0, before
    return TemperatureFit(temperature, before, after, len(targets))
