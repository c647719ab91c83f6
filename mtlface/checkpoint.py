"""Reading a checkpoint's weights without unpickling anything: the one loader that staged
training, pseudo-labelling, evaluation and the Predictor share (which checkpoint a run stands
for is :func:`mtlface.runs.best_checkpoint`). Lightning-free, so inference paths that must not
import Lightning (the onnx backend) can use it."""

from __future__ import annotations

import os
import pickle
from collections.abc import Mapping
from pathlib import Path

import torch
from torch import Tensor


def load_state_dict(path: str | os.PathLike) -> dict[str, Tensor]:
    """The model weights of a Lightning checkpoint (or of a bare state dict file)."""
    path = Path(path)
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, EOFError) as exc:
        # Not a torch file, or objects outside weights_only's allow-list: never unpickled.
        raise ValueError(f"cannot load {path} as weights (torch.load, weights_only=True): "
                         f"{exc}") from exc
    if not isinstance(state, Mapping):
        raise ValueError(f"{path} holds a {type(state).__name__}, not a checkpoint")
    state = state.get("state_dict", state)
    if not state or not all(isinstance(v, Tensor) for v in state.values()):
        raise ValueError(f"{path} has no state_dict of tensors: not a model checkpoint")
    return dict(state)
