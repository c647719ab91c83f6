"""Adience: ``fold_0_data.txt`` ... ``fold_4_data.txt``, tab-separated with a header, and the
images under ``aligned/`` or ``faces/``."""

from __future__ import annotations

import math
import os
import re

import numpy as np
import pandas as pd

from mtlface.data.readers.base import DatasetReader, drop_missing_files, read_table
from mtlface.data.skips import SkipReport

NUM_FOLDS = 5
# The 8 official age groups (LMTCNN protocol); `age_group` is an index into this tuple.
AGE_GROUPS = ((0, 2), (4, 6), (8, 12), (15, 20), (25, 32), (38, 43), (48, 53), (60, 100))
IMAGE_PREFIX = {"aligned": "landmark_aligned_face", "faces": "coarse_tilt_aligned_face"}
GENDERS = {"m": 0, "f": 1}
REQUIRED = ("user_id", "original_image", "face_id", "age", "gender")
RANGE = re.compile(r"\(\s*(\d+)\s*,\s*(\d+)\s*\)")


class AdienceReader(DatasetReader):
    """The split follows the benchmark's folds (subjects never cross folds): ``test_fold`` is
    test, ``val_fold`` (default: the next fold) is val, the other three are train.

    age: a range ``(a, b)``, official or irregular, becomes its midpoint; a bare number is that
    age; ``None``/empty is missing. ``age_group`` is the nearest official group (distance to
    the group's interval, a tie going to the younger group), e.g. ``35`` -> (25, 32).
    gender: ``m``/``f`` -> 0/1, ``u``/empty missing. Other fold-file columns pass through.
    ``images`` picks the layout: ``aligned`` (landmark_aligned_face.*) or ``faces``
    (coarse_tilt_aligned_face.*); ``frontal`` reads ``fold_frontal_*_data.txt`` instead.
    """

    name = "adience"
    title = "Adience"
    download_hint = (
        "Download Adience (https://talhassner.github.io/home/projects/Adience/"
        "Adience-data.html): fold_0_data.txt ... fold_4_data.txt (and fold_frontal_*) plus "
        "aligned.tar.gz and/or faces.tar.gz, unpacked so this folder holds the fold files "
        "and aligned/<user_id>/ or faces/<user_id>/."
    )

    def __init__(
        self,
        root: str | os.PathLike,
        test_fold: int = 0,
        val_fold: int | None = None,
        images: str = "aligned",
        frontal: bool = False,
        source: str | None = None,
    ) -> None:
        super().__init__(root, source)
        val_fold = (test_fold + 1) % NUM_FOLDS if val_fold is None else val_fold
        if not (0 <= test_fold < NUM_FOLDS and 0 <= val_fold < NUM_FOLDS) or val_fold == test_fold:
            raise ValueError(f"need two different folds in 0..{NUM_FOLDS - 1}, got "
                             f"test_fold={test_fold}, val_fold={val_fold}")
        if images not in IMAGE_PREFIX:
            raise ValueError(f"images must be one of {list(IMAGE_PREFIX)}, got {images!r}")
        self.test_fold = test_fold
        self.val_fold = val_fold
        self.images = images
        self.frontal = frontal

    def _read(self, report: SkipReport) -> pd.DataFrame:
        stem = "fold_frontal" if self.frontal else "fold"
        files = [self.require(self.root / f"{stem}_{k}_data.txt") for k in range(NUM_FOLDS)]
        image_dir = self.require(self.root / self.images, "folder")
        records = []
        for fold, path in enumerate(files):
            for _, row in read_table(path, "\t", REQUIRED, report):
                name = f"{IMAGE_PREFIX[self.images]}.{row['face_id']}.{row['original_image']}"
                records.append({**row, "path": str(image_dir / row["user_id"] / name),
                                "fold": fold})
        # Every fold-file column passes through, after ours.
        columns = dict.fromkeys(["path", "age", "gender", "fold", *REQUIRED])
        columns.update(dict.fromkeys(k for r in records for k in r))
        df = drop_missing_files(pd.DataFrame.from_records(records, columns=list(columns)), report)
        # Parsed after the file check, so the label counts describe the rows returned.
        df["age"] = [parse_age(text, report) for text in df["age"]]
        df["gender"] = [parse_gender(text, report) for text in df["gender"]]
        fold = df["fold"].to_numpy(dtype=int)
        df["fold"] = df["fold"].astype("Int64")
        df["age_group"] = nearest_age_group(df["age"].to_numpy(dtype=float))
        df["split"] = np.select([fold == self.test_fold, fold == self.val_fold], ["test", "val"],
                                "train")
        return df


def parse_age(text: str, report: SkipReport) -> float:
    """Midpoint of ``(a, b)``, a bare number, or NaN (counted) for ``None``/empty/garbage."""
    if text in ("", "None"):
        report.skip("age None or empty (label missing)")
        return math.nan
    if text.isdecimal():
        return float(text)
    if m := RANGE.fullmatch(text):
        return (int(m[1]) + int(m[2])) / 2
    report.skip("age neither a range nor a number (label blanked)")
    return math.nan


def parse_gender(text: str, report: SkipReport) -> float:
    if text in GENDERS:
        return GENDERS[text]
    report.skip("gender u or empty (label missing)" if text in ("u", "")
                else "gender not m/f/u (label blanked)")
    return math.nan


def nearest_age_group(age: np.ndarray) -> pd.Series:
    """Index of the official group whose interval is nearest to each age (<NA> for NaN)."""
    lo, hi = np.array(AGE_GROUPS, dtype=float).T
    distance = np.maximum(lo - age[:, None], 0) + np.maximum(age[:, None] - hi, 0)
    group = pd.Series(distance.argmin(axis=1) if len(age) else [], dtype="Int64")
    return group.mask(np.isnan(age))
