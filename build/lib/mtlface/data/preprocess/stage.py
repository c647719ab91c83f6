"""The preprocessing stage: a reader's labels table in, cached crops + ``manifest.csv`` out.

Work is split into chunks of ``batch_size`` images; each worker process decodes a chunk,
detects its faces in one batch, crops and writes them. The main process records the results
in part files as they come back, so an interrupted run (Ctrl-C, kill -9) resumes where it
stopped, and a finished cache is returned at once.
"""

from __future__ import annotations

import json
import logging
import multiprocessing
import os
import shutil
import signal
import sys
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import cv2
import pandas as pd
from tqdm import tqdm

from mtlface.data.manifest import MANIFEST_NAME, write_manifest
from mtlface.data.preprocess.cache import (
    PART_COLUMNS, SUMMARY_NAME, CacheLayout, Shard, atomic_write_bytes, atomic_write_json,
    image_id,
    merge_shards, read_parts, remove_stale_temps, shard_complete, write_part,
)
from mtlface.data.preprocess.crop import CropSpec, crop_face
from mtlface.data.preprocess.detectors import Detector, Skipped
from mtlface.data.preprocess.images import ImageError, Loader, load_rgb
from mtlface.data.readers.base import DatasetReader

log = logging.getLogger(__name__)
EXAMPLES = 5  # example paths kept per skip reason in the summary


@dataclass
class Summary:
    """What a run did; saved as ``summary.json`` (a shard's in ``shards/<i>-of-<N>/``)."""

    source: str = ""
    folder: str = ""
    shard: str = "0-of-1"
    found: int = 0  # images the reader listed (in this shard)
    cropped: int = 0  # crops in the cache
    skipped: dict[str, int] = field(default_factory=dict)  # images skipped here, by reason
    reader_skipped: dict[str, int] = field(default_factory=dict)  # rows the reader skipped
    converted: dict[str, int] = field(default_factory=dict)  # inputs by original mode
    examples: dict[str, list[str]] = field(default_factory=dict)  # skip reason -> some paths
    done_before: int = 0  # results recorded by an earlier, interrupted run
    processed: int = 0  # images this run decoded and cropped (0: nothing to do)
    seconds: float = 0.0
    images_per_s: float = 0.0
    complete: bool = False
    cached: bool = False  # the finished cache was found: no work done

    @classmethod
    def load(cls, path: Path) -> Summary:
        data = json.loads(path.read_text())
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in names})


# ------------------------------------------------------------------------------ workers

_WORKER: dict[str, Any] = {}


def _init_worker(detector: Detector, crop: CropSpec, layout: CacheLayout, loader: Loader | None,
                 device: str, threads: int | None) -> None:
    if threads:
        import torch

        torch.set_num_threads(threads)  # one per process: the processes are the parallelism
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # the main process handles Ctrl-C
    detector.setup(device)
    _WORKER.update(detector=detector, crop=crop, layout=layout, loader=loader)


def _process_chunk(rows: list[dict]) -> list[dict]:
    """Decode, detect (one batch), crop and write the chunk's images; one result per row."""
    detector, spec = _WORKER["detector"], _WORKER["crop"]
    layout: CacheLayout = _WORKER["layout"]
    results: list[dict] = [{} for _ in rows]
    images, kept = [], []
    for i, row in enumerate(rows):
        try:
            decoded = load_rgb(row["path"], _WORKER["loader"])
        except ImageError as exc:
            results[i] = _skip(row, exc.reason)
            continue
        images.append(decoded.image)
        kept.append((i, decoded.converted_from))
    detections = detector.detect(images, [rows[i] for i, _ in kept]) if images else []
    for (i, converted), image, det in zip(kept, images, detections):
        row = rows[i]
        if isinstance(det, Skipped):
            results[i] = _skip(row, det.reason, converted)
            continue
        try:
            face = crop_face(image, det, spec)
            rel = f"crops/{row['id'][:2]}/{row['id']}.jpg"
            ok, buf = cv2.imencode(".jpg", face[..., ::-1],  # cv2 encodes BGR
                                   [cv2.IMWRITE_JPEG_QUALITY, spec.jpeg_quality])
            if not ok:
                raise ImageError("crop could not be encoded")
            (layout.folder / rel).parent.mkdir(parents=True, exist_ok=True)
            atomic_write_bytes(layout.folder / rel, buf.tobytes(), layout.tmp())
        except ImageError as exc:
            results[i] = _skip(row, exc.reason, converted)
            continue
        except (cv2.error, ValueError) as exc:  # a bad box or image the checks did not foresee
            log.warning("cropping %s failed: %s", row["path"], exc)
            results[i] = _skip(row, f"crop failed ({type(exc).__name__})", converted)
            continue
        x1, y1, x2, y2 = det.box
        results[i] = {"id": row["id"], "status": "ok", "reason": "", "crop": rel,
                      "det_score": det.score, "face_x1": x1, "face_y1": y1, "face_x2": x2,
                      "face_y2": y2, "num_faces": det.num_faces, "converted_from": converted}
    return results


def _skip(row: dict, reason: str, converted: str | None = None) -> dict:
    return {"id": row["id"], "status": "skipped", "reason": reason, "converted_from": converted}


# -------------------------------------------------------------------------------- stage


class PreprocessStage:
    """One source, one detector, one crop setting, one shard.

    ``limit`` stops after that many new images (a partial run: resumable, not published).
    ``flush_every``: results per progress file (what a kill -9 can lose, at most).
    """

    def __init__(
        self,
        reader: DatasetReader,
        detector: Detector,
        crop: CropSpec,
        folder: str | os.PathLike,
        settings: dict[str, Any],
        shard: Shard = Shard(),
        num_workers: int = 2,
        batch_size: int = 32,
        device: str = "cpu",
        limit: int | None = None,
        flush_every: int = 512,
        progress: bool = True,
    ) -> None:
        if batch_size < 1 or num_workers < 0 or flush_every < 1:
            raise ValueError(f"need batch_size >= 1, num_workers >= 0, flush_every >= 1; got "
                             f"{batch_size}, {num_workers}, {flush_every}")
        self.reader = reader
        self.detector = detector
        self.crop = crop
        self.layout = CacheLayout(Path(folder))
        self.settings = settings
        self.shard = shard
        self.num_workers = num_workers
        self.batch_size = batch_size
        self.device = device
        self.limit = limit
        self.flush_every = flush_every
        self.progress = progress

    def run(self) -> Summary:
        layout = self.layout
        if layout.manifest.is_file() or shard_complete(layout, self.shard):
            done = layout.summary if layout.manifest.is_file() else \
                layout.shard_dir(self.shard) / SUMMARY_NAME
            summary = Summary.load(done)
            summary.cached, summary.processed, summary.seconds = True, 0, 0.0
            return summary
        start = time.perf_counter()
        table = self._table()
        layout.folder.mkdir(parents=True, exist_ok=True)
        remove_stale_temps(layout)
        atomic_write_json(layout.folder / "settings.json", self.settings, layout.tmp())
        before = read_parts(layout, self.shard)
        before = before[before["id"].isin(table["id"])]
        todo = table[~table["id"].isin(before["id"])]
        if self.limit is not None:
            todo = todo.iloc[: self.limit]
        try:
            new = self._process(todo)
        finally:
            remove_stale_temps(layout)  # our finished workers' (empty) temp folders
            shutil.rmtree(layout.tmp(), ignore_errors=True)
        results = pd.concat([before, new], ignore_index=True) if len(new) else before
        summary = self._summary(table, results, len(before), len(new),
                                time.perf_counter() - start)
        if summary.complete:
            self._publish(table, results, summary)
        else:
            log.info("%s: %d of %d images done; run again to resume", summary.source,
                     len(results), len(table))
        return summary

    def _table(self) -> pd.DataFrame:
        """The reader's rows of this shard, with an ``id`` per image (from its path relative to
        the dataset root, so the same image has the same id on every machine)."""
        table = self.reader.read()
        base = self.reader.root.parent if self.reader.root.is_file() else self.reader.root
        table["orig_path"] = [os.path.relpath(p, base) for p in table["path"]]
        table["id"] = table["orig_path"].map(image_id)
        dup = table["id"].duplicated()
        if dup.any():
            log.warning("%s: %d rows repeat an image path; the first is kept", self.reader.title,
                        int(dup.sum()))
            table.attrs["skipped"] = {**table.attrs.get("skipped", {}),
                                      "image path repeated (row dropped)": int(dup.sum())}
        return table[~dup & self.shard.selects(table["id"])].reset_index(drop=True)

    def _process(self, todo: pd.DataFrame) -> pd.DataFrame:
        columns = [c for c in ("id", "path", *self.detector.columns) if c in todo]
        records = todo[columns].to_dict("records")
        chunks = [records[i: i + self.batch_size] for i in range(0, len(records), self.batch_size)]
        loader = getattr(self.reader, "load_image", None)
        args = (self.detector, self.crop, self.layout, loader, self.device)
        new: list[dict] = []
        buffer: list[dict] = []
        bar = tqdm(total=len(records), unit="img", desc=f"{self.reader.source} {self.shard.tag}",
                   disable=not self.progress or not records, smoothing=0.05)
        stream = self._map(chunks, args)
        try:
            for results in stream:
                buffer += results
                new += results
                bar.update(len(results))
                if len(buffer) >= self.flush_every:
                    write_part(self.layout, self.shard, buffer)
                    buffer = []
        finally:  # on Ctrl-C or an error too: what came back is recorded, the rest redone later
            stream.close()  # stops the workers now
            write_part(self.layout, self.shard, buffer)
            bar.close()
        return pd.DataFrame.from_records(new, columns=list(PART_COLUMNS))

    def _map(self, chunks: list[list[dict]], args: tuple) -> Iterator[list[dict]]:
        if self.num_workers == 0 or len(chunks) <= 1:
            _init_worker(*args, threads=None)
            yield from map(_process_chunk, chunks)
            return
        # fork: workers start at once and share the parsed table (e.g. FER2013's pixels);
        # the main process never runs the detector, so a GPU is first touched in a worker.
        ctx = multiprocessing.get_context("fork" if sys.platform == "linux" else None)
        pool = ctx.Pool(min(self.num_workers, len(chunks)), initializer=_init_worker,
                        initargs=(*args, 1))
        try:
            yield from pool.imap_unordered(_process_chunk, chunks)
            pool.close()
        finally:
            pool.terminate()
            pool.join()

    def _summary(self, table: pd.DataFrame, results: pd.DataFrame, before: int, new: int,
                 seconds: float) -> Summary:
        skipped = results[results["status"] == "skipped"]
        paths = table.set_index("id")["orig_path"]
        examples = {reason: [paths.get(i, i) for i in group["id"].head(EXAMPLES)]
                    for reason, group in skipped.groupby("reason")}
        converted = results["converted_from"].dropna()
        converted = converted[converted != ""]
        return Summary(
            source=self.reader.source, folder=str(self.layout.folder), shard=self.shard.tag,
            found=len(table), cropped=int((results["status"] == "ok").sum()),
            skipped={str(k): int(v)
                     for k, v in skipped["reason"].value_counts().sort_index().items()},
            reader_skipped=dict(table.attrs.get("skipped", {})),
            converted={f"from {k}": int(v)
                       for k, v in converted.value_counts().sort_index().items()},
            examples=examples, done_before=before, processed=new, seconds=round(seconds, 3),
            images_per_s=round(new / seconds, 2) if seconds > 0 else 0.0,
            complete=set(results["id"]) >= set(table["id"]))

    def _publish(self, table: pd.DataFrame, results: pd.DataFrame, summary: Summary) -> None:
        """The shard's manifest (crop paths + labels + detection), then, once every shard is
        finished, the cache's own manifest."""
        ok = results[results["status"] == "ok"].drop(columns=["status", "reason"])
        rows = table.drop(columns=["path"]).merge(ok, on="id", how="inner")
        rows = rows.rename(columns={"crop": "path"})
        shard_dir = self.layout.shard_dir(self.shard)
        write_manifest(rows, shard_dir / MANIFEST_NAME)
        atomic_write_json(shard_dir / SUMMARY_NAME, asdict(summary), self.layout.tmp())
        shutil.rmtree(self.layout.tmp(), ignore_errors=True)
        if all(shard_complete(self.layout, Shard(i, self.shard.count))
               for i in range(self.shard.count)):
            merge_shards(self.layout, self.shard.count)
            shutil.rmtree(self.layout.tmp(), ignore_errors=True)


def log_skips(summary: Summary, logger: logging.Logger = log) -> None:
    for reason, n in summary.skipped.items():
        logger.warning("%s: skipped %d image(s) (%s), e.g. %s", summary.source, n, reason,
                       ", ".join(summary.examples.get(reason, [])[:3]))


