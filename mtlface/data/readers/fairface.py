"""FairFace: ``fairface_label_train.csv`` and ``fairface_label_val.csv`` with the images under
``train/`` and ``val/``."""

from __future__ import annotations

import math
import os

import pandas as pd

from mtlface.data.readers.base import drop_missing_files, read_table
from mtlface.data.readers.carved import CarvedValReader
from mtlface.data.skips import SkipReport

LABEL_FILES = {"fairface_label_train.csv": "train", "fairface_label_val.csv": "test"}
REQUIRED = ("file", "age", "gender", "race")
# FairFace's 9 age groups in its own order; `age_group` indexes this tuple.
AGE_GROUPS = ("0-2", "3-9", "10-19", "20-29", "30-39", "40-49", "50-59", "60-69", "more than 70")
# The age in years a group stands for: the middle of a closed range (a + b) / 2, as Adience's
# ranges are read; 75 for "more than 70" (the middle of the next decade, 70-80).
AGE_OF_GROUP = (1.0, 6.0, 14.5, 24.5, 34.5, 44.5, 54.5, 64.5, 75.0)
GENDERS = {"Male": 0, "Female": 1}
# FairFace's 7 classes in its own order (`race7` indexes this tuple) ...
RACES7 = ("White", "Black", "Latino_Hispanic", "East Asian", "Southeast Asian", "Indian",
          "Middle Eastern")
# ... and each one's UTKFace class: 0 white, 1 black, 2 asian, 3 indian, 4 others.
RACE7_TO_RACE = (0, 1, 4, 2, 2, 3, 4)


class FairFaceReader(CarvedValReader):
    """Reads the label files as shipped (header ``file,age,gender,race,service_test``, rows
    like ``train/1.jpg,50-59,Male,East Asian,True``), checked against the authors' model code
    (``dchen236/FairFace`` ``predict.py``: the 7 races, 2 genders and 9 age groups in this
    order) and the dataset's README (``joojs/fairface`` ``README.md``: the two label files,
    padding 0.25 and 1.25 releases).

    Columns: ``age_group`` (0..8, FairFace's groups ``0-2`` ... ``more than 70``), ``age``
    (the group's middle in years, 75 for ``more than 70``), ``gender`` (Male 0, Female 1),
    ``race7`` (0..6: White, Black, Latino_Hispanic, East Asian, Southeast Asian, Indian,
    Middle Eastern) and ``race`` in UTKFace's five classes (White -> white, Black -> black,
    East and Southeast Asian -> asian, Indian -> indian, Latino_Hispanic and Middle Eastern ->
    others); ``file`` and ``service_test`` pass through.

    Split: ``fairface_label_val.csv`` is the test set; ``val_fraction`` of the train rows (a
    seeded choice per image: FairFace has no identities) become val. ``file`` is relative to
    ``images`` (default: the root itself; ``val/1.jpg`` and ``train/1.jpg`` do not clash).
    A row with too few or too many fields or a missing image is dropped; an age group,
    gender or race not in the lists above is blanked; all counted.
    """

    name = "fairface"
    title = "FairFace"
    download_hint = (
        "Download FairFace (https://github.com/joojs/fairface): the padding=0.25 images "
        "(fairface-img-margin025-trainval.zip) and both label files, unpacked so this folder "
        "holds train/, val/, fairface_label_train.csv and fairface_label_val.csv."
    )

    def __init__(
        self,
        root: str | os.PathLike,
        images: str = ".",
        source: str | None = None,
        val_fraction: float = 0.1,
        seed: int = 0,
    ) -> None:
        super().__init__(root, source, val_fraction, seed)
        self.images = images

    def _read(self, report: SkipReport) -> pd.DataFrame:
        image_dir = self.require(self.root / self.images, "folder")
        records = []
        for filename, split in LABEL_FILES.items():
            path = self.require(self.root / filename)
            for _, row in read_table(path, ",", REQUIRED, report):
                records.append({**row, "path": str(image_dir / row["file"]),
                                "split": split})
        columns = dict.fromkeys(["path", "split", "age", "gender", "race"])
        columns.update(dict.fromkeys(k for r in records for k in r))
        df = drop_missing_files(pd.DataFrame.from_records(records, columns=list(columns)),
                                report)
        group = [parse_choice(text, AGE_GROUPS, "age group", report) for text in df["age"]]
        race7 = [parse_choice(text, RACES7, "race", report) for text in df["race"]]
        df["age_group"] = pd.array(group, dtype="Float64").astype("Int64")
        df["age"] = [AGE_OF_GROUP[g] if g is not None else math.nan for g in group]
        gender = [parse_choice(text, tuple(GENDERS), "gender", report) for text in df["gender"]]
        df["gender"] = pd.array(gender, dtype="Float64").astype("Int64")
        df["race7"] = pd.array(race7, dtype="Float64").astype("Int64")
        df["race"] = [RACE7_TO_RACE[r] if r is not None else math.nan for r in race7]
        df["split"] = self.carve_val(df["split"], df["path"])
        return df


def parse_choice(text: str, choices: tuple[str, ...], what: str, report: SkipReport) -> int | None:
    """The index of ``text`` in ``choices``, or None (counted) when it is not one of them."""
    if text in choices:
        return choices.index(text)
    report.skip(f"{what} empty (label missing)" if not text
                else f"{what} not a FairFace {what} (label blanked)")
    return None
