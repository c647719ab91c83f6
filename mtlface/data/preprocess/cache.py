"""The preprocessing cache on disk: its key, its layout, and writes that never leave half a
file (temp + ``os.replace``).

``<cache_dir>/<source>/<key>/`` where ``key`` hashes the source (reader + options, root
included), the detector settings and the crop settings, so any change makes a new folder:

    settings.json             what the key hashes (for people)
    crops/<ab>/<id>.jpg       one crop per kept image; <id> hashes the image's path
    shards/<i>-of-<N>/parts/  progress: one CSV per flushed batch of results (resume reads them)
    shards/<i>-of-<N>/manifest.csv, summary.json    a finished shard
    manifest.csv, summary.json                      every shard finished and merged
    tmp/<pid>/                temp files of a running process (stale ones are removed,
                              and tmp/ itself once empty)

Files get the mode ``open()`` would give them (0o666 less the umask), like the folders.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import tempfile
import time
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from mtlface.data.manifest import MANIFEST_NAME, read_manifest, write_manifest
from mtlface.data.preprocess.crop import CropSpec

CACHE_VERSION = 1  # bump when cropping code changes what a given setting produces
PART_COLUMNS = ("id", "status", "reason", "crop", "det_score", "face_x1", "face_y1", "face_x2",
                "face_y2", "num_faces", "converted_from")
SUMMARY_NAME = "summary.json"
# Detector settings that do not change the crops, left out of the key: MTCNN's backends give
# the same boxes to float rounding (under 1e-4 px on the parity photos), no more than
# facenet-pytorch's own differ between CPUs or torch versions, which no key holds either.
RUNTIME_SETTINGS = ("backend",)


def cache_settings(source: Mapping[str, Any], detector: Mapping[str, Any],
                   crop: CropSpec) -> dict[str, Any]:
    """What the key hashes: plain dicts (resolved configs), the root made absolute."""
    source = dict(source)
    if "root" in source:
        source["root"] = os.path.abspath(os.path.expanduser(str(source["root"])))
    detector = {k: v for k, v in detector.items() if k not in RUNTIME_SETTINGS}
    return {"version": CACHE_VERSION, "source": source, "detector": detector,
            "crop": asdict(crop)}


def settings_key(settings: Mapping[str, Any]) -> str:
    canonical = json.dumps(settings, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()[:12]


def image_id(relative_path: str) -> str:
    """Stable id of an input image: names its crop and assigns its shard."""
    return hashlib.sha1(relative_path.encode()).hexdigest()[:16]


@dataclass(frozen=True)
class Shard:
    """Shard ``index`` of ``count`` (0-based): the images whose id hashes to ``index``."""

    index: int = 0
    count: int = 1

    @classmethod
    def parse(cls, text: str | None) -> Shard:
        """``None`` (everything) or ``"i/N"``."""
        if text is None:
            return cls()
        index, sep, count = str(text).partition("/")
        if not (sep and index.strip().isdecimal() and count.strip().isdecimal()
                and int(index) < int(count)):
            raise ValueError(f"shard must be 'i/N' with 0 <= i < N (e.g. shard=0/4), got {text!r}")
        return cls(int(index), int(count))

    @property
    def tag(self) -> str:
        return f"{self.index}-of-{self.count}"

    def selects(self, ids: pd.Series) -> pd.Series:
        return ids.map(lambda i: int(i, 16) % self.count == self.index)


@dataclass(frozen=True)
class CacheLayout:
    folder: Path

    @property
    def manifest(self) -> Path:
        return self.folder / MANIFEST_NAME

    @property
    def summary(self) -> Path:
        return self.folder / SUMMARY_NAME

    @property
    def crops(self) -> Path:
        return self.folder / "crops"

    def shard_dir(self, shard: Shard) -> Path:
        return self.folder / "shards" / shard.tag

    def parts(self, shard: Shard) -> Path:
        return self.shard_dir(shard) / "parts"

    def tmp(self, pid: int | None = None) -> Path:
        return self.folder / "tmp" / str(os.getpid() if pid is None else pid)


def file_mode() -> int:
    """The mode ``open()`` gives a new file: 0o666 less the umask. Reading the umask means
    setting it; 0o077 meanwhile keeps a file another thread makes private, not open."""
    umask = os.umask(0o077)
    os.umask(umask)
    return 0o666 & ~umask


def share(path: Path) -> Path:
    """Give ``path`` the mode of a file made with ``open()``: temp files are made 0600, which
    would hide a cache from the users its folders let in."""
    os.chmod(path, file_mode())
    return path


def atomic_write_bytes(path: Path, data: bytes, tmp_dir: Path) -> None:
    """Write into ``tmp_dir`` (same file system), then rename: a reader or a killed writer
    never sees half a file."""
    tmp_dir.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=tmp_dir, suffix=".part")
    try:
        os.fchmod(fd, file_mode())  # mkstemp's 0600: see share()
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_json(path: Path, obj: Any, tmp_dir: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(path, (json.dumps(obj, indent=2, default=str) + "\n").encode(), tmp_dir)


def write_part(layout: CacheLayout, shard: Shard, records: list[dict]) -> Path | None:
    """One progress file for a batch of per-image results."""
    if not records:
        return None
    folder = layout.parts(shard)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"part-{time.time_ns()}-{os.getpid()}.csv"
    frame = pd.DataFrame.from_records(records, columns=list(PART_COLUMNS))
    atomic_write_bytes(path, frame.to_csv(index=False).encode(), layout.tmp())
    return path


def read_parts(layout: CacheLayout, shard: Shard) -> pd.DataFrame:
    """Every result recorded so far for ``shard`` (the latest per image)."""
    files = sorted(layout.parts(shard).glob("part-*.csv"))
    frames = [pd.read_csv(f, dtype={"id": str, "status": str, "reason": str, "crop": str,
                                    "converted_from": str}) for f in files]
    if not frames:
        return pd.DataFrame(columns=list(PART_COLUMNS))
    return pd.concat(frames, ignore_index=True).drop_duplicates("id", keep="last")


def remove_stale_temps(layout: CacheLayout) -> int:
    """Delete temp folders left by killed processes (their pid is gone); returns how many."""
    removed = 0
    for path in (layout.folder / "tmp").glob("*"):
        if path.name.isdigit() and int(path.name) != os.getpid() and not _pid_alive(int(path.name)):
            shutil.rmtree(path, ignore_errors=True)
            removed += 1
    return removed


def remove_temps(layout: CacheLayout) -> None:
    """At the end of a run: this process's temp folder, those of finished or killed workers,
    and ``tmp/`` itself once empty (a running process's temp folder keeps it)."""
    remove_stale_temps(layout)
    shutil.rmtree(layout.tmp(), ignore_errors=True)
    with contextlib.suppress(OSError):
        (layout.folder / "tmp").rmdir()


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)  # signal 0 only checks that the process exists
    except ProcessLookupError:
        return False
    except PermissionError:
        pass
    return True


def shard_complete(layout: CacheLayout, shard: Shard) -> bool:
    return (layout.shard_dir(shard) / MANIFEST_NAME).is_file()


def merge_shards(layout: CacheLayout, count: int) -> Path:
    """Concatenate the manifests and summaries of shards ``0..count-1`` into the cache's own
    ``manifest.csv`` and ``summary.json``. Shards run on other machines are merged after their
    folders are copied into this one (same key: same settings)."""
    shards = [Shard(i, count) for i in range(count)]
    missing = [s.tag for s in shards if not shard_complete(layout, s)]
    if missing:
        raise FileNotFoundError(f"cannot merge {layout.folder}: shard(s) {missing} not finished "
                                f"(run them with shard=i/{count}, or copy their shards/ folders "
                                f"here)")
    frames = [read_manifest(layout.shard_dir(s)) for s in shards]
    share(write_manifest(pd.concat(frames, ignore_index=True), layout.manifest))
    summaries = [json.loads((layout.shard_dir(s) / SUMMARY_NAME).read_text()) for s in shards]
    atomic_write_json(layout.summary, merge_summaries(summaries), layout.tmp())
    return layout.manifest


def merge_summaries(summaries: list[dict]) -> dict:
    """Counts add up; seconds add up (machine time); dicts of counts add up per key."""
    merged: dict[str, Any] = {"shards": len(summaries), "shard": f"all {len(summaries)}",
                              "complete": True}
    for s in summaries:
        for key, value in s.items():
            if isinstance(value, bool) or key in ("shard", "shards", "images_per_s"):
                continue
            if isinstance(value, int | float):
                merged[key] = merged.get(key, 0) + value
            elif isinstance(value, dict):
                bucket = merged.setdefault(key, {})
                for k, v in value.items():
                    bucket[k] = bucket.get(k, 0) + v if isinstance(v, int | float) else v
            else:
                merged.setdefault(key, value)
    return merged
