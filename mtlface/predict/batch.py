"""Batch prediction over a folder of photos into one CSV, resumable: each image's rows are
appended (and flushed) as soon as it is done, and a re-run skips the images the CSV lists.

One row per face (``status`` ok), or one row per image without a face (``no face``) or that
cannot be read (``error: <reason>``, also printed on stderr; a broken symbolic link is one),
so every image is accounted for and none is retried."""

from __future__ import annotations

import csv
import io
import os
import sys
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from mtlface.predict.errors import PredictError
from mtlface.predict.predictor import Predictor
from mtlface.predict.results import FacePrediction

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff", ".gif"}
BASE_COLUMNS = ["path", "status", "face", "x1", "y1", "x2", "y2", "score"]


@dataclass
class BatchSummary:
    found: int = 0           # images in the folder
    already_done: int = 0    # listed in the CSV before this run
    processed: int = 0       # predicted now (with or without a face)
    faces: int = 0
    no_face: int = 0
    skipped: Counter = field(default_factory=Counter)  # unreadable images, by reason

    def __str__(self) -> str:
        skipped = sum(self.skipped.values())
        text = (f"{self.found} images: {self.already_done} already in the CSV, {self.processed} "
                f"processed ({self.faces} faces, {self.no_face} without a face), "
                f"{skipped} skipped")
        if self.skipped:
            text += " (" + ", ".join(f"{r}: {n}" for r, n in self.skipped.most_common()) + ")"
        return text


def columns(predictor: Predictor) -> list[str]:
    cols = list(BASE_COLUMNS)
    interval = predictor.calibration.interval if predictor.calibration is not None else None
    for name, task in predictor.tasks.items():
        # age with a calibrated run: "[lo, hi]" in years
        cols += task.csv_columns(interval=interval is not None and interval.task == name)
    return cols


BROKEN_LINK = "broken symbolic link, target missing"


def find_images(folder: Path, exclude: Iterable[Path] = ()) -> list[Path]:
    """Image files under ``folder``, and links to them whose target is missing: those are
    listed too, so that they are counted as skipped rather than silently left out."""
    excluded = {os.path.realpath(p) for p in exclude}  # realpath: no error on a link loop
    return sorted(p for p in folder.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES
                  and (p.is_file() or is_broken_link(p)) and os.path.realpath(p) not in excluded)


def is_broken_link(path: Path) -> bool:
    return path.is_symlink() and not path.exists()


def predict_folder(predictor: Predictor, folder: str | os.PathLike, csv_path: str | os.PathLike,
                   progress: bool = True) -> BatchSummary:
    folder, csv_path = Path(folder), Path(csv_path)
    if not folder.is_dir():
        raise PredictError(f"--dir {folder} is not a folder")
    cols = columns(predictor)
    done = _done_paths(csv_path, cols)
    images = find_images(folder, exclude=[csv_path])
    summary = BatchSummary(found=len(images))
    todo = []
    for path in images:
        if path.relative_to(folder).as_posix() in done:
            summary.already_done += 1
        else:
            todo.append(path)
    csv_path.parent.mkdir(parents=True, exist_ok=True)
    new_file = not csv_path.is_file() or csv_path.stat().st_size == 0
    with open(csv_path, "a", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=cols)
        if new_file:
            writer.writeheader()
        for path in _progress(todo, progress):
            rows = _rows(predictor, path, path.relative_to(folder).as_posix(), summary)
            writer.writerows(rows)
            handle.flush()  # a killed run loses at most the image in flight
    return summary


def _rows(predictor: Predictor, path: Path, name: str, summary: BatchSummary) -> list[dict]:
    try:
        faces = _predict(predictor, path)
    except PredictError as exc:
        reason = str(exc).removeprefix(f"{path}: ")
        summary.skipped[reason] += 1
        _log_skipped(name, reason)
        return [{"path": name, "status": f"error: {reason}"}]
    summary.processed += 1
    if not faces:
        summary.no_face += 1
        return [{"path": name, "status": "no face"}]
    summary.faces += len(faces)
    return [_face_row(name, i, face) for i, face in enumerate(faces)]


def _predict(predictor: Predictor, path: Path) -> list[FacePrediction]:
    if is_broken_link(path):  # the reader would call it a missing file: say why it is missing
        raise PredictError(BROKEN_LINK)
    return predictor.predict(path)


def _log_skipped(name: str, reason: str) -> None:
    from tqdm import tqdm

    tqdm.write(f"skipped {name}: {reason}", file=sys.stderr)  # keeps a progress bar whole


def _face_row(name: str, index: int, face: FacePrediction) -> dict:
    x1, y1, x2, y2 = face.box
    row = {"path": name, "status": "ok", "face": index, "x1": round(x1, 1), "y1": round(y1, 1),
           "x2": round(x2, 1), "y2": round(y2, 1), "score": round(face.score, 4)}
    for task, pred in face.tasks.items():
        row |= pred.csv_cells(task)
    return row


def _done_paths(csv_path: Path, cols: list[str]) -> set[str]:
    """The images an earlier run listed. A run killed mid-write can leave half a row: it is
    cut (that image is done again), so appending starts on a new line."""
    if not csv_path.is_file():
        return set()
    data = csv_path.read_bytes()
    complete = data[: data.rfind(b"\n") + 1]
    if not complete:
        if data:
            raise PredictError(f"{csv_path} is not a predictions CSV (no complete line): "
                               f"use another --csv file")
        return set()
    reader = csv.DictReader(io.StringIO(complete.decode("utf-8", errors="replace")))
    if reader.fieldnames != cols:
        raise PredictError(f"{csv_path} has other columns than this model writes "
                           f"({reader.fieldnames} vs {cols}): use another --csv file")
    done = {row["path"] for row in reader if row.get("path")}
    if complete != data:
        csv_path.write_bytes(complete)
    return done


def _progress(items: list[Path], enabled: bool):
    from tqdm import tqdm

    return tqdm(items, desc="predicting", unit="img", disable=not enabled or not items)
