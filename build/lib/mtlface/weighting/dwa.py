"""Dynamic Weight Averaging (Liu, Johns & Davison, CVPR 2019)."""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import Tensor, nn

from mtlface.weighting.base import LossWeighting, WeightedLoss, weighted_sum


class DynamicWeightAveraging(LossWeighting):
    """Weights each task by how slowly its loss falls:

        w_t = T * softmax_t(r_t / temperature),   r_t = Lbar_t(k-1) / Lbar_t(k-2)

    where ``Lbar_t(k)`` is task t's average training loss over window k (an epoch, as in the
    paper, or ``window_steps`` training steps) and ``T`` the number of tasks, so the weights sum
    to ``T``. Until two windows have passed (and for a task not labelled in both) ``r_t = 1``,
    which gives every task weight 1. A larger ``temperature`` flattens the weights.
    """

    def __init__(self, temperature: float = 2.0, window_steps: int | None = None) -> None:
        super().__init__()
        if not temperature > 0:
            raise ValueError(f"dwa temperature must be > 0, got {temperature}")
        if window_steps is not None and int(window_steps) < 1:
            raise ValueError(f"dwa window_steps must be >= 1 or null (per epoch), "
                             f"got {window_steps}")
        self.temperature = float(temperature)
        self.window_steps = None if window_steps is None else int(window_steps)

    def setup(self, tasks: Mapping[str, nn.Module]) -> None:
        super().setup(tasks)
        n = len(self.task_names)
        # Buffers: the averaging state is part of a checkpoint, so a resumed run carries on.
        self.register_buffer("weights", torch.ones(n))
        self.register_buffer("loss_sum", torch.zeros(n))
        self.register_buffer("loss_count", torch.zeros(n))
        self.register_buffer("history", torch.full((2, n), float("nan")))  # windows k-2, k-1
        self.register_buffer("window_step", torch.zeros((), dtype=torch.long))

    def forward(self, losses: Mapping[str, Tensor], features: Tensor | None = None) -> WeightedLoss:
        index = self._index(losses)
        out = weighted_sum(losses, self.weights[index])
        if self.training:
            self.loss_sum[index] += torch.stack(list(losses.values())).detach()
            self.loss_count[index] += 1
            self.window_step += 1
            if self.window_steps is not None and int(self.window_step) >= self.window_steps:
                self._close_window()
        return out

    def on_train_epoch_end(self) -> None:
        if self.window_steps is None:
            self._close_window()

    def _close_window(self) -> None:
        mean = self.loss_sum / self.loss_count  # NaN for a task unseen in this window
        self.history.copy_(torch.stack([self.history[1], mean]))
        ratio = self.history[1] / self.history[0]
        ratio = torch.where(ratio.isfinite(), ratio, torch.ones_like(ratio))
        self.weights.copy_(len(ratio) * torch.softmax(ratio / self.temperature, dim=0))
        self.loss_sum.zero_()
        self.loss_count.zero_()
        self.window_step.zero_()
