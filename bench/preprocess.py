"""Throughput of the preprocessing stage vs a plain per-image facenet-pytorch loop, and the cost
of a fully cached re-run, measured in one run on the same images.

    .venv/bin/python bench/preprocess.py [--images 96] [--workers 2] [--batch 16]

Images: real photos (skimage's astronaut, matplotlib's grace_hopper.jpg) at several sizes,
flipped and shifted, written as JPEGs. Baseline: ``MTCNN()(PIL image)`` per image (what a
script without this stage does; it also crops a 160 px face). Stage: ``PreprocessStage`` with
MTCNN (decode, batched detection, crop, cache) in ``--workers`` processes.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from matplotlib import cbook
from PIL import Image
from skimage import data as skdata

from mtlface.data.preprocess import CropSpec, MTCNNDetector, PreprocessStage, cache_folder
from mtlface.data.readers import CSVManifestReader


def make_images(folder: Path, n: int) -> list[Path]:
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


def plain_loop(paths: list[Path]) -> float:
    from facenet_pytorch import MTCNN

    mtcnn = MTCNN()
    start = time.perf_counter()
    for p in paths:
        mtcnn(Image.open(p).convert("RGB"))
    return time.perf_counter() - start


def stage_run(folder: Path, cache: Path, workers: int, batch: int):
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--images", type=int, default=96)
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--batch", type=int, default=16)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        paths = make_images(folder, args.images)
        baseline = plain_loop(paths)
        first, summary = stage_run(folder, folder / "cache", args.workers, args.batch)
        cached, again = stage_run(folder, folder / "cache", args.workers, args.batch)
    assert summary.complete and again.cached
    n = args.images
    result = {
        "images": n, "cropped": summary.cropped, "workers": args.workers, "batch": args.batch,
        "cpu_threads": torch.get_num_threads(),
        "baseline_loop_s": round(baseline, 3), "baseline_images_per_s": round(n / baseline, 2),
        "stage_s": round(first, 3), "stage_images_per_s": round(n / first, 2),
        "stage_speedup_vs_loop": round(baseline / first, 2),
        "cached_rerun_s": round(cached, 4),
        "cached_rerun_cost_vs_first_run": round(cached / first, 5),
    }
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
