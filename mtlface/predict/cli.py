"""``python demo.py``: face attributes on a photo, a video, the webcam or a folder of photos.
User mistakes (missing run, unreadable file, bad camera, unwritable output) end with one line
``error: ...`` on stderr and exit code 2 (an argument) or 1 (anything else), never a stack
trace; ``--debug`` shows it."""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import NoReturn, TextIO

import cv2

from mtlface.config import key_values_as_flags
from mtlface.errors import CONFIG_EXIT, DEBUG_ENV, ConfigError, check_writable
from mtlface.predict import video
from mtlface.predict.backends import check_device
from mtlface.predict.errors import PredictError, exit_code_of
from mtlface.predict.predictor import BACKENDS, Predictor
from mtlface.predict.runs import newest_run, runs_root
from mtlface.predict.smoothing import VIDEO_DEFAULT
from mtlface.predict.stream import TrackingOptions

EXAMPLES = """examples:
  python demo.py -i photo.jpg -o annotated.jpg --json faces.jsonl
  python demo.py -i photo.jpg --json        # one JSON object per face on stdout (JSON Lines)
  python demo.py -v clip.mp4 -o annotated.mp4 --batch 16
  python demo.py -v clip.mp4 --json faces.jsonl --detect-every 3   # a line per face per frame
  python demo.py                      # webcam 0 (a window needs opencv-python, not -headless)
  python demo.py --camera 1 -o webcam.mp4
  python demo.py --dir photos/ --csv predictions.csv    # resumable: re-run to continue
  python demo.py --run outputs/runs/<date>_<time> -i photo.jpg
                                    (default: the newest finished run under outputs/runs)
"""


class OneLineParser(argparse.ArgumentParser):
    """Argument mistakes end as every other user mistake does: one ``error:`` line, exit 2
    (argparse's default also prints the whole usage)."""

    def error(self, message: str) -> NoReturn:
        self.exit(CONFIG_EXIT, f"error: {message}; see python {self.prog} --help\n")


def probability(text: str) -> float:
    """``--min-score``: the detector's face scores are probabilities."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not 0 <= value <= 1:  # also refuses nan
        raise argparse.ArgumentTypeError(f"must be between 0 and 1 (the detector's face "
                                         f"probability), got {text}")
    return value


def fraction(text: str) -> float:
    """``--smooth``: a share of the running average, 0 (off) up to but not including 1."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not 0 <= value < 1:  # also refuses nan
        raise argparse.ArgumentTypeError(f"must be at least 0 (off) and below 1 (1 would never "
                                         f"change), got {text}")
    return value


def build_parser() -> argparse.ArgumentParser:
    p = OneLineParser(prog="demo.py", epilog=EXAMPLES,
                      formatter_class=argparse.RawDescriptionHelpFormatter,
                      description="Predict age, gender, smile, emotion and race of every face "
                                  "with a trained run.")
    mode = p.add_mutually_exclusive_group()
    mode.add_argument("-i", "--image", help="a photo")
    mode.add_argument("-v", "--video", help="a video file (write it with -o, show it with --show)")
    mode.add_argument("--dir", help="a folder of photos (recursive), predictions into --csv")
    mode.add_argument("--camera", type=int, metavar="N", help="webcam index (the default mode: 0)")
    p.add_argument("-o", "--output", help="annotated image (-i) or video (-v, webcam)")
    p.add_argument("--json", nargs="?", const="-", metavar="PATH",
                   help="one JSON object per face (JSON Lines; -v and webcam: per face per "
                        "frame, with frame and track), to PATH or stdout")
    p.add_argument("--csv", help="--dir: the predictions CSV (rows already in it are skipped)")
    p.add_argument("--show", action="store_true", help="-v: also show the frames in a window")
    p.add_argument("--run", help="training run folder (default: the newest finished run under "
                                 "outputs/runs: one with a best checkpoint and results.json)")
    p.add_argument("--backend", choices=BACKENDS, default="torch",
                   help="torch (checkpoint) or a model exported with `python -m mtlface.export`")
    p.add_argument("--device", default="cpu")
    p.add_argument("--min-score", type=probability, metavar="P",
                   help="detector: smallest face probability kept (0 to 1)")
    p.add_argument("--max-frames", type=int, help="video/webcam: stop after N frames")
    p.add_argument("--batch", type=int, metavar="N",
                   help="video/webcam: frames per detection and model batch (default: 8 for "
                        "-v, 1 for the webcam, which shows each frame as soon as it is read)")
    p.add_argument("--smooth", type=fraction, metavar="A",
                   help=f"video/webcam: share of each face's running average of probabilities "
                        f"and age kept per frame, 0 (off) to below 1 (default "
                        f"{VIDEO_DEFAULT})")
    p.add_argument("--detect-every", type=int, metavar="N", default=1,
                   help="video/webcam: detect faces on every N-th frame only; the tracker "
                        "carries the boxes between (default 1: every frame)")
    p.add_argument("--track-iou", type=probability, metavar="T", default=0.3,
                   help="video/webcam: smallest box overlap (IoU) that continues a face's "
                        "track (default 0.3)")
    p.add_argument("--max-missed", type=int, metavar="N", default=15,
                   help="video/webcam: a face's track ends N frames after its last detection "
                        "(default 15); found again later, it starts a new track")
    p.add_argument("--no-progress", action="store_true", help="--dir: no progress bar")
    p.add_argument("--debug", action="store_true",
                   help="show the traceback of an error instead of its one-line message")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parser.parse_args(key_values_as_flags(argv, parser))
    _check_combinations(parser, args)
    if args.debug:
        os.environ[DEBUG_ENV] = "1"
    return exit_code_of(lambda: _run(args))


def _check_combinations(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    if args.csv and not args.dir:
        parser.error("--csv goes with --dir")
    if args.dir and not args.csv:
        parser.error("--dir needs --csv predictions.csv")
    if args.json and args.dir:
        parser.error("--json goes with -i, -v or the webcam; --dir writes --csv")
    if args.image or args.dir:
        for flag, value, default in (("--smooth", args.smooth, None),
                                     ("--detect-every", args.detect_every, 1),
                                     ("--track-iou", args.track_iou, 0.3),
                                     ("--max-missed", args.max_missed, 15)):
            if value != default:
                parser.error(f"{flag} goes with -v or the webcam (a still image has no "
                             f"frames to follow)")
    if args.output and args.dir:
        parser.error("-o goes with -i, -v or the webcam; --dir writes only --csv")
    for name in ("batch", "max_frames", "detect_every"):
        if getattr(args, name) is not None and getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be at least 1")
    if args.max_missed < 0:
        parser.error("--max-missed must be 0 or more")
    if args.track_iou == 0:
        parser.error("--track-iou must be above 0 (0 would join any two boxes)")


def _run(args: argparse.Namespace) -> int:
    # Every check that needs no model comes first: a mistake costs no model load or work.
    _check_inputs(args)
    _check_outputs(args)
    check_device(args.device, "--device {}")
    capture = _open_capture(args)
    try:
        predictor = _predictor(args)
    except BaseException:
        if capture is not None:
            capture.release()
        raise
    if args.image:
        return _image(predictor, args)
    if args.dir:
        return _folder(predictor, args)
    return _stream(predictor, capture, args)


def _check_inputs(args: argparse.Namespace) -> None:
    if args.image and not Path(args.image).is_file():
        raise PredictError(f"image {args.image}: no such file; pass a photo with -i")
    if args.dir and not Path(args.dir).is_dir():
        raise PredictError(f"--dir {args.dir}: no such folder; pass a folder of photos")
    if args.video and not (args.output or args.show or args.json):
        raise ConfigError("-v needs somewhere to put the results; pass -o annotated.mp4, "
                          "--json faces.jsonl or --show")


def _check_outputs(args: argparse.Namespace) -> None:
    """Each file the command will write can be written, before the model is loaded."""
    if args.output:
        what = "annotated image" if args.image else "annotated video"
        check_writable(args.output, what, "-o")
        _check_output_type(args.output, video_output=not args.image)
    if args.json and args.json != "-":
        check_writable(args.json, "JSON predictions", "--json")
    if args.csv:
        check_writable(args.csv, "predictions CSV", "--csv")


def _check_output_type(path: str, video_output: bool) -> None:
    suffix = Path(path).suffix.lower()
    if video_output and suffix not in video.FOURCC:
        raise ConfigError(f"-o {path}: a video must end in one of "
                          f"{', '.join(sorted(video.FOURCC))}; "
                          f"pass e.g. -o annotated.mp4")
    if not video_output and not cv2.haveImageWriter(path):
        raise ConfigError(f"-o {path}: OpenCV writes no {suffix or 'extension-less'} images; "
                          f"pass e.g. -o annotated.jpg or .png")


def _open_capture(args: argparse.Namespace) -> cv2.VideoCapture | None:
    """The video or webcam to read (None for a photo or folder), opened before the model is
    loaded so that a bad file or camera index fails at once."""
    if args.video:
        if args.show and not video.gui_available():
            raise PredictError("--show: this OpenCV build cannot open windows "
                               "(opencv-python-headless): write the video with -o instead")
        return video.open_video(args.video)
    if args.image or args.dir:
        return None
    capture = video.open_camera(args.camera or 0)
    if not (args.output or args.json) and not video.gui_available():
        capture.release()
        raise PredictError("this OpenCV build cannot open windows (opencv-python-headless): "
                           "record the webcam with -o webcam.mp4 (or --json faces.jsonl)")
    return capture


def _run_dir(args: argparse.Namespace) -> Path:
    if args.run:
        return Path(args.run)
    run_dir = newest_run()
    print(f"using run {run_dir} (newest finished run under {runs_root()})", file=sys.stderr)
    return run_dir


def _predictor(args: argparse.Namespace) -> Predictor:
    run_dir = _run_dir(args)
    detector = {"min_score": args.min_score} if args.min_score is not None else None
    predictor = Predictor.from_run(run_dir, device=args.device, backend=args.backend,
                                   detector=detector)
    print(f"model: {run_dir} {predictor}", file=sys.stderr)
    if predictor.notice:
        print(f"note: {predictor.notice}", file=sys.stderr)
    return predictor


def _folder(predictor: Predictor, args: argparse.Namespace) -> int:
    from mtlface.predict.batch import predict_folder

    summary = predict_folder(predictor, args.dir, args.csv, progress=not args.no_progress)
    print(summary)
    print(f"predictions: {args.csv}")
    return 0


def _stream(predictor: Predictor, capture: cv2.VideoCapture, args: argparse.Namespace) -> int:
    show = args.show if args.video else video.gui_available()
    batch = args.batch or (8 if args.video else 1)
    smooth = VIDEO_DEFAULT if args.smooth is None else args.smooth
    options = TrackingOptions(args.detect_every, smooth, args.track_iou, args.max_missed)
    say = sys.stderr if args.json == "-" else sys.stdout  # keep stdout pure JSON
    with _json_sink(args.json) as sink:
        stats = video.annotate_stream(predictor, capture, args.output, show, args.max_frames,
                                      batch, sink, options)
    print(stats, file=say)
    for note in stats.notes():
        print(note, file=sys.stderr)
    if args.output:
        print(f"annotated video: {args.output}", file=say)
    if args.json and args.json != "-":
        print(f"predictions: {args.json}", file=say)
    if stats.faces == 0:
        print(f"no face found in any of the {stats.frames} frames", file=sys.stderr)
        return 1
    return 0


@contextlib.contextmanager
def _json_sink(path: str | None) -> Iterator[TextIO | None]:
    """The JSON Lines output of a stream: a file (written as the frames come), stdout or none."""
    if path is None:
        yield None
    elif path == "-":
        yield sys.stdout
    else:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        with open(path, "w") as sink:
            yield sink


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
        if not written:  # checked before the work: only a disk filling up gets here
            raise PredictError(f"-o {args.output}: OpenCV could not write the image; check the "
                               f"disk, or pass another path with -o")
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
