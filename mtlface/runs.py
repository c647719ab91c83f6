"""A training run's folder: what ``train.py`` writes where, in one place.

    <log_dir>/runs/<date>_<time>/          (a sweep job: <log_dir>/multiruns/<date>_<time>/<n>/)
        .hydra/config.yaml                 the resolved config the model is rebuilt from
        .hydra/hydra.yaml, overrides.yaml  Hydra's own record: group choices, command line
        checkpoints/<best>.ckpt, last.ckpt ModelCheckpoint's kept checkpoint and the last epoch
        results.json                       val/test metrics, written last: the run finished
        failed.json                        a sweep job that raised: why
        calibration.json                   temperatures and the age interval (mtlface.calibrate)
        export/model.onnx, model.pt        exported models (mtlface.export)
        eval/<data>-<split>/               evaluations (mtlface.evaluate)

Lightning-free (the onnx backend of the Predictor must not import it): checkpoints are read
with ``torch.load(weights_only=True)`` only.
"""

from __future__ import annotations

import json
import logging
import os
import pickle
from dataclasses import dataclass
from pathlib import Path

import torch
from omegaconf import DictConfig, OmegaConf

log = logging.getLogger(__name__)

LOG_DIR_ENV = "MTLFACE_LOG_DIR"
# Relative names, also used in messages (``<run>/.hydra/config.yaml``).
HYDRA_DIR = Path(".hydra")
CONFIG = HYDRA_DIR / "config.yaml"
HYDRA_CONFIG = HYDRA_DIR / "hydra.yaml"
OVERRIDES = HYDRA_DIR / "overrides.yaml"
CHECKPOINT_DIR = "checkpoints"
LAST = "last.ckpt"
RESULTS = "results.json"
FAILED = "failed.json"
CALIBRATION = "calibration.json"
EXPORT_DIR = "export"
EVAL_DIR = "eval"


def log_dir() -> Path:
    """Where runs and sweeps go (``paths.log_dir``): ``$MTLFACE_LOG_DIR``, by default
    ``outputs`` in the working directory (conf/paths/default.yaml)."""
    return Path(os.environ.get(LOG_DIR_ENV, "outputs"))


def runs_root() -> Path:
    """Single runs: ``<log_dir>/runs`` (conf/hydra/default.yaml's ``run.dir``)."""
    return log_dir() / "runs"


@dataclass(frozen=True)
class RunFolder:
    """The folder of one ``train.py`` run (or sweep job) and the paths of what it holds:
    ``config``, ``hydra_config``, ``overrides``, ``checkpoints``, ``last``, ``results``,
    ``failed``, ``calibration``, ``export_dir`` and ``eval_dir`` (the layout
    ``mtlface.runs`` describes). Paths are computed, not checked: ``is_run``, ``is_finished`` and
    ``best_checkpoint`` look."""

    path: Path

    def __init__(self, path: str | os.PathLike) -> None:
        object.__setattr__(self, "path", Path(path).expanduser())

    @classmethod
    def containing(cls, path: str | os.PathLike) -> tuple[RunFolder, Path | None]:
        """``(run, checkpoint)`` for a run folder (checkpoint None) or for a ``.ckpt`` file
        (the run is the folder above ``checkpoints/``, or the file's own folder)."""
        path = Path(path).expanduser()
        if not path.is_file():
            return cls(path), None
        parent = path.parent
        return cls(parent.parent if parent.name == CHECKPOINT_DIR else parent), path

    # -- what Hydra writes -------------------------------------------------------------------
    @property
    def config(self) -> Path:
        return self.path / CONFIG

    @property
    def hydra_config(self) -> Path:
        return self.path / HYDRA_CONFIG

    @property
    def overrides(self) -> Path:
        return self.path / OVERRIDES

    # -- what ModelCheckpoint writes ---------------------------------------------------------
    @property
    def checkpoints(self) -> Path:
        return self.path / CHECKPOINT_DIR

    @property
    def last(self) -> Path:
        return self.checkpoints / LAST

    def kept_checkpoints(self) -> list[Path]:
        """The checkpoints ModelCheckpoint kept by the objective (``last.ckpt`` left out)."""
        return _kept(self.checkpoints)

    def best_checkpoint(self) -> Path:
        """The checkpoint the run stands for (the module's ``best_checkpoint`` rule)."""
        return _best_in(self.checkpoints if self.checkpoints.is_dir() else self.path)

    # -- what train.py and the commands write ------------------------------------------------
    @property
    def results(self) -> Path:
        return self.path / RESULTS

    @property
    def failed(self) -> Path:
        return self.path / FAILED

    @property
    def calibration(self) -> Path:
        return self.path / CALIBRATION

    @property
    def export_dir(self) -> Path:
        return self.path / EXPORT_DIR

    def exported(self, fmt: str) -> Path:
        """The default file of ``mtlface export run=<run> format=<fmt>``."""
        from mtlface.predict.metadata import EXPORT_FILES  # the format's file name

        if fmt not in EXPORT_FILES:
            raise ValueError(f"unknown export format {fmt!r}; valid: {list(EXPORT_FILES)}")
        return self.export_dir / EXPORT_FILES[fmt]

    @property
    def eval_dir(self) -> Path:
        return self.path / EVAL_DIR

    def evaluation(self, name: str) -> Path:
        """The folder of one evaluation (``<data>-<split>`` by default)."""
        return self.eval_dir / name

    # -- reading -----------------------------------------------------------------------------
    def is_run(self) -> bool:
        return self.config.is_file()

    def is_finished(self) -> bool:
        """Trained to the end: its config, a checkpoint ModelCheckpoint kept (not only
        ``last.ckpt``) and ``results.json``, which ``train.py`` writes last."""
        return self.is_run() and self.results.is_file() and bool(self.kept_checkpoints())

    def load_config(self) -> DictConfig:
        """The saved config (``FileNotFoundError`` when there is none: callers say what to
        do in their own terms)."""
        if not self.config.is_file():
            raise FileNotFoundError(f"{self.path} has no {CONFIG}")
        cfg = OmegaConf.load(self.config)
        assert isinstance(cfg, DictConfig)
        return cfg

    def group_choice(self, group: str) -> str | None:
        """The option the run picked for config group ``group`` (Hydra's record), or None."""
        if not self.hydra_config.is_file():
            return None
        choice = OmegaConf.select(OmegaConf.load(self.hydra_config),
                                  f"hydra.runtime.choices.{group}")
        return str(choice) if choice else None

    def read_results(self) -> dict[str, float]:
        return {k: float(v) for k, v in json.loads(self.results.read_text()).items()}

    def write_results(self, results: dict[str, float]) -> Path:
        self.results.write_text(json.dumps(results, indent=2) + "\n")
        return self.results


def best_checkpoint(path: str | os.PathLike) -> Path:
    """The checkpoint ``path`` stands for: ``path`` itself when it is a ``.ckpt`` file; else,
    in ``<run>/checkpoints/`` (or a folder of checkpoints given directly), the one
    ``ModelCheckpoint`` kept; with several, the best one it recorded in ``last.ckpt``; with
    none, ``last.ckpt`` (logged). The one rule that training (``init_from``), pseudo-labels,
    evaluation, calibration, export and the Predictor share."""
    path = Path(path).expanduser()
    if path.is_file():
        if path.suffix != ".ckpt":
            raise ValueError(f"{path} is not a checkpoint (.ckpt) file: pass a run folder or "
                             f"a .ckpt path")
        return path
    if not path.is_dir():
        raise FileNotFoundError(f"no run folder or checkpoint at {path}")
    return RunFolder(path).best_checkpoint()


def _kept(folder: Path) -> list[Path]:
    return sorted(p for p in folder.glob("*.ckpt") if p.name != LAST)


def _best_in(folder: Path) -> Path:
    last = folder / LAST
    kept = _kept(folder)
    if len(kept) == 1:
        return kept[0]
    if kept:
        recorded = recorded_best(last) if last.is_file() else None
        if recorded is not None and (folder / recorded).is_file():
            return folder / recorded
        raise ValueError(f"several checkpoints in {folder} ({[p.name for p in kept]}) and no "
                         f"record of the best one in {LAST}: pass the .ckpt file itself")
    if last.is_file():
        log.warning("no best checkpoint in %s: using %s", folder, LAST)
        return last
    raise FileNotFoundError(f"no checkpoint in {folder} (a debug=fast run saves none): train "
                            f"without debug=fast first, or pass a .ckpt path")


def recorded_best(checkpoint: str | os.PathLike) -> str | None:
    """File name of the best model that ModelCheckpoint's state in ``checkpoint`` (a run's
    ``last.ckpt``) points at; None when it records none or cannot be read. The run folder may
    have moved since: the name, not the recorded path, is what holds."""
    try:  # mmap: the record is read without reading every tensor
        state = torch.load(checkpoint, map_location="cpu", weights_only=True, mmap=True)
    except (pickle.UnpicklingError, RuntimeError, EOFError, OSError):
        return None
    for key, value in (state.get("callbacks") or {}).items():
        if key.startswith("ModelCheckpoint") and value.get("best_model_path"):
            return Path(value["best_model_path"]).name
    return None
