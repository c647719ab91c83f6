"""A training run folder as inference sees it (:class:`mtlface.runs.RunFolder`): its saved
config rebuilds the model, its best checkpoint holds the weights. Checkpoints are read with
``weights_only=True`` (tensors and plain containers only); the config comes from the YAML,
never from a pickle. Errors are :class:`RunFolderError`: one line saying what to do."""

from __future__ import annotations

import copy
import os
from pathlib import Path

import torch
from omegaconf import DictConfig, open_dict
from torch import nn

from mtlface import runs
from mtlface.checkpoint import load_state_dict
from mtlface.predict.errors import RunFolderError
from mtlface.runs import CHECKPOINT_DIR, CONFIG, RESULTS, RunFolder, runs_root

RUNS_ROOT = Path("outputs") / "runs"  # runs_root() by default: what messages show
IGNORED_PREFIXES = ("weighting.",)  # training-only state (learnt loss weights)


def newest_run(root: str | os.PathLike | None = None) -> Path:
    """The most recent finished run under ``root`` (see :meth:`RunFolder.is_finished`): a
    one-step ``debug=fast`` run or one still training is newer but has no model worth
    showing."""
    root = Path(root) if root is not None else runs_root()
    found = [RunFolder(p) for p in root.glob("*")] if root.is_dir() else []
    found = [r for r in found if r.is_run()]
    finished = [r for r in found if r.is_finished()]
    if not finished:
        unfinished = f" ({len(found)} unfinished)" if found else ""
        raise RunFolderError(f"no finished run under {root}/{unfinished}: a finished run has "
                             f"{CONFIG}, a best checkpoint in {CHECKPOINT_DIR}/ and "
                             f"{RESULTS}; train one with `python train.py`, or pass a run "
                             f"folder with --run")
    return max(finished, key=lambda r: (r.config.stat().st_mtime, r.path.name)).path


def load_config(run_dir: str | os.PathLike) -> DictConfig:
    """The run's saved config, its absence said in the Predictor's terms."""
    run = RunFolder(run_dir)
    if not run.path.is_dir():
        raise RunFolderError(f"run folder {run_dir} does not exist: pass the folder of a "
                             f"train.py run ({RUNS_ROOT}/<date>_<time>)")
    if not run.is_run():
        raise RunFolderError(f"{run_dir} is not a training run folder: {CONFIG} is missing "
                             f"(train.py writes it into outputs/runs/<date>_<time>/)")
    return run.load_config()


def best_checkpoint(run_dir: str | os.PathLike) -> Path:
    """The run's best checkpoint by the shared rule (:func:`mtlface.runs.best_checkpoint`),
    its errors in the Predictor's terms."""
    try:
        return runs.best_checkpoint(run_dir)
    except (FileNotFoundError, ValueError) as exc:
        raise RunFolderError(str(exc)) from None


def read_state_dict(path: str | os.PathLike) -> dict:
    path = Path(path)
    if not path.is_file():
        raise RunFolderError(f"checkpoint {path} does not exist: pass an existing .ckpt file")
    try:
        return load_state_dict(path)
    except ValueError as exc:  # truncated, not a checkpoint, or pickled objects
        reason = _first_sentence(exc.__cause__ or exc)
        raise RunFolderError(f"cannot load checkpoint {path} with torch.load(weights_only=True) "
                             f"({reason}): the file is damaged or not a model checkpoint; pass "
                             f"another .ckpt, or train again") from None


def _first_sentence(exc: BaseException) -> str:
    """torch's load errors run to paragraphs of advice about pickles: their first sentence."""
    text = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
    return text.split(". ")[0].rstrip(".")[:200]


def load_weights(model: nn.Module, state: dict, source: str | os.PathLike) -> None:
    """Strict load, except for training-only state such as the learnt loss weights."""
    state = {k: v for k, v in state.items() if not k.startswith(IGNORED_PREFIXES)}
    try:
        result = model.load_state_dict(state, strict=False)
    except RuntimeError as exc:  # shape mismatches raise even when not strict
        raise RunFolderError(f"checkpoint {source} does not fit the run's config: "
                             f"{str(exc).splitlines()[-1].strip()[:300]}") from None
    missing = [k for k in result.missing_keys if not k.startswith(IGNORED_PREFIXES)]
    unexpected = list(result.unexpected_keys)
    if missing or unexpected:
        raise RunFolderError(f"checkpoint {source} does not fit the run's config: "
                             f"missing {missing[:5]}{'...' if len(missing) > 5 else ''}, "
                             f"unexpected {unexpected[:5]}{'...' if len(unexpected) > 5 else ''}")


def build_trained_model(cfg: DictConfig, checkpoint: str | os.PathLike,
                        device: str | torch.device = "cpu"):
    """The run's module with the checkpoint's weights, in eval mode, and its ``InputSpec``."""
    from mtlface.factory import build_model  # Lightning: only the torch backend needs it

    cfg = copy.deepcopy(cfg)
    with open_dict(cfg):
        if "pretrained_path" in cfg.backbone:  # the checkpoint has the weights: read no file
            cfg.backbone.pretrained_path = None
    try:
        model, input_spec = build_model(cfg)
    except Exception as exc:
        raise RunFolderError(f"cannot rebuild the model from the run's config "
                             f"({type(exc).__name__}: {exc})") from None
    load_weights(model, read_state_dict(checkpoint), checkpoint)
    return model.to(device).eval(), input_spec
