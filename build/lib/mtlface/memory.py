"""Will a training step fit in memory? A probe forward pass before the first step, so a run that
would not fit stops with a message naming ``data.batch_size`` instead of being killed by the
kernel minutes later.

The probe runs the model on two samples in training mode and adds up the tensors autograd saves
for the backward pass (the bulk of a training step's memory: on CPU, EfficientNet-B4 at 380 px
saves ~620 MB a sample and its measured peak grows by ~645 MB a sample). The estimate for a
batch is those bytes times the batch, plus weights, gradients and two optimiser states, plus
what the process already holds."""

from __future__ import annotations

import math
import os
import resource
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from mtlface.errors import ConfigError

PROBE_BATCH = 2  # BatchNorm needs more than one sample per channel in training mode
# Backward temporaries and allocator slack on top of the saved tensors (measured 1.04 on
# EfficientNet-B4 at 380 px on CPU; kept generous).
SLACK = 1.2
GIB = 2**30


@dataclass(frozen=True)
class MemoryEstimate:
    per_sample: int   # bytes autograd saves per training sample
    fixed: int        # weights, gradients, optimiser states and the process's own memory
    available: float  # bytes the step may still take on its device (inf when unknown)

    def need(self, batch_size: int) -> int:
        return int(self.fixed + SLACK * self.per_sample * batch_size)

    def largest_batch(self) -> int:
        return max(0, int((self.available - self.fixed) / (SLACK * self.per_sample)))


def _process_bytes() -> int:
    try:  # resident set now (ru_maxrss would be the peak so far)
        pages = int(Path("/proc/self/statm").read_text().split()[1])
        return pages * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def _cgroup_limit() -> float:
    """The container's memory limit left, if one is set (cgroup v2, then v1)."""
    for limit_file, usage_file in (("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory.current"),
                                   ("/sys/fs/cgroup/memory/memory.limit_in_bytes",
                                    "/sys/fs/cgroup/memory/memory.usage_in_bytes")):
        try:
            limit = Path(limit_file).read_text().strip()
            if limit == "max" or int(limit) > 2**60:
                return math.inf
            return int(limit) - int(Path(usage_file).read_text().strip())
        except (OSError, ValueError):
            continue
    return math.inf


def available_bytes(device: torch.device) -> float:
    """Memory a training step may still take on ``device`` (inf when it cannot be told)."""
    if device.type == "cuda":
        free, _ = torch.cuda.mem_get_info(device)
        return float(free)
    try:
        meminfo = dict(line.split(":", 1) for line in
                       Path("/proc/meminfo").read_text().splitlines())
        system = int(meminfo["MemAvailable"].split()[0]) * 1024
    except (OSError, KeyError, ValueError):
        return math.inf
    return float(min(system, _cgroup_limit()))


def estimate(model: nn.Module, input_shape: tuple[int, ...],
             target: torch.device | None = None) -> MemoryEstimate:
    """Probe ``model`` (inputs of ``input_shape`` = C, H, W) on ``PROBE_BATCH`` samples on the
    device it is on, for a training step on ``target`` (default: that device). Its weights and
    buffers (BatchNorm statistics) are left as they were."""
    device = next(model.parameters()).device
    target = target or device
    params = {p.untyped_storage().data_ptr() for p in model.parameters()}
    seen: set[int] = set()
    saved = 0

    def pack(tensor: torch.Tensor) -> torch.Tensor:
        nonlocal saved
        storage = tensor.untyped_storage()
        if storage.data_ptr() not in seen and storage.data_ptr() not in params:
            seen.add(storage.data_ptr())
            saved += storage.nbytes()
        return tensor

    buffers = {name: b.detach().clone() for name, b in model.named_buffers()}
    was_training = model.training
    model.train()
    try:
        with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
            outputs = model(torch.zeros(PROBE_BATCH, *input_shape, device=device))
        del outputs  # frees the graph and the saved tensors
    finally:
        model.train(was_training)
        with torch.no_grad():
            for name, value in model.named_buffers():
                value.copy_(buffers[name])
    weights = sum(p.numel() * p.element_size() for p in model.parameters())
    own = _process_bytes() if target.type == "cpu" else 0
    return MemoryEstimate(per_sample=saved // PROBE_BATCH, fixed=4 * weights + own,
                          available=available_bytes(target))


def check_fits(model: nn.Module, input_shape: tuple[int, ...], batch_size: int,
               accumulate: int = 1, target: torch.device | None = None) -> MemoryEstimate:
    """Stop with one line naming ``data.batch_size`` when a training step of ``batch_size``
    samples would not fit; suggest a batch and accumulation that keep the effective batch."""
    found = estimate(model, input_shape, target)
    need = found.need(batch_size)
    if need <= found.available:
        return found
    fits = found.largest_batch()
    effective = batch_size * accumulate
    hint = ("not even one sample fits: use a smaller backbone or input size" if fits < 1 else
            f"lower data.batch_size to {_power_of_two_at_most(fits)} and raise "
            f"trainer.accumulate_grad_batches to "
            f"{math.ceil(effective / _power_of_two_at_most(fits))} to keep the effective "
            f"batch of {effective}")
    raise ConfigError(f"a training step of data.batch_size={batch_size} needs about "
                      f"{need / GIB:.1f} GiB ({found.per_sample / 2**20:.0f} MiB a sample), "
                      f"{found.available / GIB:.1f} GiB is available on {target or 'cpu'}: "
                      f"{hint} (or set memory_check=false to try anyway)")


def _power_of_two_at_most(n: int) -> int:
    return 1 << (max(n, 1).bit_length() - 1)
