"""Any dataset described by a CSV: ``path`` plus any of the label columns."""

from __future__ import annotations

import os
from typing import Any

import numpy as np
import pandas as pd

from mtlface.data.readers.base import SeededSplitReader, absolute, drop_missing_files, read_table
from mtlface.data.skips import SkipReport


class CSVManifestReader(SeededSplitReader):
    """``root`` is the CSV file. Columns: ``path`` (relative paths are resolved against the
    CSV's folder) and any of ``age, gender, smile, emotion, race`` already in our conventions
    (DESIGN.md); a blank cell is a missing label, an invalid value is blanked and counted.
    A ``split`` column, if present, is used as is; otherwise a seeded split is made, grouped by
    ``group_column`` when given (e.g. a person id). Other columns pass through as text; a
    ``source`` column is replaced by this reader's ``source``."""

    name = "csv"
    title = "CSV manifest"
    download_hint = "Point the reader at a CSV file with a 'path' column and label columns."
    root_kind = "file"

    def __init__(
        self, root: str | os.PathLike, group_column: str | None = None, **split_options: Any
    ) -> None:
        super().__init__(root, **split_options)
        self.group_column = group_column

    def _read(self, report: SkipReport) -> pd.DataFrame:
        rows = [cells for _, cells in read_table(self.root, ",", ("path",), report)]
        df = pd.DataFrame.from_records(rows) if rows else pd.DataFrame(columns=["path"])
        df = df.replace("", np.nan)  # blank = missing, not "not a number"
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
