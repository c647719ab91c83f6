"""Size and speed of every backbone config, as a markdown table.

    .venv/bin/python -m benchmarks.models [--threads 2] [--repeats 10] [--warmup 3]

Each model is what ``python train.py backbone=<name> tasks=[age,gender]`` builds (backbone +
age and gender heads; the published linear heads for LMTCNN and Levi & Hassner), at the
backbone's default input size, in eval mode. Columns:

- params: trainable parameters (M), backbone alone and with both heads;
- fp32 MB: parameters + buffers at 4 bytes each (10^6 bytes);
- GMACs per face: ``torch.utils.flop_counter.FlopCounterMode`` FLOPs / 2. It counts matrix
  products and convolutions only (BN, pooling, LRN and activations are left out);
- CPU ms per face at batch 1 and 32: ``torch.inference_mode``, ``--warmup`` untimed calls,
  then the median of ``--repeats`` timed calls (the batch sizes taking turns) divided by the
  batch size. The thread count is set with ``torch.set_num_threads(--threads)`` (default:
  torch's own, usually the number of cores) and printed with the table; latency depends on it
  and on what else runs.

``MODELS`` and :func:`build` are also what the inference part of ``python -m benchmarks``
measures.
"""

from __future__ import annotations

import argparse
import platform
import sys

import torch
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from hydra.utils import instantiate
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from benchmarks.timing import Work, interleaved
from mtlface.config import CONF_DIR

# (row label, train.py overrides). LMTCNN and Levi & Hassner end in their own FC-512 layers;
# their papers read each task out with a single linear layer.
MODELS = [
    ("bknet", ["backbone=bknet"]),
    ("lmtcnn (1-1)", ["backbone=lmtcnn", "head=linear"]),
    ("lmtcnn_2_1", ["backbone=lmtcnn_2_1", "head=linear"]),
    ("levi_hassner", ["backbone=levi_hassner", "head=linear"]),
    ("efficientnet_b4", ["backbone=efficientnet_b4"]),
    ("timm resnet18", ["backbone=timm", "backbone.model_name=resnet18"]),
]


class AgeGenderNet(nn.Module):
    """Backbone + one head per task, as the training module wires them."""

    def __init__(self, backbone: nn.Module, tasks: dict[str, nn.Module]) -> None:
        super().__init__()
        self.backbone, self.tasks = backbone, nn.ModuleDict(tasks)

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        features = self.backbone(x)
        return {name: task(features) for name, task in self.tasks.items()}


def build(overrides: list[str]) -> AgeGenderNet:
    if GlobalHydra.instance().is_initialized():
        GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        cfg = compose("train", overrides=[*overrides, "tasks=[age,gender]"])
    backbone = instantiate(cfg.backbone)
    tasks = {n: instantiate(t, in_features=backbone.out_features) for n, t in cfg.tasks.items()}
    return AgeGenderNet(backbone, tasks).eval()


def input_shape(model: AgeGenderNet) -> tuple[int, int, int]:
    spec = model.backbone.input_spec
    return spec.channels, spec.size, spec.size


def n_params(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters() if p.requires_grad)


def fp32_megabytes(module: nn.Module) -> float:
    return sum(t.numel() for t in [*module.parameters(), *module.buffers()]) * 4 / 1e6


def macs(model: nn.Module, x: torch.Tensor) -> int:
    with torch.inference_mode(), FlopCounterMode(display=False) as counter:
        model(x)
    return counter.get_total_flops() // 2


def forward(model: nn.Module, x: torch.Tensor) -> Work:
    """One forward pass as a unit of timed work (its output discarded)."""
    def work() -> None:
        model(x)
    return work


def ms_per_face(model: nn.Module, shape: tuple[int, ...], batch_sizes: list[int], warmup: int,
                repeats: int) -> dict[int, float]:
    """Median ms per face of an inference call at each batch size (calls taking turns)."""
    inputs = {b: torch.randn(b, *shape) for b in batch_sizes}
    with torch.inference_mode():
        timings = interleaved({str(b): forward(model, x) for b, x in inputs.items()},
                              repeats=repeats, warmup=warmup)
    return {b: timings[str(b)].median * 1000 / b for b in batch_sizes}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument("--repeats", type=int, default=10, help="timed calls (median)")
    parser.add_argument("--warmup", type=int, default=3, help="untimed calls first")
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[1, 32])
    parser.add_argument("--only", nargs="*", help="row labels to run (default: all)")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)

    sizes = args.batch_sizes
    print(f"torch {torch.__version__}, {platform.processor() or platform.machine()}, "
          f"torch.set_num_threads({args.threads}), median of {args.repeats} after "
          f"{args.warmup} warm-up calls\n")
    print("| model | input | params backbone (M) | params + age/gender heads (M) | fp32 MB "
          "| GMACs / face | " + " | ".join(f"CPU ms / face @ batch {b}" for b in sizes) + " |")
    print("|---" * (6 + len(sizes)) + "|")
    for label, overrides in MODELS:
        if args.only and label not in args.only:
            continue
        model = build(overrides)
        spec = model.backbone.input_spec
        shape = input_shape(model)
        crop = f" (crop of {spec.resize})" if spec.resize else ""
        cells = [
            label,
            f"{spec.size}x{spec.size}x{spec.channels}{crop}",
            f"{n_params(model.backbone) / 1e6:.2f}",
            f"{n_params(model) / 1e6:.2f}",
            f"{fp32_megabytes(model):.1f}",
            f"{macs(model, torch.randn(1, *shape)) / 1e9:.3f}",
        ]
        latency = ms_per_face(model, shape, sizes, args.warmup, args.repeats)
        cells += [f"{latency[b]:.2f}" for b in sizes]
        print("| " + " | ".join(cells) + " |", flush=True)


if __name__ == "__main__":
    sys.exit(main())
