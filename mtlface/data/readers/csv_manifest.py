"""Any dataset described by a CSV: ``path`` plus label columns, named and valued as the tasks
declare them or mapped to them by config (``columns``, ``value_maps``)."""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd

from mtlface.data.readers.base import SeededSplitReader, absolute, drop_missing_files, read_table
from mtlface.data.skips import SkipReport
from mtlface.errors import ConfigError


class CSVManifestReader(SeededSplitReader):
    """``root`` is the CSV file. Columns: ``path`` (relative paths are resolved against the
    CSV's folder) and label columns: a column named as a task (``age``, ``gender``,
    ``eyeglasses``...) holds that task's labels in its conventions (``conf/tasks/``); a blank cell
    is a missing label, an invalid value is blanked and counted.

    A CSV in its own names and values needs only config: ``columns`` maps a task to the CSV's
    column (``{eyeglasses: Eyeglasses}``), ``value_maps`` maps a task's cell texts to its
    label values (``{eyeglasses: {-1: 0, 1: 1}}``, ``{gender: {M: 0, F: 1}}``); a non-blank cell
    that the map lacks is blanked, counted.
    A ``split`` column, if present, is used as is; otherwise a seeded split is made, grouped by
    ``group_column`` when given (e.g. a person id). Other columns pass through as text; a
    ``source`` column is replaced by this reader's ``source``."""

    name = "csv"
    title = "CSV manifest"
    download_hint = "Point the reader at a CSV file with a 'path' column and label columns."
    root_kind = "file"

    def __init__(
        self,
        root: str | os.PathLike,
        group_column: str | None = None,
        columns: Mapping[str, str] | None = None,
        value_maps: Mapping[str, Mapping[Any, Any]] | None = None,
        **split_options: Any,
    ) -> None:
        super().__init__(root, **split_options)
        self.group_column = group_column
        self.columns = {str(k): str(v) for k, v in (columns or {}).items()}
        self.value_maps = {str(t): {str(k): v for k, v in m.items()}
                           for t, m in (value_maps or {}).items()}

    def _read(self, report: SkipReport) -> pd.DataFrame:
        rows = [cells for _, cells in read_table(self.root, ",", ("path",), report)]
        df = pd.DataFrame.from_records(rows) if rows else pd.DataFrame(columns=["path"])
        df = df.replace("", np.nan)  # blank = missing, not "not a number"
        df = self._map_labels(df, report)
        no_path = df["path"].isna()
        report.skip("path empty (row dropped)", int(no_path.sum()))
        df = df[~no_path].copy()
        # Joining keeps an absolute path as it is and resolves a relative one.
        df["path"] = [str(absolute(self.root.parent / p)) for p in df["path"]]
        df = drop_missing_files(df, report)
        if "split" not in df:
            if self.group_column is not None and self.group_column not in df:
                raise ValueError(f"{self.root}: no group column {self.group_column!r}")
            df["split"] = self.split(df[self.group_column or "path"])
        return df

    def _map_labels(self, df: pd.DataFrame, report: SkipReport) -> pd.DataFrame:
        """Rename ``columns`` (CSV column -> task) and apply the ``value_maps``."""
        missing = sorted(c for c in self.columns.values() if c not in df)
        if missing:
            raise ConfigError(f"{self.root}: no column {missing} for source.columns "
                              f"{self.columns}; the CSV has {list(df.columns)}")
        df = df.rename(columns={csv: task for task, csv in self.columns.items()})
        for task, mapping in self.value_maps.items():
            if task not in df:
                raise ConfigError(f"{self.root}: source.value_maps names {task!r}, which is no "
                                  f"column of the CSV (after source.columns): {list(df.columns)}")
            cells = df[task].astype("string").str.strip()
            mapped = cells.map(mapping)
            unmapped = cells.notna() & mapped.isna()
            report.skip(f"{task}: value not in source.value_maps.{task} (label blanked)",
                        int(unmapped.sum()))
            df[task] = pd.to_numeric(mapped, errors="coerce")
        return df
