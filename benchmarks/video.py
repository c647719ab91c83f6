"""Tracked and smoothed video on a synthetic clip with known identities and labels: per-frame
accuracy of smoothed against unsmoothed predictions, identity switches, and frames/s with
``--detect-every 3`` against detection on every frame, measured side by side in one run.

    python -m benchmarks.video --run <run folder> [--frames 240] [--faces 4] [--repeats 3]
        [--threads 1] [--smooth 0.3,0.6,0.8,0.9] [--max-missed 15] [--out results.json]

The clip: faces of the embedded synthetic generator (``render_face``, the training data's
drawing), each with attributes drawn once, moving across a grey 640x360 background on straight
paths that bounce off the edges and cross each other (a face drawn later covers an earlier
one). A face is drawn anew every ``--hold`` frames (new pose, lighting, expression intensity
and individual look for the same attributes, as the training faces vary), scaled up to its
size on screen; the clip is written as MJPG .avi with OpenCV and read back from the file, so
decoding and the coding's artefacts are part of it. The true box of a face is its tile shrunk
by the crop margin (the crop of that box is the tile, as in training).

Accuracy: predictions are paired with the true faces of their frame by IoU (Hungarian, IoU
>= 0.3); per task, the share of paired true faces whose prediction has the true label (age:
the age group holding the true age, and the MAE in years); recall is the share of true faces
paired. Two detectors: MTCNN (the demo's, ``mtcnn`` rows) and the true boxes given on the
same frames (``true`` rows: the tracker and smoother without the detector's misses; a face
covered by another keeps its box). Unsmoothed and smoothed rows are the same tracked run
(smoothing changes no box). Identity switches: per true face, the times its paired track id
changes from one paired frame to the next (a face the detector misses for longer than
``max_missed`` frames and finds again counts as one). Speed: ``annotate_stream`` end to end
with MTCNN (decode, detection, tracking, crops, model, smoothing, drawing, JSON lines), no
video written; each repeat runs both settings in a rotated order, the ratio is taken per
repeat.

A run trained only on synthetic faces knows nothing of real faces: these numbers say how the
tracker and smoother behave, not how good the model is on real video.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import platform
import statistics
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # this checkout's mtlface, not another installed one

import cv2
import numpy as np

TASKS = ("age", "gender", "smile", "emotion", "race")
SIZE = (640, 360)
BACKGROUND = 110
MARGIN = 0.2  # the crop margin of the default face settings: box = tile / (1 + 2 * margin)


@dataclass(frozen=True)
class Identity:
    attrs: dict
    side: int           # tile side in pixels
    start: tuple[float, float]
    speed: tuple[float, float]  # pixels per frame


@dataclass(frozen=True)
class TrueFace:
    identity: int
    box: tuple[float, float, float, float]


def identities(count: int, seed: int) -> list[Identity]:
    from mtlface.data.synthetic import sample_attributes

    rng = np.random.default_rng(seed)
    out = []
    for i in range(count):
        side = int(rng.integers(96, 145))
        # Alternate directions so that paths cross; speeds 2-6 px a frame.
        x = float(rng.uniform(0, SIZE[0] - side))
        y = float(rng.uniform(0, SIZE[1] - side))
        vx = float(rng.uniform(2, 6)) * (1 if i % 2 == 0 else -1)
        vy = float(rng.uniform(-2, 2))
        out.append(Identity(sample_attributes(rng, TASKS), side, (x, y), (vx, vy)))
    return out


def _bounce(p: float, span: float) -> float:
    """Position on a path that reflects at 0 and ``span``."""
    p = p % (2 * span)
    return p if p <= span else 2 * span - p


def write_clip(path: Path, people: list[Identity], frames: int, hold: int, seed: int
               ) -> list[list[TrueFace]]:
    from mtlface.data.synthetic import render_face

    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 25, SIZE)
    truth = []
    tiles: dict[int, np.ndarray] = {}
    for f in range(frames):
        canvas = np.full((SIZE[1], SIZE[0], 3), BACKGROUND, np.uint8)
        faces = []
        for i, person in enumerate(people):
            if f % hold == 0:
                rng = np.random.default_rng([seed, i, f])
                tile = render_face(person.attrs, rng, 64)
                tiles[i] = cv2.resize(tile, (person.side, person.side),
                                      interpolation=cv2.INTER_LINEAR)
            x = round(_bounce(person.start[0] + person.speed[0] * f, SIZE[0] - person.side))
            y = round(_bounce(person.start[1] + person.speed[1] * f, SIZE[1] - person.side))
            canvas[y:y + person.side, x:x + person.side] = tiles[i]
            inner = person.side / (1 + 2 * MARGIN)
            pad = (person.side - inner) / 2
            faces.append(TrueFace(i, (x + pad, y + pad, x + pad + inner, y + pad + inner)))
        writer.write(canvas[..., ::-1].copy())  # RGB -> BGR
        truth.append(faces)
    writer.release()
    return truth


def read_frames(path: Path) -> list[np.ndarray]:
    capture = cv2.VideoCapture(str(path))
    frames = []
    while (got := capture.read())[0]:
        frames.append(cv2.cvtColor(got[1], cv2.COLOR_BGR2RGB))
    capture.release()
    return frames


def track_clip(predictor, frames, detect_every: int, batch: int = 8, truth=None,
               max_missed: int = 15):
    """Every frame's ``TrackedFace`` list, unsmoothed; with ``truth``, the detector is replaced
    by the true boxes (on the same frames it would run on)."""
    from mtlface.data.preprocess.detectors import Face
    from mtlface.predict.stream import FaceStream, TrackingOptions

    detect = None
    if truth is not None:
        given = iter(truth[::detect_every])

        def detect(images):
            return [[Face(t.box, 1.0) for t in next(given)] for _ in images]

    options = TrackingOptions(detect_every=detect_every, smooth=0.0, max_missed=max_missed)
    stream = FaceStream(predictor, options, detect)
    out = []
    for i in range(0, len(frames), batch):
        out += stream.process(frames[i:i + batch])
    return out


def smoothed(tracked, keep: float, tasks):
    from dataclasses import replace

    from mtlface.predict.smoothing import PredictionSmoother

    smoother = PredictionSmoother(keep, tasks)
    return [[replace(t, face=replace(t.face, tasks=smoother.smooth(t.track, t.face.tasks)))
             for t in frame] for frame in tracked]


def pair(truth: list[TrueFace], tracked) -> dict[int, object]:
    """True identity -> its tracked face in one frame."""
    from mtlface.predict.tracking import match

    pairs = match([t.box for t in truth], [p.face.box for p in tracked], 0.3)
    return {truth[i].identity: tracked[j] for i, j in pairs}


def score(truth, tracked, people, tasks) -> dict:
    """Per-task accuracy over the true faces found (paired with a prediction), age MAE,
    recall (the share of true faces found), identity switches."""
    import torch

    age_bins = tasks["age"].bins
    right = {t: 0 for t in TASKS}
    errors, total, found = [], 0, 0
    last_track: dict[int, int] = {}
    switches = 0
    for faces, frame in zip(truth, tracked):
        paired = pair(faces, frame)
        for face in faces:
            total += 1
            got = paired.get(face.identity)
            if got is None:
                continue
            found += 1
            if face.identity in last_track and last_track[face.identity] != got.track:
                switches += 1
            last_track[face.identity] = got.track
            attrs = people[face.identity].attrs
            for task in TASKS:
                pred = got.face.tasks[task]
                if task == "age":
                    true_group = int(age_bins.bucketize(torch.tensor([float(attrs["age"])])))
                    right[task] += pred.index == true_group
                    errors.append(abs(pred.years - attrs["age"]))
                else:
                    right[task] += pred.index == int(attrs[task])
    acc = {t: right[t] / max(1, found) for t in TASKS}
    return {"accuracy": acc, "mean": statistics.fmean(acc.values()),
            "age_mae": statistics.fmean(errors) if errors else float("nan"),
            "recall": found / total, "switches": switches,
            "tracks": len({t.track for frame in tracked for t in frame})}


def time_stream(predictor, clip: Path, detect_every: int, keep: float, batch: int) -> float:
    from mtlface.predict import video
    from mtlface.predict.stream import TrackingOptions

    sink = io.StringIO()
    stats = video.annotate_stream(predictor, video.open_video(clip), None, False, batch=batch,
                                  json_lines=sink,
                                  options=TrackingOptions(detect_every=detect_every, smooth=keep))
    return stats.fps


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--run", required=True, help="a train.py run folder")
    p.add_argument("--frames", type=int, default=240)
    p.add_argument("--faces", type=int, default=4)
    p.add_argument("--hold", type=int, default=4, help="frames between new drawings of a face")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--smooth", default="0.3,0.6,0.8,0.9",
                   help="smoothing weights to score (comma-separated); 0 is always scored")
    p.add_argument("--detect-every", type=int, default=3)
    p.add_argument("--max-missed", type=int, default=15,
                   help="the tracker's, in frames (the demo's default 15)")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--threads", type=int, default=1, help="torch's and OpenCV's threads")
    p.add_argument("--out", help="also write the results as JSON here")
    args = p.parse_args(argv)

    import torch

    from mtlface.predict import Predictor
    from mtlface.predict.smoothing import VIDEO_DEFAULT

    torch.set_num_threads(args.threads)
    cv2.setNumThreads(args.threads)
    predictor = Predictor.from_run(args.run)
    tasks = predictor.tasks
    keeps = sorted({0.0, VIDEO_DEFAULT, *(float(k) for k in args.smooth.split(",") if k)})
    people = identities(args.faces, args.seed)
    load_start = os.getloadavg()[0]
    with tempfile.TemporaryDirectory() as tmp:
        clip = Path(tmp) / "clip.avi"
        truth = write_clip(clip, people, args.frames, args.hold, args.seed)
        frames = read_frames(clip)
        print(f"clip: {len(frames)} frames {SIZE[0]}x{SIZE[1]}, {args.faces} faces, a new "
              f"drawing every {args.hold} frames; run {args.run}; {args.threads} thread(s); "
              f"{os.cpu_count()} CPU cores, load {os.getloadavg()[0]:.1f}", file=sys.stderr)
        rows = []
        for boxes in ("mtcnn", "true"):
            for every in sorted({1, args.detect_every}):
                tracked = track_clip(predictor, frames, every, args.batch,
                                     truth if boxes == "true" else None, args.max_missed)
                for keep in keeps:
                    result = score(truth, smoothed(tracked, keep, tasks), people, tasks)
                    rows.append({"boxes": boxes, "detect_every": every, "smooth": keep,
                                 **result})
        speed: dict[int, list[float]] = {1: [], args.detect_every: []}
        settings = sorted(speed)
        for r in range(args.repeats):
            for every in settings[r % 2:] + settings[:r % 2]:  # rotated order
                speed[every].append(time_stream(predictor, clip, every, VIDEO_DEFAULT,
                                                args.batch))
    ratios = [a / b for a, b in zip(speed[args.detect_every], speed[1])]
    report = {"frames": len(frames), "faces": args.faces, "hold": args.hold,
              "threads": args.threads, "cpu_count": os.cpu_count(),
              "machine": platform.processor() or platform.machine(),
              "load": [load_start, os.getloadavg()[0]], "rows": rows,
              "fps": {str(k): v for k, v in speed.items()}, "ratio": ratios}
    print_table(report, args.detect_every)
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps(report, indent=1))
    return 0


def print_table(report: dict, every: int) -> None:
    print("| boxes | detect every | smooth | " + " | ".join(TASKS) + " | mean | age MAE | recall | "
          "tracks | switches |")
    print("|---" * (len(TASKS) + 8) + "|")
    for r in report["rows"]:
        acc = " | ".join(f"{r['accuracy'][t]:.3f}" for t in TASKS)
        print(f"| {r['boxes']} | {r['detect_every']} | {r['smooth']:g} | {acc} | {r['mean']:.3f} | "
              f"{r['age_mae']:.2f} | {r['recall']:.3f} | {r['tracks']} | {r['switches']} |")
    fps1, fpsn = report["fps"]["1"], report["fps"][str(every)]
    print(f"\nload average {report['load'][0]:.1f} at the start, {report['load'][1]:.1f} at the "
          f"end; {report['threads']} thread(s), {report['cpu_count']} CPU cores")
    print(f"frames/s (MTCNN), median of {len(fps1)} (range): every frame "
          f"{statistics.median(fps1):.2f} ({min(fps1):.2f}-{max(fps1):.2f}), every {every} "
          f"frames {statistics.median(fpsn):.2f} ({min(fpsn):.2f}-{max(fpsn):.2f}); ratio "
          f"{statistics.median(report['ratio']):.2f}x ({min(report['ratio']):.2f}-"
          f"{max(report['ratio']):.2f})")


if __name__ == "__main__":
    sys.exit(main())
