"""FER2013: one ``fer2013.csv`` with ``emotion,pixels,Usage``; the images are the pixels."""

from __future__ import annotations

import functools
import os
from pathlib import Path

import cv2
import numpy as np
import pandas as pd

from mtlface.data.readers.base import DatasetReader, absolute, read_table
from mtlface.data.skips import SkipReport

SIZE = 48
USAGE = {"Training": "train", "PublicTest": "val", "PrivateTest": "test"}
CSV_NAME = "fer2013.csv"


class FER2013Reader(DatasetReader):
    """Emotion in FER2013 order (the dataset's own), split by ``Usage``: Training -> train,
    PublicTest -> val, PrivateTest -> test. Rows whose pixels are not 2,304 grey values in
    0..255, whose emotion is not 0..6 or whose Usage is unknown are skipped and counted.

    Paths. The images are not files, so ``path`` is ``<absolute csv path>#<row>``, ``<row>``
    counting the CSV's data rows from 0 (as ``pandas.read_csv`` does), and
    ``FER2013Reader.load_image(path)`` returns that row as a 48x48 uint8 array. With
    ``export_dir`` set, ``read`` also writes each kept row as ``<export_dir>/<row>.png`` (a
    file already there is reused) and ``path`` names those PNGs, so every tool that expects
    image files (preprocessing, DataModule, viewers) works unchanged.
    """

    name = "fer2013"
    title = "FER2013"
    download_hint = (
        "Download fer2013.csv (Kaggle 'Challenges in Representation Learning: Facial "
        "Expression Recognition Challenge', fer2013.tar.gz) and put it in this folder."
    )

    def __init__(
        self, root: str | os.PathLike, export_dir: str | os.PathLike | None = None,
        source: str | None = None,
    ) -> None:
        super().__init__(root, source)
        self.export_dir = None if export_dir is None else absolute(export_dir)

    def _read(self, report: SkipReport) -> pd.DataFrame:
        csv_path = self.require(self.root / CSV_NAME)
        df, images, skipped = parse_csv(str(csv_path), csv_path.stat().st_mtime_ns)
        report.update(skipped)
        df = df.copy()  # the parse is cached: never hand out its frame
        if self.export_dir is not None:
            self.export_dir.mkdir(parents=True, exist_ok=True)
            paths = [self.export_dir / f"{row}.png" for row in df["row"]]
            for row, png in zip(df["row"], paths):
                if not png.is_file() and not cv2.imwrite(str(png), images[row]):
                    raise OSError(f"could not write {png}")
            df["path"] = [str(p) for p in paths]
        return df

    @staticmethod
    def load_image(path: str) -> np.ndarray:
        """The 48x48 uint8 image of ``<csv path>#<row>`` (a ``path`` that ``read`` returned
        without ``export_dir``). The CSV is decoded once and cached."""
        csv_path, _, row = str(path).rpartition("#")
        if not csv_path or not row.isdecimal():
            raise ValueError(f"not a FER2013 row reference '<csv path>#<row>': {path!r}")
        _, images, _ = parse_csv(csv_path, Path(csv_path).stat().st_mtime_ns)
        if int(row) not in images:
            raise KeyError(f"{path}: no such row, or the row was skipped as malformed")
        return images[int(row)].copy()  # the cache must not be edited through the result


@functools.lru_cache(maxsize=1)  # keyed on mtime too, so an edited CSV is parsed again
def parse_csv(
    csv_path: str, mtime_ns: int
) -> tuple[pd.DataFrame, dict[int, np.ndarray], SkipReport]:
    """(rows with ``path`` = ``csv#row``, ``row``, ``emotion``, ``split``; images by row;
    skip counts). Streams the file, so only the decoded images (35,887 x 2,304 bytes) stay."""
    report = SkipReport()
    records, images = [], {}
    for row, cells in read_table(Path(csv_path), ",", ("emotion", "pixels", "Usage"), report):
        image = decode_pixels(cells["pixels"])
        if image is None:
            report.skip(f"pixels not {SIZE * SIZE} values in 0..255 (row dropped)")
        elif cells["emotion"] not in {str(i) for i in range(7)}:
            report.skip("emotion not 0..6 (row dropped)")
        elif cells["Usage"] not in USAGE:
            report.skip(f"Usage not one of {'/'.join(USAGE)} (row dropped)")
        else:
            images[row] = image
            records.append({"path": f"{csv_path}#{row}", "row": row,
                            "emotion": int(cells["emotion"]), "split": USAGE[cells["Usage"]]})
    df = pd.DataFrame.from_records(records, columns=["path", "row", "emotion", "split"])
    return df, images, report


def decode_pixels(text: str) -> np.ndarray | None:
    """48x48 uint8 from space-separated grey values, or None if malformed."""
    try:
        values = np.array(text.split(), dtype=np.int64)
    except ValueError:
        return None
    if values.size != SIZE * SIZE or values.min() < 0 or values.max() > 255:
        return None
    return values.astype(np.uint8).reshape(SIZE, SIZE)
