"""Finding a run's checkpoint and reading its weights without unpickling anything: the one
rule and the one loader that staged training, pseudo-labelling, evaluation and the Predictor
share. Lightning-free, so inference paths that must not import Lightning (the onnx backend)
can use it."""

from __future__ import annotations

import logging
import os
import pickle
import re
from collections.abc import Mapping
from pathlib import Path

import torch
from torch import Tensor

log = logging.getLogger(__name__)


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


CHECKPOINT_DIR = "checkpoints"
LAST = "last.ckpt"
_SCORE = re.compile(r"score(-?\d+(?:\.\d+)?)")


def best_checkpoint(path: str | os.PathLike) -> Path:
    """The checkpoint a run folder stands for: ``path`` itself when it is a ``.ckpt`` file;
    else, in ``<run>/checkpoints/`` (or that folder given directly), the one ``epoch*.ckpt``
    ModelCheckpoint kept; with several, the best one ``last.ckpt`` records, else the highest
    ``score`` in the file names; with none, ``last.ckpt`` (logged). The one rule that staged
    training, pseudo-labelling, evaluation, export and the Predictor share."""
    path = Path(path).expanduser()
    if path.is_file():
        if path.suffix != ".ckpt":
            raise ValueError(f"{path} is not a checkpoint (.ckpt) file: pass a run folder or "
                             f"a .ckpt path")
        return path
    if not path.is_dir():
        raise FileNotFoundError(f"no run folder or checkpoint at {path}")
    folder = path / CHECKPOINT_DIR if (path / CHECKPOINT_DIR).is_dir() else path
    last = folder / LAST
    kept = sorted(p for p in folder.glob("*.ckpt") if p.name != LAST)
    if len(kept) == 1:
        return kept[0]
    if kept:
        recorded = _recorded_best(last) if last.is_file() else None
        if recorded is not None and (folder / recorded).is_file():
            return folder / recorded
        scored = [(float(m.group(1)), p) for p in kept if (m := _SCORE.search(p.stem))]
        if len(scored) == len(kept):
            return max(scored)[1]
        raise ValueError(f"several checkpoints in {folder} ({[p.name for p in kept]}), no "
                         f"record of the best one and no score in their names: pass the "
                         f".ckpt file itself")
    if last.is_file():
        log.warning("no best checkpoint in %s: using %s", folder, LAST)
        return last
    raise FileNotFoundError(f"no checkpoint in {folder} (a debug=fast run saves none): train "
                            f"without debug=fast first, or pass a .ckpt path")


def _recorded_best(last: Path) -> str | None:
    """File name of the best model that ModelCheckpoint's state in ``last`` points at."""
    try:
        state = torch.load(last, map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, EOFError):
        return None  # an unreadable last.ckpt records nothing: fall back to the names
    for key, value in (state.get("callbacks") or {}).items():
        if key.startswith("ModelCheckpoint") and value.get("best_model_path"):
            return Path(value["best_model_path"]).name
    return None
