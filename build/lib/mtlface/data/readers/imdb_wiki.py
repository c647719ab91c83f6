"""IMDB-WIKI: ``imdb_crop/imdb.mat`` (struct ``imdb``) and ``wiki_crop/wiki.mat`` (struct
``wiki``), Matlab files of 1xN fields, read with ``scipy.io.loadmat``."""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from datetime import date
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from scipy.io import loadmat

from mtlface.data.readers.base import SeededSplitReader, drop_missing_files
from mtlface.data.skips import SkipReport

# part -> its folder; the .mat file and its struct are named after the part
PARTS = {"imdb": "imdb_crop", "wiki": "wiki_crop"}
BOX = ("box_x1", "box_y1", "box_x2", "box_y2")
COLUMNS = ("path", "age", "gender", "part", "name", "celeb_id", "photo_taken", "face_score",
           "second_face_score", *BOX)


class IMDBWikiReader(SeededSplitReader):
    """Reads the parts listed in ``parts`` into one table (column ``part``).

    age = completed years on 1 July of ``photo_taken`` (the photo is taken mid-year) since the
    Matlab datenum ``dob``. gender is flipped to ours (file: 1 male, 0 female). Filters, applied
    in this order and each counted (a row counts under the first one it fails):
    a ``dob``/``photo_taken`` that is no date; no face (``face_score`` -inf) or a face score
    below ``min_face_score``; a second face scoring above ``max_second_face_score`` (NaN means
    no second face; None disables the filter; the default 0.0 drops any detected second face,
    as the widely used age-gender-estimation scripts do); age outside
    ``[min_age, max_age]``. The split is grouped by ``name`` (the celebrity), so one person
    never crosses splits, not even between IMDb and Wikipedia.
    """

    name = "imdb_wiki"
    title = "IMDB-WIKI"
    download_hint = (
        "Download the faces-only tars imdb_crop.tar and/or wiki_crop.tar from "
        "https://data.vision.ee.ethz.ch/cvl/rrothe/imdb-wiki/ and unpack them here, so the "
        "folder holds imdb_crop/imdb.mat and/or wiki_crop/wiki.mat with their NN/ image "
        "folders."
    )

    def __init__(
        self,
        root: str | os.PathLike,
        parts: Sequence[str] = ("imdb", "wiki"),
        min_face_score: float = 1.0,
        max_second_face_score: float | None = 0.0,
        min_age: float = 0.0,
        max_age: float = 100.0,
        **split_options: Any,
    ) -> None:
        super().__init__(root, **split_options)
        unknown = set(parts) - set(PARTS)
        if unknown or not parts:
            raise ValueError(f"parts must be a non-empty subset of {list(PARTS)}, got {parts}")
        self.parts = list(parts)
        self.min_face_score = min_face_score
        self.max_second_face_score = max_second_face_score
        self.min_age = min_age
        self.max_age = max_age

    def _read(self, report: SkipReport) -> pd.DataFrame:
        mats = {p: self.require(self.root / PARTS[p] / f"{p}.mat") for p in self.parts}
        frames = [self._filter(load_mat(path, part), report) for part, path in mats.items()]
        df = drop_missing_files(pd.concat(frames, ignore_index=True), report)
        report.skip("gender NaN (label missing)", int(df["gender"].isna().sum()))
        df["split"] = self.split(df["name"])
        return df

    def _filter(self, df: pd.DataFrame, report: SkipReport) -> pd.DataFrame:
        keep = np.ones(len(df), dtype=bool)

        def drop(mask: np.ndarray, reason: str) -> None:
            mask = mask & keep
            report.skip(f"{reason} (row dropped)", int(mask.sum()))
            keep[mask] = False

        score = df["face_score"].to_numpy()
        second = df["second_face_score"].to_numpy()
        age = df["age"].to_numpy()
        drop(np.isnan(age), "dob or photo_taken not a valid date")
        drop(np.isneginf(score) & ~(score >= self.min_face_score), "no face found, face_score -inf")
        drop(~(score >= self.min_face_score), f"face_score below {self.min_face_score:g}")
        if self.max_second_face_score is not None:
            drop(second > self.max_second_face_score,  # NaN (no second face) compares False
                 f"second face with score above {self.max_second_face_score:g}")
        drop(~((age >= self.min_age) & (age <= self.max_age)),
             f"age not in [{self.min_age:g}, {self.max_age:g}]")
        return df[keep]


def load_mat(path: Path, part: str) -> pd.DataFrame:
    """One row per entry of the .mat file, gender already in our convention.

    ``loadmat`` returns the struct as a (1, 1) record array: ``mat[part][0, 0][field]`` is a
    (1, N) array; cell fields (``full_path``, ``name``, ``face_location``) hold one array per
    entry (``full_path[0][i][0]`` is the string; an empty name is a size-0 array).
    """
    mat = loadmat(path)
    if part not in mat:
        raise ValueError(f"{path}: no struct {part!r} (found {sorted(mat)})")
    meta = mat[part][0, 0]
    fields = meta.dtype.names

    def numbers(field: str) -> np.ndarray:
        return np.asarray(meta[field], dtype=float).ravel()

    def strings(field: str) -> list[str]:
        return [str(cell.ravel()[0]) if cell.size else "" for cell in meta[field].ravel()]

    gender = numbers("gender")
    df = pd.DataFrame({
        "path": [str(path.parent / p) for p in strings("full_path")],
        "age": [age_mid_year(d, t) for d, t in zip(numbers("dob"), numbers("photo_taken"))],
        # file: 1 male, 0 female, NaN unknown -> ours: 0 male, 1 female (anything else blank)
        "gender": np.select([gender == 1, gender == 0], [0.0, 1.0], np.nan),
        "part": part,
        "name": strings("name"),
        "celeb_id": numbers("celeb_id") if "celeb_id" in fields else np.nan,
        "photo_taken": numbers("photo_taken"),
        "face_score": numbers("face_score"),
        "second_face_score": numbers("second_face_score"),
    })
    boxes = [np.asarray(b, dtype=float).ravel() for b in meta["face_location"].ravel()]
    df[list(BOX)] = np.array([b if b.size == 4 else np.full(4, np.nan) for b in boxes],
                             dtype=float).reshape(-1, 4)
    df["celeb_id"] = df["celeb_id"].astype("Int64")
    return df[list(COLUMNS)]


def age_mid_year(dob: float, photo_taken: float) -> float:
    """Completed years on 1 July of ``photo_taken`` for a Matlab datenum ``dob``
    (datenum 1 = 1 Jan of year 0, hence the 366 days' offset to Python ordinals); NaN if
    either is not a valid date."""
    if not (math.isfinite(dob) and math.isfinite(photo_taken)):
        return math.nan
    ordinal = int(dob) - 366
    if not 1 <= ordinal <= date.max.toordinal():
        return math.nan
    born = date.fromordinal(ordinal)
    return float(int(photo_taken) - born.year - ((born.month, born.day) > (7, 1)))
