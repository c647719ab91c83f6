"""AffectNet (manually annotated part): ``Manually_Annotated_file_lists/training.csv`` and
``validation.csv``, the images under ``Manually_Annotated_Images/``."""

from __future__ import annotations

import csv
import math
import os
from collections.abc import Iterator
from pathlib import Path

import pandas as pd

from mtlface.data.readers.base import drop_missing_files
from mtlface.data.readers.carved import CarvedValReader
from mtlface.data.skips import SkipReport
from mtlface.labels import label

LIST_DIR = "Manually_Annotated_file_lists"
LIST_FILES = {"training.csv": "train", "validation.csv": "test"}
COLUMNS = ("subDirectory_filePath", "face_x", "face_y", "face_width", "face_height",
           "facial_landmarks", "expression", "valence", "arousal")
BOX = ("box_x1", "box_y1", "box_x2", "box_y2")  # the columns detector=none crops at
EMOTIONS = label("emotion").classes
# AffectNet 0 Neutral 1 Happy 2 Sad 3 Surprise 4 Fear 5 Disgust 6 Anger -> FER2013 order
AFFECTNET_TO_FER = {0: EMOTIONS.index("neutral"), 1: EMOTIONS.index("happy"),
                    2: EMOTIONS.index("sad"), 3: EMOTIONS.index("surprise"),
                    4: EMOTIONS.index("fear"), 5: EMOTIONS.index("disgust"),
                    6: EMOTIONS.index("angry")}
UNLABELLED = {7: "contempt has no FER2013 class", 8: "expression 8 None",
              9: "expression 9 Uncertain"}
NON_FACE = 10
NO_VALUE = -2.0  # valence/arousal of an image without one


class AffectNetReader(CarvedValReader):
    """Reads the two file lists as shipped: ``subDirectory_filePath,face_x,face_y,face_width,
    face_height,facial_landmarks,expression,valence,arousal`` (landmarks ``;``-separated in
    one field). Checked against ``browatbn2/3FabRec`` ``datasets/affectnet.py`` (both files
    read with their header row; expression >= 8 dropped; a row with ``face_width`` 0 marks a
    missing image) and against public loaders that read ``validation.csv`` with
    ``header=None``: a header row is recognised by its first field and read when present, in
    either file.

    Columns: ``emotion`` in FER2013 order (Neutral -> neutral 6, Happy -> happy 3, Sad -> sad
    4, Surprise -> surprise 5, Fear -> fear 2, Disgust -> disgust 1, Anger -> angry 0);
    7 Contempt has no FER2013 class and 8 None / 9 Uncertain are no expression: their emotion
    is blank (counted), the row stays for ``valence``/``arousal``; ``expression`` keeps
    AffectNet's own code (0..9). 10 Non-Face rows are dropped (counted). ``valence`` and
    ``arousal`` are floats in [-1, 1]; -2 (none) is blank, anything else out of range is
    blanked, both counted. The face box becomes ``box_x1 box_y1 box_x2 box_y2`` (x, y,
    x + width, y + height), which ``detector=none`` crops with the crop margin, as it does
    IMDB-WIKI's ``face_location``. ``landmarks: true`` passes ``facial_landmarks`` through
    (136 numbers per row: large).

    Split: ``validation.csv`` is the test set (the benchmark's usual practice);
    ``val_fraction`` of ``training.csv`` (seeded, per image) becomes val. Dropped and
    counted: a line with too few or too many fields, a face box that is not numbers or is
    empty (width or height <= 0), an expression that is not a code 0..10, an image listed
    twice, a missing image. ``images`` is the folder the file paths are relative to.
    """

    name = "affectnet"
    title = "AffectNet"
    download_hint = (
        "Request AffectNet (http://mohammadmahoor.com/affectnet/) and unpack the manually "
        "annotated part so this folder holds Manually_Annotated_file_lists/training.csv, "
        "Manually_Annotated_file_lists/validation.csv and Manually_Annotated_Images/."
    )

    def __init__(
        self,
        root: str | os.PathLike,
        images: str = "Manually_Annotated_Images",
        landmarks: bool = False,
        source: str | None = None,
        val_fraction: float = 0.1,
        seed: int = 0,
    ) -> None:
        super().__init__(root, source, val_fraction, seed)
        self.images = images
        self.landmarks = landmarks

    def _read(self, report: SkipReport) -> pd.DataFrame:
        image_dir = self.require(self.root / self.images, "folder")
        rows, seen = [], set()
        for filename, split in LIST_FILES.items():
            path = self.require(self.root / LIST_DIR / filename)
            for row in read_list(path, report):
                if row["subDirectory_filePath"] in seen:
                    report.skip(f"{path.name}: image listed twice (row dropped)")
                    continue
                seen.add(row["subDirectory_filePath"])
                rows.append({**row, "path": str(image_dir / row["subDirectory_filePath"]),
                             "split": split, "file": path.name})
        rows = drop_missing_files(pd.DataFrame.from_records(rows, columns=["path", *COLUMNS,
                                                                           "split", "file"]),
                                  report)
        # Labels parsed after the file check, so their counts describe the rows returned.
        records = []
        for row in rows.to_dict("records"):
            record = parse_row(row, row["file"], report)
            if record is not None:
                record.update(path=row["path"], split=row["split"])
                if self.landmarks:
                    record["facial_landmarks"] = row["facial_landmarks"]
                records.append(record)
        columns = ["path", "split", "emotion", "expression", "valence", "arousal", *BOX]
        if self.landmarks:
            columns.append("facial_landmarks")
        df = pd.DataFrame.from_records(records, columns=columns)
        df["expression"] = df["expression"].astype("Int64")
        df["split"] = self.carve_val(df["split"], df["path"])
        return df


def read_list(path: Path, report: SkipReport) -> Iterator[dict[str, str]]:
    """The rows of a file list as ``{column: stripped field}``; a first row whose first field
    is ``subDirectory_filePath`` is the header (any column order), otherwise the columns are
    AffectNet's own order. A row with another number of fields is counted and skipped."""
    with open(path, newline="", encoding="utf-8-sig") as f:
        columns: tuple[str, ...] | None = None
        for row in csv.reader(f):
            cells = [cell.strip() for cell in row]
            if not any(cells):
                continue  # blank line
            if columns is None:
                if cells[0] == COLUMNS[0]:
                    missing = set(COLUMNS) - set(cells)
                    if missing:
                        raise ValueError(f"{path}: header {cells} lacks column(s) "
                                         f"{sorted(missing)}")
                    columns = tuple(cells)
                    continue
                columns = COLUMNS
            if len(cells) != len(columns):
                report.skip(f"{path.name}: line has too "
                            f"{'few' if len(cells) < len(columns) else 'many'} fields "
                            f"(row dropped)")
                continue
            yield dict(zip(columns, cells))


def parse_row(row: dict[str, str], file: str, report: SkipReport) -> dict | None:
    """A row's labels and face box, or None (counted) when the row is dropped."""
    try:
        x, y, w, h = (float(row[c]) for c in COLUMNS[1:5])
    except ValueError:
        report.skip(f"{file}: face box not numbers (row dropped)")
        return None
    if not all(math.isfinite(v) for v in (x, y, w, h)) or w <= 0 or h <= 0:
        report.skip(f"{file}: face box empty, width or height <= 0 (row dropped)")
        return None
    code = row["expression"]
    code = int(code) if code.isdecimal() else None
    if code is None or code > NON_FACE:
        report.skip(f"{file}: expression not a code 0..10 (row dropped)")
        return None
    if code == NON_FACE:
        report.skip(f"{file}: expression 10 Non-Face (row dropped)")
        return None
    if code in UNLABELLED:
        report.skip(f"{file}: {UNLABELLED[code]} (emotion blank)")
    return {"emotion": AFFECTNET_TO_FER.get(code, math.nan), "expression": code,
            "valence": parse_affect(row["valence"], "valence", file, report),
            "arousal": parse_affect(row["arousal"], "arousal", file, report),
            "box_x1": x, "box_y1": y, "box_x2": x + w, "box_y2": y + h}


def parse_affect(text: str, what: str, file: str, report: SkipReport) -> float:
    """A valence or arousal value in [-1, 1], or NaN (counted) for -2 (none) and bad values."""
    try:
        value = float(text)
    except ValueError:
        report.skip(f"{file}: {what} not a number (label blanked)")
        return math.nan
    if value == NO_VALUE:
        report.skip(f"{file}: {what} -2, none (label missing)")
        return math.nan
    if not -1.0 <= value <= 1.0:
        report.skip(f"{file}: {what} outside [-1, 1] (label blanked)")
        return math.nan
    return value
