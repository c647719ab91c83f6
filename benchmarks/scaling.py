"""Part 5, scaling: how training images/s (plain PyTorch step on batches in memory: forward,
masked losses, backward, optimiser step) and inference faces/s (``inference_mode``) grow with
the batch size and the input size, for BKNet (all five tasks, as ``train.py`` builds it) at 48
and 96 px and LMTCNN at 227 (crops of 256). Each row compares a configuration with the
smallest batch of the same model and input (or, for the larger input, the 48 px one at the
same batch); every configuration takes its turn in the same rounds."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from benchmarks.models import forward
from benchmarks.table import Row
from benchmarks.timing import Work, interleaved
from benchmarks.workload import bare_epoch, build, memory_batches, n_images, train_config
from mtlface.module import merge_source_batches

BKNET = ("backbone=bknet",)
BKNET_96 = ("backbone=bknet", "backbone.input_size=96")
LMTCNN = ("backbone=lmtcnn",)


@dataclass(frozen=True)
class Settings:
    # (model label, overrides, batch size, label of the reference configuration)
    configs: tuple[tuple[str, tuple[str, ...], int, str | None], ...] = (
        ("BKNet 48 px, batch 16", BKNET, 16, None),
        ("BKNet 48 px, batch 64", BKNET, 64, "BKNet 48 px, batch 16"),
        ("BKNet 48 px, batch 256", BKNET, 256, "BKNet 48 px, batch 16"),
        ("BKNet 96 px, batch 64", BKNET_96, 64, "BKNet 48 px, batch 64"),
        ("LMTCNN 227 px, batch 16", LMTCNN, 16, None),
        ("LMTCNN 227 px, batch 64", LMTCNN, 64, "LMTCNN 227 px, batch 16"),
    )
    steps: int = 3
    repeats: int = 3
    warmup: int = 1
    data: tuple[str, ...] = ()


QUICK = Settings(configs=(("BKNet 48 px, batch 4", BKNET, 4, None),
                          ("BKNet 48 px, batch 8", BKNET, 8, "BKNet 48 px, batch 4")),
                 steps=1, repeats=1, warmup=0)


def inference_work(model, batches) -> tuple[Work, int]:
    images = merge_source_batches(batches[0])["image"]
    model.eval()
    return forward(model, images), len(images)


def run(settings: Settings = Settings()) -> list[Row]:
    variants: dict[str, Work] = {}
    items: dict[str, int] = {}
    for label, overrides, batch, _ in settings.configs:
        cfg = train_config([*overrides, f"data.batch_size={batch}", *settings.data])
        batches = memory_batches(cfg, settings.steps)
        train_model, infer_model = build(cfg), build(cfg)
        variants[f"train {label}"] = lambda m=train_model, b=batches: bare_epoch(m, b)
        items[f"train {label}"] = n_images(batches)
        variants[f"infer {label}"], items[f"infer {label}"] = inference_work(infer_model, batches)
    timings = interleaved(_inference_mode(variants), settings.repeats, settings.warmup, items)
    rows = []
    for label, _, _, reference in settings.configs:
        if reference is None:
            continue
        for kind, what in (("train", "training, images/s"), ("infer", "inference, faces/s")):
            rows.append(Row.rates("scaling", label, what, timings[f"{kind} {label}"],
                                  f"{reference}: {what}", timings[f"{kind} {reference}"]))
    return rows


def _inference_mode(variants: dict[str, Work]) -> dict[str, Work]:
    """The inference variants run under ``torch.inference_mode``, the training ones not."""
    def wrap(work: Work) -> Work:
        def run() -> None:
            with torch.inference_mode():
                work()
        return run
    return {k: wrap(w) if k.startswith("infer") else w for k, w in variants.items()}
