"""Part 4, inference: faces/s of every backbone of ``benchmarks/models.py`` (with age and gender
heads, in eval mode, at its default input), PyTorch (``inference_mode``) vs ONNX Runtime on the
file ``mtlface.export`` writes, at batch 1 and 32, with the same thread count (ONNX Runtime's
intra-op threads set to ``torch.get_num_threads()``; its own default is every core)."""

from __future__ import annotations

import tempfile
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from benchmarks.models import MODELS, build, forward, input_shape
from benchmarks.table import Row
from benchmarks.timing import Timing, Work, interleaved
from mtlface.export import export_model


@dataclass(frozen=True)
class Settings:
    models: tuple[str, ...] = tuple(label for label, _ in MODELS)
    batch_sizes: tuple[int, ...] = (1, 32)
    repeats: int = 5
    warmup: int = 2


QUICK = Settings(models=("bknet",), batch_sizes=(1, 4), repeats=2, warmup=0)


def onnx_session(path: Path):
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = torch.get_num_threads()
    options.inter_op_num_threads = 1
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def onnx_run(session, x: np.ndarray) -> Work:
    name = session.get_inputs()[0].name

    def work() -> None:
        session.run(None, {name: x})
    return work


def measure(overrides: Sequence[str], settings: Settings) -> dict[tuple[str, int], Timing]:
    """Faces/s per (runtime, batch size), every call taking turns with the others."""
    torch.manual_seed(0)
    model = build(list(overrides))
    shape = input_shape(model)
    with tempfile.TemporaryDirectory() as tmp, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        exported = export_model(model.backbone, model.tasks, model.backbone.input_spec, "onnx",
                                Path(tmp) / "model.onnx")
        if not exported.ok:
            raise RuntimeError(f"ONNX export of {overrides} differs from PyTorch by "
                               f"{exported.max_abs_diff:.3g}")
        session = onnx_session(exported.path)
        variants: dict[str, Work] = {}
        items: dict[str, int] = {}
        for b in settings.batch_sizes:
            x = torch.randn(b, *shape)
            variants[f"torch {b}"], items[f"torch {b}"] = forward(model, x), b
            variants[f"onnx {b}"], items[f"onnx {b}"] = onnx_run(session, x.numpy()), b
        with torch.inference_mode():
            timings = interleaved(variants, settings.repeats, settings.warmup, items)
    return {(runtime, int(b)): timings[f"{runtime} {b}"]
            for runtime, b in (k.split() for k in timings)}


def run(settings: Settings = Settings()) -> list[Row]:
    rows = []
    for label, overrides in MODELS:
        if label not in settings.models:
            continue
        timings = measure(overrides, settings)
        for b in settings.batch_sizes:
            rows.append(Row.rates("inference", f"{label}, batch {b}", "ONNX Runtime, faces/s",
                                  timings["onnx", b], "PyTorch, faces/s", timings["torch", b]))
    return rows
