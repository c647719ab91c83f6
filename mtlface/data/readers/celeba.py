"""CelebA: ``list_attr_celeba.txt`` (40 binary attributes), ``list_eval_partition.txt`` (the
official split) and the aligned images in ``img_align_celeba/``."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd

from mtlface.data.readers.base import DatasetReader, drop_missing_files
from mtlface.data.skips import SkipReport

ATTR_FILE = "list_attr_celeba.txt"
PARTITION_FILE = "list_eval_partition.txt"
PARTITIONS = {"0": "train", "1": "val", "2": "test"}
# optional files: name -> prefix of their columns ("" keeps the file's own column names)
EXTRA_FILES = {
    "identity_CelebA.txt": "",
    "list_bbox_celeba.txt": "bbox_",
    "list_landmarks_align_celeba.txt": "",
}
IMAGE_COLUMN_NAMES = ("image_id", "image", "image_name", "filename", "file")


class CelebAReader(DatasetReader):
    """Reads the files as the authors ship them (checked against torchvision's ``CelebA``,
    ``pytorch/vision`` ``torchvision/datasets/celeba.py``, which splits every line on runs of
    spaces, takes line 2 as the attribute names and maps -1/1 to 0/1):

    - ``list_attr_celeba.txt``: a count line, a line of the 40 attribute names (with a
      trailing space), then ``000001.jpg -1  1 ...`` rows; single or double spaces and CRLF
      line ends are all read. One 0/1 column per attribute, named by the lower-cased
      attribute name (``5_o_clock_shadow``, ``eyeglasses``, ``no_beard``, ...), plus
      ``gender`` from ``Male`` (1 -> 0 male, -1 -> 1 female) and ``smile`` from ``Smiling``.
    - ``list_eval_partition.txt``: ``000001.jpg 0``, 0 train, 1 val, 2 test (the split).
    - Optional, read when present (``extras``): ``identity_CelebA.txt`` (``identity``),
      ``list_bbox_celeba.txt`` (``bbox_x_1 bbox_y_1 bbox_width bbox_height``: boxes in the
      in-the-wild images, so ``detector=none`` does not crop the aligned images at them) and
      ``list_landmarks_align_celeba.txt`` (``lefteye_x`` ... ``rightmouth_y``).
    - ``images``: the folder of the aligned 178x218 JPEGs (``img_align_celeba``); already
      aligned, so ``detector=none``.

    Counted, never fatal: a line with too few or too many fields, an image listed twice, an
    attribute value other than -1/1 (that label blanked), fewer rows than the count line
    says, an image without a partition (or a partition other than 0/1/2), a partition entry
    without attributes, and a missing image file.
    """

    name = "celeba"
    title = "CelebA"
    download_hint = (
        "Download CelebA (https://mmlab.ie.cuhk.edu.hk/projects/CelebA.html): "
        "img_align_celeba.zip and the Anno/ and Eval/ text files, unpacked so this folder "
        "holds img_align_celeba/, list_attr_celeba.txt and list_eval_partition.txt (and, "
        "optionally, identity_CelebA.txt, list_bbox_celeba.txt, "
        "list_landmarks_align_celeba.txt)."
    )

    def __init__(
        self,
        root: str | os.PathLike,
        images: str = "img_align_celeba",
        extras: bool = True,
        source: str | None = None,
    ) -> None:
        super().__init__(root, source)
        self.images = images
        self.extras = extras

    def _read(self, report: SkipReport) -> pd.DataFrame:
        attr_path = self.require(self.root / ATTR_FILE)
        partition_path = self.require(self.root / PARTITION_FILE)
        image_dir = self.require(self.root / self.images, "folder")
        names, rows, listed = read_listing(attr_path, report)
        if not rows:
            raise self.missing_data(f"no attribute rows in {ATTR_FILE}")
        files = list(rows)
        _, partition, _ = read_listing(partition_path, report, header=False, width=1)
        split = pd.Series([partition.get(f, [None])[0] for f in files], dtype=object)
        report.skip(f"image not in {PARTITION_FILE} (row dropped)", int(split.isna().sum()))
        bad_split = split.notna() & ~split.isin(list(PARTITIONS))
        report.skip(f"{PARTITION_FILE}: partition not 0/1/2 (row dropped)", int(bad_split.sum()))
        report.skip(f"{PARTITION_FILE}: image without an attribute row (row dropped)",
                    len(set(partition) - listed))
        df = pd.DataFrame({"path": [str(image_dir / f) for f in files], "file": files,
                           "split": split.map(PARTITIONS)})
        df = drop_missing_files(df[df["split"].notna()], report)

        # Labels parsed after the row checks, so their counts describe the rows returned.
        values = np.array([rows[f] for f in df["file"]], dtype=str).reshape(len(df), len(names))
        bad = ~np.isin(values, ("-1", "1"))
        report.skip(f"{ATTR_FILE}: attribute value not -1/1 (label blanked)", int(bad.sum()))
        attrs = np.where(bad, np.nan, (values == "1").astype(float))
        columns = [n.lower() for n in names]
        for j, column in enumerate(columns):
            df[column] = pd.array(attrs[:, j], dtype="Float64").astype("Int64")
        if "male" in columns:
            df["gender"] = 1 - df["male"]
        if "smiling" in columns:
            df["smile"] = df["smiling"]

        if self.extras:
            for filename, prefix in EXTRA_FILES.items():
                if (self.root / filename).is_file():
                    extra = read_extra(self.root / filename, prefix, list(df["file"]), report)
                    df = df.join(extra, on="file")
        return df.drop(columns=["file"])


def read_listing(
    path: Path, report: SkipReport, header: bool = True, width: int | None = None
) -> tuple[list[str], dict[str, list[str]], set[str]]:
    """``(column names, {image: fields}, every image named)`` of a CelebA list file: with
    ``header``, a count line and a line of column names come first (an image column named
    there is dropped from the names); otherwise the rows have ``width`` fields after the image
    name. Fields are split on runs of whitespace (single/double spaces, tabs, CR). Bad rows
    are counted and skipped."""
    lines = [line for line in path.read_text(encoding="utf-8-sig").splitlines() if line.strip()]
    names: list[str] = []
    declared = None
    if header:
        if len(lines) < 2 or not lines[0].strip().isdecimal():
            raise ValueError(f"{path}: expected a count line and a line of column names first, "
                             f"got {lines[:2]}")
        declared = int(lines[0])
        names = lines[1].split()
        if names and names[0].lower() in IMAGE_COLUMN_NAMES:
            names = names[1:]
        width = len(names)
        lines = lines[2:]
    rows: dict[str, list[str]] = {}
    listed: set[str] = set()
    for line in lines:
        fields = line.split()
        listed.add(fields[0])
        if len(fields) != width + 1:
            report.skip(f"{path.name}: line has too {'few' if len(fields) <= width else 'many'} "
                        f"fields (row dropped)")
        elif fields[0] in rows:
            report.skip(f"{path.name}: image listed twice (row dropped)")
        else:
            rows[fields[0]] = fields[1:]
    if declared is not None and declared > len(lines):
        report.skip(f"{path.name}: fewer rows than its count line says (rows missing)",
                    declared - len(lines))
    return names, rows, listed


def read_extra(path: Path, prefix: str, files: list[str], report: SkipReport) -> pd.DataFrame:
    """An optional CelebA file as numeric columns indexed by image name (``identity`` for
    ``identity_CelebA.txt``, which has no header). A value that is not a number is blanked and
    an image the file does not list gets blanks, both counted."""
    if path.name.startswith("identity"):
        _, rows, _ = read_listing(path, report, header=False, width=1)
        names = ["identity"]
    else:
        names, rows, _ = read_listing(path, report)
    table = pd.DataFrame.from_dict(rows, orient="index", columns=[prefix + n for n in names])
    numbers = table.apply(pd.to_numeric, errors="coerce")
    report.skip(f"{path.name}: value not a number (value blanked)",
                int((numbers.isna() & table.notna()).to_numpy().sum()))
    report.skip(f"{path.name}: image not listed (values missing)",
                len(set(files) - set(rows)))
    if "identity" in numbers:
        numbers["identity"] = numbers["identity"].astype("Int64")
    return numbers
