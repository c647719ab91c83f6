"""RAF-DB basic: ``EmoLabel/list_patition_label.txt`` (the dataset's own spelling) and the
images under ``Image/aligned/`` or ``Image/original/``."""

from __future__ import annotations

import os
from pathlib import Path

import pandas as pd

from mtlface.data.readers.base import drop_missing_files
from mtlface.data.readers.carved import CarvedValReader
from mtlface.data.skips import SkipReport
from mtlface.labels import label

LABEL_FILE = "EmoLabel/list_patition_label.txt"
EMOTIONS = label("emotion").classes
# RAF-DB 1 Surprise 2 Fear 3 Disgust 4 Happiness 5 Sadness 6 Anger 7 Neutral -> FER2013 order
RAF_TO_FER = {1: EMOTIONS.index("surprise"), 2: EMOTIONS.index("fear"),
              3: EMOTIONS.index("disgust"), 4: EMOTIONS.index("happy"),
              5: EMOTIONS.index("sad"), 6: EMOTIONS.index("angry"),
              7: EMOTIONS.index("neutral")}
SPLITS = {"train": "train", "test": "test"}  # name prefix -> split
LAYOUTS = ("aligned", "original")
ATTRIBUTE_DIR = "Annotation/manual"  # <stem>_manu_attri.txt: 5 landmark lines, gender, race, age
RAF_AGE_GROUPS = ("0-3", "4-19", "20-39", "40-69", "70+")  # `age_group` indexes this tuple
# (column, RAF code -> our value, reason when the code is not a key), in the file's line order
ATTRIBUTES = (
    ("gender", {0: 0, 1: 1}, "gender 2 unsure or unknown"),  # 0 male, 1 female
    ("race", {0: 0, 1: 1, 2: 2}, "race code not 0..2"),  # Caucasian, African-American, Asian
    ("age_group", dict(enumerate(range(len(RAF_AGE_GROUPS)))), "age group code not 0..4"),
)


class RAFDBReader(CarvedValReader):
    """Reads ``list_patition_label.txt`` as shipped (``train_00001.jpg 5`` /
    ``test_0001.jpg 5``, no header), as the DAN code does (``yaoing/DAN`` ``rafdb.py``: split
    by the ``train``/``test`` name prefix, label - 1 = 0 Surprise ... 6 Neutral, aligned
    image ``Image/aligned/<stem>_aligned.jpg``).

    ``emotion`` is mapped to the FER2013 order (surprise 5, fear 2, disgust 1, happy 3, sad 4,
    angry 0, neutral 6). ``images``: ``aligned`` (100x100 aligned faces, ``detector=none``)
    or ``original`` (``Image/original/<name>``, whole photos: ``detector=mtcnn``).

    With ``attributes`` and ``Annotation/manual/`` present, each image's
    ``<stem>_manu_attri.txt`` (5 landmark lines, then gender, race and age-group codes, as
    the public RAF-DB multi-task loaders read them) adds ``gender`` (0 male, 1 female; 2
    unsure is blank), ``race`` (0 Caucasian -> white, 1 African-American -> black, 2 Asian ->
    asian) and ``age_group`` (0..4: 0-3, 4-19, 20-39, 40-69, 70+); a missing or malformed
    file or an unknown code leaves those blank, counted.
    Split: the ``test_`` images are test; ``val_fraction`` of the ``train_`` ones (seeded,
    per image) become val. A line that is not ``<name> <label>``, a name without the
    ``train_``/``test_`` prefix, a label outside 1..7, a name listed twice and a missing image
    drop their row, counted.
    """

    name = "rafdb"
    title = "RAF-DB"
    download_hint = (
        "Request RAF-DB (http://www.whdeng.cn/RAF/model1.html) and unpack the basic set so "
        "this folder holds EmoLabel/list_patition_label.txt and Image/aligned/ (or "
        "Image/original/)."
    )

    def __init__(
        self,
        root: str | os.PathLike,
        images: str = "aligned",
        attributes: bool = True,
        source: str | None = None,
        val_fraction: float = 0.1,
        seed: int = 0,
    ) -> None:
        super().__init__(root, source, val_fraction, seed)
        if images not in LAYOUTS:
            raise ValueError(f"images must be one of {list(LAYOUTS)}, got {images!r}")
        self.images = images
        self.attributes = attributes

    def _read(self, report: SkipReport) -> pd.DataFrame:
        labels = self.require(self.root / LABEL_FILE)
        image_dir = self.require(self.root / "Image" / self.images, "folder")
        records, seen = [], set()
        for line in labels.read_text(encoding="utf-8-sig").splitlines():
            fields = line.split()
            if not fields:
                continue  # blank line
            if len(fields) != 2:
                report.skip(f"{labels.name}: line is not '<name> <label>' (row dropped)")
                continue
            name, label = fields
            split = SPLITS.get(name.partition("_")[0])
            code = int(label) if label.isdecimal() else None
            if split is None:
                report.skip(f"{labels.name}: name not train_*/test_* (row dropped)")
            elif code not in RAF_TO_FER:
                report.skip(f"{labels.name}: label not 1..7 (row dropped)")
            elif name in seen:
                report.skip(f"{labels.name}: image listed twice (row dropped)")
            else:
                seen.add(name)
                file = (name if self.images == "original"
                        else f"{name.rsplit('.', 1)[0]}_aligned.jpg")
                records.append({"path": str(image_dir / file), "emotion": RAF_TO_FER[code],
                                "split": split, "name": name})
        if not records:
            raise self.missing_data(f"no labelled images in {LABEL_FILE}")
        df = pd.DataFrame.from_records(records, columns=["path", "emotion", "split", "name"])
        df = drop_missing_files(df, report)
        if self.attributes and (self.root / ATTRIBUTE_DIR).is_dir():
            codes = [read_attributes(self.root / ATTRIBUTE_DIR, name, report)
                     for name in df["name"]]
            for j, (column, mapping, reason) in enumerate(ATTRIBUTES):
                values = [c[j] if c is not None else None for c in codes]
                report.skip(f"{reason} (label blanked)",
                            sum(v is not None and v not in mapping for v in values))
                mapped = [mapping.get(v) if v is not None else None for v in values]
                df[column] = pd.array(mapped, dtype="Float64").astype("Int64")
        df["split"] = self.carve_val(df["split"], df["name"])
        return df


def read_attributes(folder: Path, name: str, report: SkipReport) -> tuple[int, ...] | None:
    """``(gender, race, age group)`` codes of one image, or None (counted) when its
    ``_manu_attri.txt`` is missing or malformed."""
    path = folder / f"{name.rsplit('.', 1)[0]}_manu_attri.txt"
    if not path.is_file():
        report.skip(f"{ATTRIBUTE_DIR}: attribute file missing (labels blank)")
        return None
    lines = [line.strip() for line in path.read_text(encoding="utf-8-sig").splitlines()]
    codes = lines[5:8]
    if len(codes) != 3 or not all(c.isdecimal() for c in codes):
        report.skip(f"{ATTRIBUTE_DIR}: attribute file malformed (labels blank)")
        return None
    return tuple(int(c) for c in codes)
