"""The interface every loss weighting implements, and its named output."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, ClassVar, NamedTuple

import torch
from torch import Tensor, nn

if TYPE_CHECKING:
    from mtlface.tasks import Task


class WeightedLoss(NamedTuple):
    """``total``: the scalar to minimise (and log); ``weights``: the multiplier each task's loss
    got, detached, for logging (empty where only the backward pass knows them)."""

    total: Tensor
    weights: dict[str, Tensor]


class LossWeighting(nn.Module, ABC):
    """Turns the per-task losses of one step into one scalar.

    The module calls :meth:`setup` once with its tasks (before the optimiser exists, so per-task
    parameters are optimised and checkpointed), then ``weighting(losses, features)`` every step
    with the losses of the tasks *labelled in that batch* (already scaled by each task's
    ``loss_weight``) and the shared features they were computed from. State that must only move
    during training checks ``self.training`` (Lightning puts the module in eval mode to validate).

    Strategies that combine per-task *gradients* rather than losses set
    ``aggregates_gradients = True`` and implement :meth:`backward`, which the module calls in
    place of ``total.backward()``.
    """

    aggregates_gradients: ClassVar[bool] = False

    def __init__(self) -> None:
        super().__init__()
        self.task_names: list[str] = []

    def setup(self, tasks: Mapping[str, Task]) -> None:
        if self.task_names and self.task_names != list(tasks):
            raise ValueError(f"{type(self).__name__} is set up for tasks {self.task_names}, "
                             f"not {list(tasks)}")
        self.task_names = list(tasks)

    @abstractmethod
    def forward(self, losses: Mapping[str, Tensor], features: Tensor) -> WeightedLoss: ...

    def on_train_epoch_end(self) -> None:
        """Called at the end of each training epoch (for epoch-level statistics)."""

    def backward(self, losses: Mapping[str, Tensor], features: Tensor,
                 shared_params: Sequence[Tensor], scale: float = 1.0) -> dict[str, Tensor]:
        """Fill ``.grad`` of every parameter from the task losses; return the task weights."""
        raise NotImplementedError(f"{type(self).__name__} combines losses, not gradients")

    def _index(self, losses: Mapping[str, Tensor]) -> list[int]:
        """Positions in :attr:`task_names` of the tasks in ``losses`` (which must be known)."""
        if not losses:
            raise ValueError("no task losses to weight")
        unknown = [n for n in losses if n not in self.task_names]
        if unknown:
            raise KeyError(f"{type(self).__name__}: losses for tasks {unknown} it was not set "
                           f"up for ({self.task_names}); call setup(tasks) first")
        return [self.task_names.index(n) for n in losses]


def weighted_sum(losses: Mapping[str, Tensor], weights: Tensor) -> WeightedLoss:
    """``sum_i w_i L_i`` with ``weights`` in the order of ``losses`` (held constant)."""
    weights = weights.detach()
    total = (weights * torch.stack(list(losses.values()))).sum()
    return WeightedLoss(total, dict(zip(losses, weights)))
