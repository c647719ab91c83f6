"""Part 3, preprocessing: throughput of the preprocessing stage vs a plain per-image
facenet-pytorch loop, and the cost of a fully cached re-run, measured in one run on the same
images.

    .venv/bin/python -m benchmarks.preprocess [--images 32] [--workers 1] [--batch 16] [--repeats 1]

Images: real photos (skimage's astronaut, matplotlib's grace_hopper.jpg) at several sizes,
flipped and shifted, written as JPEGs. Baseline: ``MTCNN()(PIL image)`` per image (what a
script without this stage does; it also crops a 160 px face). Stage: ``PreprocessStage`` with
MTCNN (``detector.backend`` default: onnx; decode, batched detection, crop, cache) in
``--workers`` processes of one thread each (default 1: one thread each side, as the loop runs
at ``--threads 1``), into a fresh cache folder each repeat; the cached re-run runs it again on the newest complete cache. The three
take turns each repeat (wall clock: the stage works in other processes).
"""

from __future__ import annotations

import argparse
import itertools
import json
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from benchmarks.table import Row
from benchmarks.timing import Timing, interleaved, using_clock
from mtlface.data.preprocess import CropSpec, MTCNNDetector, PreprocessStage, cache_folder
from mtlface.data.readers import CSVManifestReader

TARGET = 3.0


def make_images(folder: Path, n: int) -> list[Path]:
    from matplotlib import cbook
    from skimage import data as skdata  # a dev dependency: only the benchmark needs it

    with cbook.get_sample_data("grace_hopper.jpg") as f:
        hopper = Image.open(f).convert("RGB")
    bases = [Image.fromarray(skdata.astronaut()), hopper]
    rng = np.random.default_rng(0)
    paths = []
    for i in range(n):
        img = bases[i % 2]
        scale = rng.uniform(0.6, 1.6)
        img = img.resize((round(img.width * scale), round(img.height * scale)))
        if i % 3 == 0:
            img = img.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
        path = folder / f"img{i:04d}.jpg"
        img.save(path, quality=92)
        paths.append(path)
    (folder / "labels.csv").write_text("path,age\n" + "".join(f"{p.name},30\n" for p in paths))
    return paths


def plain_loop(mtcnn, paths: list[Path]) -> None:
    for p in paths:
        mtcnn(Image.open(p).convert("RGB"))


def stage_run(folder: Path, cache: Path, workers: int, batch: int):
    """(seconds of ``stage.run()``, its summary); the stage's construction is not timed."""
    detector_cfg = {"_target_": "mtlface.data.preprocess.MTCNNDetector"}
    source_cfg = {"_target_": "mtlface.data.readers.CSVManifestReader",
                  "root": str(folder / "labels.csv")}
    crop = CropSpec()
    out, settings = cache_folder(cache, source_cfg, detector_cfg, crop)
    stage = PreprocessStage(CSVManifestReader(folder / "labels.csv"), MTCNNDetector(), crop, out,
                            settings, num_workers=workers, batch_size=batch, progress=False)
    start = time.perf_counter()
    summary = stage.run()
    return time.perf_counter() - start, summary


@dataclass(frozen=True)
class Settings:
    images: int = 32
    workers: int = 1  # one single-threaded worker: one thread each side
    batch: int = 16
    repeats: int = 1


QUICK = Settings(images=4, workers=1, batch=4, repeats=1)


def measure(settings: Settings) -> tuple[dict[str, Timing], int]:
    """Timings of the plain loop, the stage's first run and its cached re-run (each repeat
    side by side), and how many faces the stage cropped."""
    from facenet_pytorch import MTCNN

    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        paths = make_images(folder, settings.images)
        mtcnn = MTCNN()
        caches = (folder / f"cache{i}" for i in itertools.count())
        last: dict = {}

        def first_run() -> float:
            last["cache"] = next(caches)
            seconds, last["summary"] = stage_run(folder, last["cache"], settings.workers,
                                                 settings.batch)
            return seconds

        def cached_run() -> float:
            seconds, last["again"] = stage_run(folder, last["cache"], settings.workers,
                                               settings.batch)
            return seconds

        with using_clock("wall"):
            t = interleaved({"loop": lambda: plain_loop(mtcnn, paths), "stage": first_run,
                             "cached": cached_run},
                            repeats=settings.repeats, warmup=0, items=settings.images)
    summary, again = last["summary"], last["again"]
    if not (summary.complete and again.cached):
        raise RuntimeError(f"preprocessing did not finish or was not cached: {summary}, {again}")
    return t, summary.cropped


def summary(t: dict[str, Timing], cropped: int, settings: Settings) -> dict:
    """The figures as ``benchmarks/preprocess.py`` prints them."""
    n = settings.images
    baseline, first, cached = (t[k].median for k in ("loop", "stage", "cached"))
    return {
        "images": n, "cropped": cropped, "workers": settings.workers,
        "batch": settings.batch, "repeats": settings.repeats,
        "cpu_threads": torch.get_num_threads(),
        "baseline_loop_s": round(baseline, 3), "baseline_images_per_s": round(n / baseline, 2),
        "stage_s": round(first, 3), "stage_images_per_s": round(n / first, 2),
        "stage_speedup_vs_loop": round(baseline / first, 2),
        "cached_rerun_s": round(cached, 4),
        "cached_rerun_cost_vs_first_run": round(cached / first, 5),
    }


def run(settings: Settings = Settings()) -> list[Row]:
    t, _ = measure(settings)
    case = (f"{settings.images} photos of 300-820 px, {settings.workers} workers, "
            f"batch {settings.batch}")
    costs = [c / f for c, f in zip(t["cached"].seconds, t["stage"].seconds)]
    return [
        Row.rates("preprocess", case, "MTCNN stage, images/s", t["stage"],
                  "plain per-image facenet-pytorch MTCNN loop, images/s", t["loop"],
                  at_least=TARGET),
        Row("preprocess", case, "fully cached re-run, s", t["cached"].median, "first run, s",
            t["stage"].median, (min(costs), max(costs))),
    ]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--images", type=int, default=Settings.images)
    parser.add_argument("--workers", type=int, default=Settings.workers)
    parser.add_argument("--batch", type=int, default=Settings.batch)
    parser.add_argument("--repeats", type=int, default=Settings.repeats)
    args = parser.parse_args(argv)
    settings = Settings(args.images, args.workers, args.batch, args.repeats)
    print(json.dumps(summary(*measure(settings), settings), indent=2))


if __name__ == "__main__":
    main()
