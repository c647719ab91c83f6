"""The manifest: the table that joins preprocessing (or the synthetic generator) to training.

One row per image with ``path, source, split``, the five core label columns (``age, gender,
smile, emotion, race``, present in every manifest, blank where a source lacks them) and any
other label column a reader emits (CelebA's attributes, ``valence``...). ``path`` is relative to
the folder holding ``manifest.csv``. A blank label cell means "not labelled". A label column is
validated against the task declared for it (``conf/tasks/``, or a run's own declarations);
extra columns (``face_score``, ``fold``...) pass through untouched.
"""

from __future__ import annotations

import logging
import os
import tempfile
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import pandas as pd

from mtlface.data.skips import SkipReport
from mtlface.labels import LabelSpec, shipped_labels

log = logging.getLogger(__name__)

MANIFEST_NAME = "manifest.csv"
BASE_COLUMNS = ("path", "source", "split")
LABEL_COLUMNS = ("age", "gender", "smile", "emotion", "race")  # in every manifest
COLUMNS = BASE_COLUMNS + LABEL_COLUMNS
SPLITS = ("train", "val", "test")


class ManifestError(ValueError):
    """A manifest that cannot be used at all (missing file or columns)."""


def empty_manifest() -> pd.DataFrame:
    """A frame with every manifest column and the dtypes ``read_manifest`` returns."""
    return clean_labels(pd.DataFrame({c: [] for c in COLUMNS}))[0]


def label_specs(labels: Mapping[str, LabelSpec] | None = None) -> dict[str, LabelSpec]:
    """The shipped declarations, overridden and extended by ``labels`` (a run's tasks)."""
    return {**shipped_labels(), **(labels or {})}


def clean_labels(df: pd.DataFrame, labels: Mapping[str, LabelSpec] | None = None
                 ) -> tuple[pd.DataFrame, SkipReport]:
    """Give every declared label column (:func:`label_specs`) its canonical dtype (float for
    numeric labels, nullable ``Int64`` for class labels) and blank out values that are not valid
    labels, counted by reason. Such a row stays: its other labels are still good. An absent core
    column, or one of ``labels``, becomes all-missing. Rows with an unknown split are dropped,
    counted too. The caller logs the report."""
    df = df.copy()
    report = SkipReport()
    wanted = (*LABEL_COLUMNS, *(labels or {}))
    for name, spec in label_specs(labels).items():
        if name not in df and name not in wanted:
            continue
        raw = df[name] if name in df else pd.Series(np.nan, index=df.index)
        values = pd.to_numeric(raw, errors="coerce").astype("float64")
        report.skip(f"{name} not a number (label blanked)", int((values.isna() & raw.notna()).sum()))
        if spec.is_categorical:
            bad = values.notna() & ~values.isin(np.arange(spec.num_classes, dtype=float))
            reason = f"{name} not in 0..{spec.num_classes - 1} (label blanked)"
        else:
            lo, hi = spec.value_range or (-np.inf, np.inf)
            bad = values.notna() & ~values.between(lo, hi)
            reason = f"{name} outside [{lo:g}, {hi:g}] (label blanked)"
        report.skip(reason, int(bad.sum()))
        values = values.mask(bad)
        df[name] = values.astype("Int64") if spec.is_categorical else values
    for col in BASE_COLUMNS:
        df[col] = df[col].astype(str)
    bad_split = ~df["split"].isin(SPLITS)
    report.skip(f"split not one of {'/'.join(SPLITS)} (row dropped)", int(bad_split.sum()))
    return df[~bad_split].reset_index(drop=True), report


def manifest_file(path: str | os.PathLike) -> Path:
    """``path`` itself, or ``path/manifest.csv`` when ``path`` is a folder."""
    path = Path(path)
    return path / MANIFEST_NAME if path.is_dir() else path


def read_manifest(path: str | os.PathLike, labels: Mapping[str, LabelSpec] | None = None
                  ) -> pd.DataFrame:
    """Read and validate ``manifest.csv`` (or the folder holding it); ``labels``: a run's task
    declarations, which validate their columns (see :func:`clean_labels`)."""
    path = manifest_file(path)
    if not path.is_file():
        raise ManifestError(f"no manifest at {path}: run preprocess.py (or the synthetic "
                            f"generator) to create it")
    try:
        df = pd.read_csv(path, dtype={"path": str, "source": str, "split": str},
                         keep_default_na=True)
    except (pd.errors.ParserError, UnicodeDecodeError) as exc:
        raise ManifestError(f"manifest {path} is not a readable CSV: {exc}") from exc
    missing = [c for c in BASE_COLUMNS if c not in df]
    if missing:
        raise ManifestError(f"manifest {path} lacks column(s) {missing}; expected at least "
                            f"{list(BASE_COLUMNS)} plus label columns {list(LABEL_COLUMNS)}")
    absent = [name for name in labels or {} if name not in df]
    if absent:
        log.info("%s has no column for task(s) %s: none of its rows is labelled for them", path,
                 ", ".join(absent))
    df, report = clean_labels(df, labels)
    report.log(str(path))
    df.attrs["absent_labels"] = absent
    return df


def write_manifest(df: pd.DataFrame, path: str | os.PathLike) -> Path:
    """Write atomically (temp file + rename), so a killed writer never leaves half a manifest."""
    path = Path(path)
    if path.suffix != ".csv":
        path = path / MANIFEST_NAME
    missing = [c for c in BASE_COLUMNS if c not in df]
    if missing:
        raise ManifestError(f"cannot write a manifest without column(s) {missing}")
    df, report = clean_labels(df)
    report.log(f"writing {path}")
    ordered = list(COLUMNS) + [c for c in df.columns if c not in COLUMNS]
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".manifest-", suffix=".tmp")
    with os.fdopen(fd, "w", newline="") as f:
        df[ordered].to_csv(f, index=False)
    os.replace(tmp, path)
    return path
