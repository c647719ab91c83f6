"""The synthetic sources' settings: which tasks each labels, split sizes, image size, grey,
folds; validated into canonical plain dicts (they make the cache key)."""

from __future__ import annotations

import re
import zlib
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from mtlface.data.manifest import SPLITS
from mtlface.data.synthetic.attributes import TASKS

DEFAULT_SOURCES: dict[str, dict[str, Any]] = {
    "imdb_like": {"tasks": ["age", "gender"], "image_size": 64, "grey": False,
                  "splits": {"train": 3000, "val": 300, "test": 300}},
    "utk_like": {"tasks": ["age", "gender", "race"], "image_size": 64, "grey": False,
                 "splits": {"train": 2000, "val": 300, "test": 300}},
    "genki_like": {"tasks": ["smile"], "image_size": 64, "grey": False,
                   "splits": {"train": 1500, "val": 300, "test": 300}},
    "fer_like": {"tasks": ["emotion"], "image_size": 48, "grey": True,
                 "splits": {"train": 2500, "val": 300, "test": 300}},
}
_SOURCE_KEYS = ("tasks", "splits", "image_size", "grey", "folds")
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")
_IMAGE_SIZES = (16, 512)


def normalize_sources(sources: Mapping[str, Mapping[str, Any]]) -> dict[str, dict[str, Any]]:
    """Validate source settings (plain mappings or Hydra DictConfigs) into canonical plain dicts,
    sorted by name, with defaults filled in (``image_size`` 64, ``grey`` false)."""
    if not isinstance(sources, Mapping) or not sources:
        raise ValueError(f"synthetic sources must be a non-empty mapping of name -> settings, "
                         f"got {sources!r}")
    return {str(name): _normalize_source(str(name), spec)
            for name, spec in sorted(sources.items(), key=lambda kv: str(kv[0]))}


def _normalize_source(name: str, spec: Any) -> dict[str, Any]:
    where = f"synthetic source {name!r}"
    if not _NAME.fullmatch(name):
        raise ValueError(f"{where}: the name must be letters, digits, '_', '.', '-' (it names a "
                         f"folder)")
    if not isinstance(spec, Mapping):
        raise ValueError(f"{where}: settings must be a mapping with keys {list(_SOURCE_KEYS)}")
    spec = dict(spec)
    unknown = sorted(set(map(str, spec)) - set(_SOURCE_KEYS))
    if unknown:
        raise ValueError(f"{where}: unknown key(s) {unknown}; valid keys are {list(_SOURCE_KEYS)}")

    tasks = spec.get("tasks")
    if isinstance(tasks, str) or not isinstance(tasks, Sequence) or not tasks:
        raise ValueError(f"{where}: 'tasks' must be a non-empty list drawn from {list(TASKS)}, "
                         f"got {tasks!r}")
    bad = [t for t in tasks if t not in TASKS]
    if bad:
        raise ValueError(f"{where}: unknown task(s) {bad}; valid tasks are {list(TASKS)}")
    tasks = [t for t in TASKS if t in tasks]  # canonical order: order is irrelevant to the data

    splits = spec.get("splits")
    if not isinstance(splits, Mapping) or not splits:
        raise ValueError(f"{where}: 'splits' must be a non-empty mapping of split -> count with "
                         f"splits from {list(SPLITS)}, got {splits!r}")
    splits = dict(splits)
    bad = [s for s in splits if s not in SPLITS]
    if bad:
        raise ValueError(f"{where}: unknown split(s) {bad}; valid splits are {list(SPLITS)}")
    for split, n in splits.items():
        if isinstance(n, bool) or not isinstance(n, int) or n <= 0:
            raise ValueError(f"{where}: split {split!r} size must be a positive integer, "
                             f"got {n!r}")

    image_size = spec.get("image_size", 64)
    lo, hi = _IMAGE_SIZES
    if isinstance(image_size, bool) or not isinstance(image_size, int) \
            or not lo <= image_size <= hi:
        raise ValueError(f"{where}: 'image_size' must be an integer in [{lo}, {hi}], "
                         f"got {image_size!r}")
    grey = spec.get("grey", False)
    if not isinstance(grey, bool):
        raise ValueError(f"{where}: 'grey' must be true or false, got {grey!r}")
    out = {"tasks": tasks, "splits": {s: int(splits[s]) for s in SPLITS if s in splits},
           "image_size": int(image_size), "grey": grey}
    folds = spec.get("folds")
    if folds is not None:  # only when set: the settings hash of a fold-less source is unchanged
        if isinstance(folds, bool) or not isinstance(folds, int) or folds < 3:
            raise ValueError(f"{where}: 'folds' must be an integer >= 3 (fold k tests, k+1 "
                             f"validates, the rest train) or null, got {folds!r}")
        out["folds"] = folds
    return out


def assign_folds(rows: pd.DataFrame, folds: int, seed: int) -> np.ndarray:
    """A ``fold`` per row (0..folds-1, sizes differing by at most one), from a permutation
    seeded by the generator seed and the source: like Adience's fold files, a fold column over
    all of a source's images, so ``data.fold=k`` cross-validates without new images."""
    source_id = zlib.crc32(str(rows["source"].iloc[0]).encode())
    order = np.random.default_rng([seed, source_id]).permutation(len(rows))
    fold = np.empty(len(rows), dtype=np.int64)
    fold[order] = np.arange(len(rows)) % folds
    return fold


