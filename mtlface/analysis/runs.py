"""Find run folders (single runs and multirun jobs) and load them as one DataFrame row each.

A run folder is any folder Hydra wrote ``.hydra/overrides.yaml`` into: ``outputs/runs/<x>/``
or a sweep job ``outputs/multiruns/<x>/<n>/``. A row holds the run's overrides (one column per
overridden key, e.g. ``age_bins.num_bins``), its ``results.json`` metrics (columns named like
the keys, ``<stage>/<task>/<metric>``: the ``/`` tells them apart from override keys), and
``run``, ``sweep``, ``status`` (``ok`` / ``failed``), ``error`` and ``path``.
"""

from __future__ import annotations

import json
import logging
import math
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pandas as pd
import yaml
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.errors import HydraException

from mtlface.runs import OVERRIDES, RESULTS, RunFolder, log_dir

log = logging.getLogger(__name__)

META = ("run", "sweep", "status", "error", "path")


def as_paths(paths: str | Path | Iterable[str | Path]) -> list[Path]:
    return [Path(paths)] if isinstance(paths, (str, Path)) else [Path(p) for p in paths]


def natural_key(value: Any) -> tuple:
    """Sort numbers by value before strings (job folders 0, 1, ..., 10; bins 3, 5, 10)."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return (2, 0.0, "")
    try:
        return (0, float(value), "")
    except (TypeError, ValueError):
        return (1, 0.0, str(value))


def find_runs(paths: str | Path | Iterable[str | Path]) -> list[Path]:
    """Every run folder at or under each path (a run, a sweep, or a folder of either)."""
    found: list[Path] = []
    for path in as_paths(paths):
        if not path.is_dir():
            raise FileNotFoundError(f"no such run or sweep folder: {path}")
        runs = ([path] if RunFolder(path).overrides.is_file() else
                sorted((f.parent.parent for f in path.rglob(str(OVERRIDES))),
                       key=lambda p: (str(p.parent), natural_key(p.name))))
        if not runs:
            raise FileNotFoundError(f"{path}: no runs in it (a run folder holds {OVERRIDES})")
        found += runs
    return list(dict.fromkeys(found))  # a run named twice (a run and its sweep) counts once


def parse_overrides(lines: list[str]) -> dict[str, Any]:
    """``["age_bins.num_bins=3", "tasks=[age]"]`` -> ``{"age_bins.num_bins": 3, "tasks": "[age]"}``:
    numbers and booleans keep their type, anything else is the override's own text."""
    out = {}
    for override in OverridesParser.create().parse_overrides(lines):
        key = override.key_or_group + (f"@{override.package}" if override.package else "")
        if override.is_delete():
            out[f"~{key}"] = True
            continue
        value = override.value()
        out[key] = (value if isinstance(value, (bool, int, float))
                    else override.get_value_element_as_str())
    return out


def _read_failed(path: Path) -> str:
    try:
        record = json.loads(path.read_text())
        text = record.get("cause") or f"{record['error']}: {record['message']}"
    except (json.JSONDecodeError, KeyError, TypeError) as error:
        return f"{path.name} unreadable ({error})"
    return text.splitlines()[0] if text else "failed"


def load_run(path: str | Path) -> dict[str, Any]:
    """One run folder as a flat dict (see the module docstring)."""
    folder = RunFolder(path)
    path, overrides_file = folder.path, folder.overrides
    try:
        overrides = parse_overrides(yaml.safe_load(overrides_file.read_text()) or [])
    except (OSError, yaml.YAMLError, HydraException) as error:
        raise ValueError(f"{overrides_file}: cannot read the overrides ({error})") from error
    in_sweep = (path.parent / "multirun.yaml").is_file() or path.name.isdigit()
    row: dict[str, Any] = {
        "run": f"{path.parent.name}/{path.name}" if in_sweep else path.name,
        "sweep": str(path.parent) if in_sweep else None,
        "status": "ok", "error": None, "path": str(path),
    }
    metrics: dict[str, float] = {}
    if folder.results.is_file():
        try:
            metrics = folder.read_results()
        except (json.JSONDecodeError, AttributeError, TypeError, ValueError) as error:
            row |= {"status": "failed", "error": f"{RESULTS} unreadable ({error})"}
    else:
        row |= {"status": "failed", "error": f"no {RESULTS} (the job died or is still running)"}
    if folder.failed.is_file():  # written by train.py when a sweep job raises
        row |= {"status": "failed", "error": _read_failed(folder.failed)}
    return row | overrides | metrics


def load_runs(paths: str | Path | Iterable[str | Path]) -> pd.DataFrame:
    """One row per run folder found under ``paths``: meta columns, then overrides, then metrics."""
    rows = [load_run(p) for p in find_runs(paths)]
    frame = pd.DataFrame(rows)
    metrics = sorted(c for c in frame.columns if "/" in c)
    overrides = [c for c in frame.columns if c not in META and c not in metrics]
    failed = int((frame["status"] != "ok").sum())
    if failed:
        log.warning("%d of %d runs failed (status column; error says why)", failed, len(frame))
    return frame[[*META, *overrides, *metrics]]


def metric_columns(runs: pd.DataFrame) -> list[str]:
    """The results.json columns (keys ``<stage>/...``)."""
    return [c for c in runs.columns if "/" in c]


def override_columns(runs: pd.DataFrame) -> list[str]:
    return [c for c in runs.columns if c not in META and "/" not in c]


def newest(folder: str | Path, count: int = 1) -> list[Path]:
    """The ``count`` most recently modified subfolders of ``folder`` (none if it is missing)."""
    folder = Path(folder)
    subdirs = [p for p in folder.iterdir() if p.is_dir()] if folder.is_dir() else []
    return sorted(subdirs, key=lambda p: p.stat().st_mtime)[-count:] if count else []


def default_outputs() -> Path:
    """Where train.py put its runs, seen from here: :func:`mtlface.runs.log_dir` (by default
    ``outputs`` in the working directory), else the nearest ``outputs`` above it: a notebook
    runs in ``notebooks/``, the runs it looks at are in ``../outputs``."""
    here = log_dir()
    if here.is_dir() or here.is_absolute():
        return here
    return next((parent / here for parent in Path.cwd().parents if (parent / here).is_dir()),
                here)


def resolve_folders(spec: str | None, kinds: Iterable[str] = ("runs", "multiruns"),
                    outputs: str | Path | None = None) -> list[Path]:
    """The folders named in ``spec`` (``os.pathsep``-separated, e.g. from an environment
    variable); when empty, the newest folder of each kind under ``outputs`` (default:
    :func:`default_outputs`)."""
    if spec:
        return [Path(p) for p in spec.split(os.pathsep) if p]
    outputs = default_outputs() if outputs is None else outputs
    folders = [p for kind in kinds for p in newest(Path(outputs) / kind)]
    if not folders:
        raise FileNotFoundError(f"nothing under {outputs}/{{{','.join(kinds)}}} yet: train "
                                f"first, or name the folders (e.g. MTLFACE_RUNS=path1:path2)")
    return folders
