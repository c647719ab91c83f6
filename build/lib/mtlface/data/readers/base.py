"""What every dataset reader shares: the missing-dataset error, skip counting, final cleaning,
the seeded split, and tolerant reading of delimited label files.

A reader turns one dataset *as distributed* into one labels table in the manifest's columns
(``mtlface.data.manifest.COLUMNS``) plus source-specific columns. Subclasses implement only
``_read``; ``read`` wraps it so every reader checks, counts, cleans and reports the same way.
"""

from __future__ import annotations

import csv
import logging
import os
from abc import ABC, abstractmethod
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import ClassVar

import numpy as np
import pandas as pd

from mtlface.data.manifest import COLUMNS, clean_labels
from mtlface.data.skips import SkipReport
from mtlface.data.readers.splits import seeded_split

log = logging.getLogger(__name__)

MISSING_FILE = "image file missing (row dropped)"


def absolute(path: str | os.PathLike) -> Path:
    """Absolute and normalised, without resolving symlinks (keeps the user's own layout)."""
    return Path(os.path.abspath(os.path.expanduser(path)))


class DatasetReader(ABC):
    """Base of all readers. Options are constructor arguments, so a Hydra config with
    ``_target_`` builds a reader; ``read()`` returns the labels table.

    ``source`` overrides the value of the ``source`` column (default: the reader's ``name``).
    """

    name: ClassVar[str]  # default `source` value and the key of `read_source`
    title: ClassVar[str]  # the dataset's name in messages
    download_hint: ClassVar[str]  # where to download it and what the root folder must contain
    root_kind: ClassVar[str] = "folder"

    def __init__(self, root: str | os.PathLike, source: str | None = None) -> None:
        self.root = absolute(root)
        self.source = source or self.name

    def read(self) -> pd.DataFrame:
        """The labels table; ``attrs["skipped"]`` holds ``{reason: count}`` of skipped rows and
        blanked or missing labels, which are also logged."""
        self.require(self.root, self.root_kind)
        report = SkipReport()
        df = self._read(report)
        df["source"] = self.source
        df, label_report = clean_labels(df)
        report.update(label_report)
        report.log(self.title, log)
        df = df[[*COLUMNS, *(c for c in df.columns if c not in COLUMNS)]]
        df.attrs["skipped"] = report.as_dict()
        return df

    @abstractmethod
    def _read(self, report: SkipReport) -> pd.DataFrame:
        """Rows with at least ``path`` and ``split`` (label columns optional), every skip or
        blanked label counted in ``report``."""

    def require(self, path: Path, kind: str = "file") -> Path:
        """``path`` itself, or ``FileNotFoundError`` saying what to download and unpack where."""
        exists = path.is_dir() if kind == "folder" else path.is_file()
        if not exists:
            raise FileNotFoundError(f"{self.title}: {kind} not found: {path}. "
                                    f"{self.download_hint} (reader root: {self.root})")
        return path

    def missing_data(self, what: str) -> FileNotFoundError:
        """For a root that exists but holds none of the dataset's files."""
        return FileNotFoundError(f"{self.title}: {what} in {self.root}. {self.download_hint}")


class SeededSplitReader(DatasetReader):
    """A reader for a dataset without an official split: a seeded, reproducible one is made,
    group-aware where the dataset knows identities (see ``splits.seeded_split``).

    ``val_fraction`` / ``test_fraction`` are fractions of rows; the rest is train.
    """

    def __init__(
        self,
        root: str | os.PathLike,
        source: str | None = None,
        val_fraction: float = 0.1,
        test_fraction: float = 0.1,
        seed: int = 0,
    ) -> None:
        super().__init__(root, source)
        if min(val_fraction, test_fraction) < 0 or val_fraction + test_fraction >= 1:
            raise ValueError(f"need val_fraction, test_fraction >= 0 with a sum below 1, got "
                             f"{val_fraction}, {test_fraction}")
        self.val_fraction = val_fraction
        self.test_fraction = test_fraction
        self.seed = seed

    def split(self, keys: Sequence[object] | pd.Series) -> np.ndarray:
        """One split per row; ``keys`` are the rows' group (identity) keys, or anything unique
        per row (e.g. the path) where there is no identity; a missing key is its own group."""
        return seeded_split(keys, self.val_fraction, self.test_fraction, self.seed)


def drop_missing_files(df: pd.DataFrame, report: SkipReport) -> pd.DataFrame:
    """Rows whose ``path`` is an existing file; the others counted. For readers whose paths come
    from a label file rather than a folder listing."""
    exists = np.fromiter((os.path.isfile(p) for p in df["path"]), dtype=bool, count=len(df))
    report.skip(MISSING_FILE, int((~exists).sum()))
    return df[exists].reset_index(drop=True)


def read_table(
    path: Path, delimiter: str, required: Sequence[str], report: SkipReport
) -> Iterator[tuple[int, dict[str, str]]]:
    """Stream ``(row index, {column: stripped cell})`` from a delimited file with a header.

    The row index counts non-blank data rows from 0, as ``pandas.read_csv`` numbers them.
    A row too short to hold every required column, or with extra non-empty cells, is counted
    and skipped; a short row's missing optional cells read as empty.
    """
    with open(path, newline="", encoding="utf-8-sig") as f:  # -sig: tolerate a BOM
        rows = csv.reader(f, delimiter=delimiter)
        header = [h.strip() for h in next(rows, [])]
        missing = [c for c in required if c not in header]
        if missing:
            raise ValueError(f"{path}: header {header} lacks column(s) {missing}")
        min_len = max(header.index(c) for c in required) + 1
        index = 0
        for row in rows:
            if not any(cell.strip() for cell in row):
                continue  # blank line: not a data row
            if len(row) < min_len:
                report.skip(f"{path.name}: line has too few fields (row dropped)")
            elif any(cell.strip() for cell in row[len(header):]):
                report.skip(f"{path.name}: line has too many fields (row dropped)")
            else:
                cells = [cell.strip() for cell in row] + [""] * (len(header) - len(row))
                yield index, dict(zip(header, cells))
            index += 1
