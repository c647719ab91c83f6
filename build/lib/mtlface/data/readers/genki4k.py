"""GENKI-4K: ``files/file0001.jpg``... and ``labels.txt``, line i = ``smile yaw pitch roll``
for file i."""

from __future__ import annotations

import math
import os
import re
from typing import Any

import pandas as pd

from mtlface.data.readers.base import SeededSplitReader, drop_missing_files
from mtlface.data.skips import SkipReport

FILE_NUMBER = re.compile(r"file(\d+)\.jpg")


class Genki4KReader(SeededSplitReader):
    """Smile labels plus the head pose (``yaw``, ``pitch``, ``roll`` columns). A label line that
    is not 4 numbers or whose smile is not 0/1, a label line whose image is missing, and an
    image without a label line are each counted. The faces are not cropped (needs detection).
    ``labels_file`` is the label file's path relative to the root, for copies that ship it
    under another name (e.g. ``GENKI-4K_Labels.txt``). No identities: the seeded split is per
    image."""

    name = "genki4k"
    title = "GENKI-4K"
    download_hint = (
        "Download GENKI-4K (MPLab GENKI database) and unpack it so this folder holds "
        "files/file0001.jpg ... files/file4000.jpg and labels.txt (one 'smile yaw pitch "
        "roll' line per file)."
    )

    def __init__(
        self, root: str | os.PathLike, labels_file: str = "labels.txt", **split_options: Any
    ) -> None:
        super().__init__(root, **split_options)
        self.labels_file = labels_file

    def _read(self, report: SkipReport) -> pd.DataFrame:
        labels = self.require(self.root / self.labels_file)
        images = self.require(self.root / "files", "folder")
        lines = labels.read_text().splitlines()
        records = []
        for number, line in enumerate(lines, start=1):
            values = parse_line(line, report)
            if values is not None:
                records.append({"path": str(images / f"file{number:04d}.jpg"),
                                "smile": values[0], "yaw": values[1], "pitch": values[2],
                                "roll": values[3]})
        unlabelled = [p for p in images.glob("file*.jpg")
                      if (m := FILE_NUMBER.fullmatch(p.name)) and int(m[1]) > len(lines)]
        report.skip("image without a label line (row dropped)", len(unlabelled))
        df = pd.DataFrame.from_records(records, columns=["path", "smile", "yaw", "pitch", "roll"])
        df = drop_missing_files(df, report)
        df["split"] = self.split(df["path"])
        return df


def parse_line(line: str, report: SkipReport) -> tuple[int, float, float, float] | None:
    """``(smile, yaw, pitch, roll)`` or None, counted."""
    fields = line.split()
    try:
        values = [float(f) for f in fields]
    except ValueError:
        values = []
    if len(values) != 4 or not all(math.isfinite(v) for v in values):
        report.skip("label line is not 4 numbers (row dropped)")
        return None
    if values[0] not in (0.0, 1.0):
        report.skip("smile not 0/1 (row dropped)")
        return None
    return int(values[0]), values[1], values[2], values[3]
