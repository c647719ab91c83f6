"""Backends run a normalised batch ``Tensor[B, C, S, S]`` and return the raw head outputs
``{task: Tensor[B, ...]}`` on the CPU: the trained PyTorch module, a TorchScript file or an
ONNX file (onnxruntime: no Lightning, no model code at inference)."""

from __future__ import annotations

import os
import warnings
from pathlib import Path
from typing import Protocol

import torch
from torch import Tensor, nn

from mtlface.errors import ConfigError
from mtlface.predict.errors import PredictError, RunFolderError


def check_device(device: str, option: str = "device={}") -> torch.device:
    """``device`` parsed, or a one-line error when it is not a device (exit 2) or not on this
    machine (exit 1); ``option`` is how the user set it, e.g. ``"--device {}"``. Checked
    before a model is loaded: torch would fail later, with a traceback."""
    try:
        parsed = torch.device(device)
    except (RuntimeError, ValueError):
        raise ConfigError(f"{option.format(device)}: not a device; use cpu, cuda or "
                          f"cuda:N") from None
    if parsed.type == "cuda":
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if count == 0:
            raise PredictError(f"{option.format(device)}: no CUDA device on this machine; "
                               f"use {option.format('cpu')}")
        if parsed.index is not None and parsed.index >= count:
            raise PredictError(f"{option.format(device)}: this machine has {count} CUDA "
                               f"device(s); use {option.format('cuda:0')} or "
                               f"{option.format('cpu')}")
    return parsed


class Backend(Protocol):
    name: str

    def __call__(self, images: Tensor) -> dict[str, Tensor]: ...


class TorchBackend:
    name = "torch"

    def __init__(self, model: nn.Module, device: str | torch.device = "cpu") -> None:
        self.model = model.eval()
        self.device = torch.device(device)

    @torch.inference_mode()
    def __call__(self, images: Tensor) -> dict[str, Tensor]:
        return {k: v.float().cpu() for k, v in self.model(images.to(self.device)).items()}


class TorchScriptBackend(TorchBackend):
    """A TorchScript file: the same call as the eager model's, without the Python model code."""

    name = "torchscript"

    def __init__(self, path: str | os.PathLike, device: str | torch.device = "cpu") -> None:
        self.device = torch.device(device)
        try:
            with warnings.catch_warnings():  # torch 2.14 flags torch.jit as deprecated
                warnings.simplefilter("ignore", FutureWarning)
                self.model = torch.jit.load(str(path), map_location=self.device).eval()
        except (RuntimeError, ValueError) as exc:
            raise RunFolderError(f"cannot load TorchScript model {path}: {exc}") from None


class OnnxBackend:
    name = "onnx"

    def __init__(self, path: str | os.PathLike, device: str | torch.device = "cpu",
                 threads: int | None = None) -> None:
        """``threads``: onnxruntime's intra-op threads (default: one per physical core)."""
        try:
            import onnxruntime as ort
        except ImportError:
            raise PredictError("the onnx backend needs onnxruntime: "
                               "pip install onnxruntime") from None
        providers = ["CPUExecutionProvider"]
        if str(device).startswith("cuda"):
            if "CUDAExecutionProvider" not in ort.get_available_providers():
                raise PredictError(f"device={device}: this onnxruntime has no CUDA provider "
                                   f"(install onnxruntime-gpu, or use device=cpu)")
            providers.insert(0, "CUDAExecutionProvider")
        if not Path(path).is_file():
            raise RunFolderError(f"ONNX model {path} does not exist")
        options = ort.SessionOptions()
        if threads is not None:
            options.intra_op_num_threads = threads
        self.session = ort.InferenceSession(str(path), sess_options=options, providers=providers)
        self.input_name = self.session.get_inputs()[0].name
        self.output_names = [o.name for o in self.session.get_outputs()]

    def __call__(self, images: Tensor) -> dict[str, Tensor]:
        outputs = self.session.run(None, {self.input_name: images.numpy()})
        return {name: torch.from_numpy(out) for name, out in zip(self.output_names, outputs)}
