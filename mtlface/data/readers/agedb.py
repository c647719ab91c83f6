"""AgeDB: labels live in the file names ``<id>_<Name>_<age>_<m|f>.jpg``."""

from __future__ import annotations

import math
import os
from typing import Any

import pandas as pd

from mtlface.data.readers.base import SeededSplitReader
from mtlface.data.skips import SkipReport
from mtlface.labels import label

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png")
GENDERS = {"m": 0, "f": 1}
MIN_AGE, MAX_AGE = label("age").value_range


class AgeDBReader(SeededSplitReader):
    """Every image under the root (searched recursively, e.g. ``AgeDB/``) named
    ``<id>_<Name>_<age>_<m|f>.jpg``, e.g. ``0_MariaCallas_35_f.jpg``: the name is split on
    ``_`` as ``imbalanced-regression``'s AgeDB script does (``YyzHarry/imbalanced-regression``
    ``agedb-dir/data/create_agedb.py``: ``_, _, age, gender = stem.split('_')``), except that
    a name that itself holds ``_`` is kept whole (the fields between the id and the age).

    Columns ``age`` (years), ``gender`` (m 0, f 1), ``name`` and ``image_id``. AgeDB has no
    official split: a seeded train/val/test one grouped by ``name``, so one person never
    crosses splits. A file name with fewer than 4 fields or a non-numeric id is dropped; an
    age that is not a whole number in 0..120 or a gender other than m/f is blanked (the row
    is dropped when neither is valid); all counted.
    """

    name = "agedb"
    title = "AgeDB"
    download_hint = (
        "Request AgeDB (https://ibug.doc.ic.ac.uk/resources/agedb/) and unpack it so this "
        "folder holds the images <id>_<Name>_<age>_<m|f>.jpg (any sub-folder)."
    )

    def __init__(self, root: str | os.PathLike, **split_options: Any) -> None:
        super().__init__(root, **split_options)

    def _read(self, report: SkipReport) -> pd.DataFrame:
        files = sorted(p for p in self.root.rglob("*")
                       if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
        if not files:
            raise self.missing_data("no AgeDB images (<id>_<Name>_<age>_<m|f>.jpg)")
        records = []
        for path in files:
            labels = parse_name(path.stem, report)
            if labels is not None:
                records.append({"path": str(path), **labels})
        df = pd.DataFrame.from_records(
            records, columns=["path", "age", "gender", "name", "image_id"])
        df["gender"] = df["gender"].astype("Int64")
        df["image_id"] = df["image_id"].astype("Int64")
        df["split"] = self.split(df["name"])
        return df


def parse_name(stem: str, report: SkipReport) -> dict[str, Any] | None:
    """``{"age", "gender", "name", "image_id"}`` from an AgeDB file stem, or None (counted)."""
    fields = stem.split("_")
    if len(fields) < 4:
        report.skip("file name has too few fields (row dropped)")
        return None
    image_id, *name, age, gender = fields
    if not image_id.isdecimal():
        report.skip("file name id not a number (row dropped)")
        return None
    years = float(age) if age.isdecimal() else math.nan
    good_age = MIN_AGE <= years <= MAX_AGE
    code = GENDERS.get(gender.lower())
    if not good_age and code is None:
        report.skip("neither age nor gender valid (row dropped)")
        return None
    if not good_age:
        report.skip(f"age not a whole number in {MIN_AGE:g}..{MAX_AGE:g} (label blanked)")
        years = math.nan
    if code is None:
        report.skip("gender not m/f (label blanked)")
    return {"age": years, "gender": code, "name": "_".join(name), "image_id": int(image_id)}
