"""``python demo.py``: face attributes on a photo, a video, the webcam or a folder of photos.
User mistakes (missing run, unreadable file, bad camera) end with one line on stderr and a
non-zero exit code, never a stack trace."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path

import cv2

from mtlface.predict.errors import PredictError
from mtlface.predict.predictor import BACKENDS, Predictor
from mtlface.predict.runs import newest_run

EXAMPLES = """examples:
  python demo.py -i photo.jpg -o annotated.jpg --json faces.jsonl
  python demo.py -i photo.jpg --json        # one JSON object per face on stdout (JSON Lines)
  python demo.py -v clip.mp4 -o annotated.mp4 --batch 16
  python demo.py                      # webcam 0 (a window needs opencv-python, not -headless)
  python demo.py --camera 1 -o webcam.mp4
  python demo.py --dir photos/ --csv predictions.csv    # resumable: re-run to continue
  python demo.py --run outputs/runs/<date>_<time> -i photo.jpg   (default: the newest run)
"""


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="demo.py", epilog=EXAMPLES,
                                formatter_class=argparse.RawDescriptionHelpFormatter,
                                description="Predict age, gender, smile, emotion and race of "
                                            "every face with a trained run.")
    mode = p.add_mutually_exclusive_group()
    mode.add_argument("-i", "--image", help="a photo")
    mode.add_argument("-v", "--video", help="a video file (write it with -o, show it with --show)")
    mode.add_argument("--dir", help="a folder of photos (recursive), predictions into --csv")
    mode.add_argument("--camera", type=int, metavar="N", help="webcam index (the default mode: 0)")
    p.add_argument("-o", "--output", help="annotated image (-i) or video (-v, webcam)")
    p.add_argument("--json", nargs="?", const="-", metavar="PATH",
                   help="-i: one JSON object per face (JSON Lines), to PATH or stdout")
    p.add_argument("--csv", help="--dir: the predictions CSV (rows already in it are skipped)")
    p.add_argument("--show", action="store_true", help="-v: also show the frames in a window")
    p.add_argument("--run", help="training run folder (default: the newest under outputs/runs)")
    p.add_argument("--backend", choices=BACKENDS, default="torch",
                   help="torch (checkpoint) or a model exported with `python -m mtlface.export`")
    p.add_argument("--device", default="cpu")
    p.add_argument("--min-score", type=float, help="detector: smallest face score kept")
    p.add_argument("--max-frames", type=int, help="video/webcam: stop after N frames")
    p.add_argument("--batch", type=int, metavar="N",
                   help="video/webcam: frames per detection and model batch (default: 8 for "
                        "-v, 1 for the webcam, which shows each frame as soon as it is read)")
    p.add_argument("--no-progress", action="store_true", help="--dir: no progress bar")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.csv and not args.dir:
        parser.error("--csv goes with --dir")
    if args.dir and not args.csv:
        parser.error("--dir needs --csv predictions.csv")
    if args.json and not args.image:
        parser.error("--json goes with -i")
    for name in ("batch", "max_frames"):
        if getattr(args, name) is not None and getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be at least 1")
    try:
        return _run(args)
    except PredictError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1


def _run(args: argparse.Namespace) -> int:
    capture = None
    if args.image and not Path(args.image).is_file():
        raise PredictError(f"image {args.image}: no such file")
    if args.dir and not Path(args.dir).is_dir():
        raise PredictError(f"--dir {args.dir}: no such folder")
    from mtlface.predict import video

    if args.video:
        if not args.output and not args.show:
            raise PredictError("-v needs -o annotated.mp4 (or --show)")
        if args.show and not video.gui_available():
            raise PredictError("--show: this OpenCV build cannot open windows "
                               "(opencv-python-headless): write the video with -o instead")
        capture = video.open_video(args.video)
    elif not args.image and not args.dir:  # webcam: fail on a bad index before loading a model
        capture = video.open_camera(args.camera or 0)
        if not args.output and not video.gui_available():
            capture.release()
            raise PredictError("this OpenCV build cannot open windows (opencv-python-headless): "
                               "record the webcam with -o webcam.mp4")
    try:
        predictor = _predictor(args)
    except PredictError:
        if capture is not None:
            capture.release()
        raise
    if args.image:
        return _image(predictor, args)
    if args.dir:
        from mtlface.predict.batch import predict_folder

        summary = predict_folder(predictor, args.dir, args.csv, progress=not args.no_progress)
        print(summary)
        print(f"predictions: {args.csv}")
        return 0
    show = args.show if args.video else video.gui_available()
    batch = args.batch or (8 if args.video else 1)
    stats = video.annotate_stream(predictor, capture, args.output, show, args.max_frames, batch)
    print(stats)
    if args.output:
        print(f"annotated video: {args.output}")
    if stats.faces == 0:
        print(f"no face found in any of the {stats.frames} frames", file=sys.stderr)
        return 1
    return 0


def _check_device(device: str) -> None:
    import torch

    try:
        kind = torch.device(device).type
    except (RuntimeError, ValueError):
        raise PredictError(f"--device {device}: not a device (e.g. cpu, cuda, cuda:1)") from None
    if kind == "cuda" and not torch.cuda.is_available():
        raise PredictError(f"--device {device}: no CUDA GPU here (use --device cpu)")


def _predictor(args: argparse.Namespace) -> Predictor:
    _check_device(args.device)
    run_dir = Path(args.run) if args.run else newest_run()
    detector = {"min_score": args.min_score} if args.min_score is not None else None
    predictor = Predictor.from_run(run_dir, device=args.device, backend=args.backend,
                                   detector=detector)
    print(f"model: {run_dir} {predictor}", file=sys.stderr)
    return predictor


def _image(predictor: Predictor, args: argparse.Namespace) -> int:
    from mtlface.predict.draw import caption, draw_faces
    from mtlface.predict.faces import to_rgb

    rgb = to_rgb(args.image)
    faces = predictor.predict(rgb)
    say = sys.stderr if args.json == "-" else sys.stdout  # keep stdout pure JSON
    for i, face in enumerate(faces):
        box = ", ".join(f"{v:.0f}" for v in face.box)
        labels = "; ".join(caption(n, p) for n, p in face.tasks.items())
        print(f"face {i} [{box}] score {face.score:.3f}: {labels}", file=say)
    if args.output:
        Path(args.output).parent.mkdir(parents=True, exist_ok=True)
        annotated = draw_faces(cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), faces)
        try:
            written = cv2.imwrite(args.output, annotated)
        except cv2.error:
            written = False
        if not written:
            raise PredictError(f"-o {args.output}: cannot write an image there (use .jpg/.png)")
        print(f"annotated image: {args.output}", file=say)
    if args.json:
        lines = "".join(json.dumps({"image": str(args.image), "face": i, **face.to_dict()}) + "\n"
                        for i, face in enumerate(faces))
        if args.json == "-":
            print(lines, end="")
        else:
            Path(args.json).parent.mkdir(parents=True, exist_ok=True)
            Path(args.json).write_text(lines)
            print(f"predictions: {args.json}", file=say)
    if not faces:  # the annotated copy (-o) is still written: a batch of outputs stays whole
        print(f"no face found in {args.image}", file=sys.stderr)
        return 1
    return 0
