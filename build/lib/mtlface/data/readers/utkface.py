"""UTKFace: labels live in the file names ``[age]_[gender]_[race]_[date&time].jpg(.chip.jpg)``."""

from __future__ import annotations

import pandas as pd

from mtlface.data.readers.base import SeededSplitReader
from mtlface.data.skips import SkipReport

SUFFIXES = (".jpg.chip.jpg", ".jpg")  # aligned & cropped release first: it also ends in .jpg
MAX_AGE = 116


class UTKFaceReader(SeededSplitReader):
    """Both releases: the aligned & cropped one (a flat folder of ``*.jpg.chip.jpg``) and the
    in-the-wild one (``*.jpg``, shipped as part1/ part2/ part3/): the root is searched
    recursively. A name without exactly 4 numeric fields, or with a value out of range, is
    skipped and counted. No identities are known, so the seeded split is per image."""

    name = "utkface"
    title = "UTKFace"
    download_hint = (
        "Download UTKFace (https://susanqq.github.io/UTKFace/) and unpack the aligned & "
        "cropped images (UTKFace/*.jpg.chip.jpg) or the in-the-wild ones (part*/*.jpg) "
        "into this folder."
    )

    def _read(self, report: SkipReport) -> pd.DataFrame:
        files = sorted(self.root.rglob("*.jpg"))
        if not files:
            raise self.missing_data("no UTKFace images (*.jpg)")
        records = []
        for path in files:
            labels = parse_name(path.name, report)
            if labels is not None:
                records.append({"path": str(path), **labels})
        df = pd.DataFrame.from_records(records, columns=["path", "age", "gender", "race"])
        df["split"] = self.split(df["path"])
        return df


def parse_name(filename: str, report: SkipReport) -> dict[str, int] | None:
    """``{"age", "gender", "race"}`` from a UTKFace file name, or None (counted) if malformed."""
    stem = next(filename[: -len(s)] for s in SUFFIXES if filename.endswith(s))
    fields = stem.split("_")
    if len(fields) != 4:
        report.skip(f"file name has {'too few' if len(fields) < 4 else 'too many'} fields "
                    f"(row dropped)")
        return None
    if not all(f.isdecimal() for f in fields):  # also catches an empty field ("53__0_...")
        report.skip("file name field not a number (row dropped)")
        return None
    age, gender, race = (int(f) for f in fields[:3])
    if age > MAX_AGE:
        report.skip(f"age not in 0..{MAX_AGE} (row dropped)")
    elif gender > 1:
        report.skip("gender not 0/1 (row dropped)")
    elif race > 4:
        report.skip("race not 0..4 (row dropped)")
    else:
        return {"age": age, "gender": gender, "race": race}
    return None
