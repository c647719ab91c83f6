"""Video and webcam: read frames with OpenCV, predict (faces tracked and smoothed across
frames), draw, write and/or show them and their JSON lines, with the processing rate in frames
per second on every frame and at the end."""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

import cv2
import numpy as np

from mtlface.predict.draw import draw_faces, put_status
from mtlface.predict.errors import PredictError
from mtlface.predict.predictor import Predictor
from mtlface.predict.stream import Detect, FaceStream, TrackingOptions

FOURCC = {".mp4": "mp4v", ".m4v": "mp4v", ".mov": "mp4v", ".avi": "MJPG", ".mkv": "MJPG"}
WINDOW = "mtlface (q to quit)"


@dataclass(frozen=True)
class StreamStats:
    """``skipped``: frames of another size than the first (left out); ``faceless``: frames
    without a face; ``expected``: the frame count the file states (None for a camera), when
    the stream ended before it (a truncated or damaged file); ``size``: the first frame's
    width and height."""

    frames: int
    faces: int
    seconds: float
    tracks: int = 0
    skipped: int = 0
    faceless: int = 0
    expected: int | None = None
    size: tuple[int, int] | None = None

    @property
    def fps(self) -> float:
        return self.frames / self.seconds if self.seconds > 0 else 0.0

    def __str__(self) -> str:
        return (f"{self.frames} frames, {self.faces} faces ({_count(self.tracks, 'track')}) "
                f"in {self.seconds:.1f} s: {self.fps:.1f} fps")

    def notes(self) -> list[str]:
        """Lines for stderr: what was skipped or missing, counted."""
        notes = []
        if self.skipped:
            first = f" ({self.size[0]}x{self.size[1]})" if self.size else ""
            notes.append(f"skipped {_count(self.skipped, 'frame')} whose size differs from the "
                         f"first frame's{first}")
        if self.expected is not None:
            notes.append(f"read {self.frames + self.skipped} of the {self.expected} frames the "
                         f"file states: it ends early or is damaged from there on")
        if self.faceless and self.faces:
            notes.append(f"{self.faceless} of {self.frames} frames had no face")
        return notes


def _count(n: int, thing: str) -> str:
    return f"{n} {thing}{'' if n == 1 else 's'}"


def open_video(path: str | os.PathLike) -> cv2.VideoCapture:
    if not Path(path).is_file():
        raise PredictError(f"video {path}: no such file")
    capture = cv2.VideoCapture(str(path))
    if not capture.isOpened():
        raise PredictError(f"video {path}: cannot open it (not a video OpenCV can read)")
    return capture


def open_camera(index: int) -> cv2.VideoCapture:
    # A missing camera gets our message below, not a backend warning on top of it.
    previous = cv2.utils.logging.getLogLevel()
    cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_ERROR)
    try:
        capture = cv2.VideoCapture(index)
    finally:
        cv2.utils.logging.setLogLevel(previous)
    if not capture.isOpened():
        capture.release()
        raise PredictError(f"cannot open camera {index}: no such camera, or it is busy "
                           f"(try --camera 1, or -v <video file>)")
    return capture


def make_writer(path: str | os.PathLike, fps: float, size: tuple[int, int]) -> cv2.VideoWriter:
    suffix = Path(path).suffix.lower()
    if suffix not in FOURCC:
        raise PredictError(f"-o {path}: video output must end in one of {sorted(FOURCC)}")
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*FOURCC[suffix]), fps, size)
    if not writer.isOpened():
        raise PredictError(f"-o {path}: OpenCV cannot write this video file")
    return writer


def gui_available() -> bool:
    """opencv-python-headless (the default install) cannot open windows."""
    try:
        cv2.namedWindow(WINDOW)
        return True
    except cv2.error:
        return False


def annotate_stream(predictor: Predictor, capture: cv2.VideoCapture,
                    out: str | os.PathLike | None, show: bool,
                    max_frames: int | None = None, batch: int = 1,
                    json_lines: TextIO | None = None,
                    options: TrackingOptions | None = None, detect: Detect | None = None
                    ) -> StreamStats:
    """Every frame of ``capture`` annotated (faces tracked and smoothed, see
    :class:`FaceStream`), written to ``out`` and/or shown, one JSON line per face and frame
    to ``json_lines``; ``batch`` frames at a time go through detection and the model together.
    Frames of another size than the first are skipped and counted. The end of the stream,
    ``max_frames``, Ctrl-C or q stop cleanly (a chunk cut by Ctrl-C is dropped)."""
    if batch < 1:
        raise PredictError(f"--batch must be at least 1, got {batch}")
    fps_in = capture.get(cv2.CAP_PROP_FPS)
    fps_in = fps_in if 1 <= fps_in <= 240 else 25.0  # webcams often report 0
    stated = int(capture.get(cv2.CAP_PROP_FRAME_COUNT) or 0)  # <= 0 for cameras
    stream = FaceStream(predictor, options, detect)
    writer = None
    size: tuple[int, int] | None = None
    frames = faces_seen = faceless = skipped = 0
    ended = False  # the stream ran out (not stopped by max_frames, q or Ctrl-C)
    start = time.perf_counter()
    try:
        while max_frames is None or frames < max_frames:
            want = batch if max_frames is None else min(batch, max_frames - frames)
            read = _read(capture, want)
            if not read:
                ended = True
                break
            size = size or _size(read[0])
            numbers = [frames + skipped + i for i, f in enumerate(read) if _size(f) == size]
            chunk = [f for f in read if _size(f) == size]
            skipped += len(read) - len(chunk)
            results = stream.process([cv2.cvtColor(f, cv2.COLOR_BGR2RGB) for f in chunk],
                                     numbers)
            quit_key = False
            for frame, tracked in zip(chunk, results):
                frames += 1
                faces_seen += len(tracked)
                faceless += not tracked
                if json_lines is not None:
                    json_lines.writelines(json.dumps(t.to_dict()) + "\n" for t in tracked)
                draw_faces(frame, [t.face for t in tracked])
                put_status(frame, f"{frames / (time.perf_counter() - start):.1f} fps")
                if out is not None:
                    if writer is None:
                        writer = make_writer(out, fps_in, size)
                    writer.write(frame)
                if show:
                    cv2.imshow(WINDOW, frame)
                    quit_key = quit_key or cv2.waitKey(1) & 0xFF == ord("q")
            if quit_key:
                break
            if len(read) < want:  # the stream ended mid-chunk
                ended = True
                break
    except KeyboardInterrupt:
        pass
    finally:
        capture.release()
        if writer is not None:
            writer.release()
        if show:
            cv2.destroyAllWindows()
    if frames == 0:
        what = "no frame could be read" if not skipped else "no frame could be used"
        raise PredictError(f"{what}: the video is empty or damaged, or the camera sends "
                           f"nothing; check the file (or camera) with another player")
    short = ended and stated > 0 and frames + skipped < stated
    return StreamStats(frames, faces_seen, time.perf_counter() - start, stream.tracks,
                       skipped, faceless, stated if short else None, size)


def _size(frame: np.ndarray) -> tuple[int, int]:
    return frame.shape[1], frame.shape[0]


def _read(capture: cv2.VideoCapture, count: int) -> list:
    """Up to ``count`` frames; fewer when the stream ends (a camera stops delivering)."""
    chunk = []
    while len(chunk) < count:
        ok, frame = capture.read()
        if not ok or frame is None:
            break
        chunk.append(frame)
    return chunk
