"""Video and webcam: read frames with OpenCV, predict, draw, write and/or show them, with
the processing rate in frames per second on every frame and at the end."""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path

import cv2

from mtlface.predict.draw import draw_faces, put_status
from mtlface.predict.errors import PredictError
from mtlface.predict.predictor import Predictor

FOURCC = {".mp4": "mp4v", ".m4v": "mp4v", ".mov": "mp4v", ".avi": "MJPG", ".mkv": "MJPG"}
WINDOW = "mtlface (q to quit)"


@dataclass(frozen=True)
class StreamStats:
    frames: int
    faces: int
    seconds: float

    @property
    def fps(self) -> float:
        return self.frames / self.seconds if self.seconds > 0 else 0.0

    def __str__(self) -> str:
        return (f"{self.frames} frames, {self.faces} faces in {self.seconds:.1f} s: "
                f"{self.fps:.1f} fps")


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
                    max_frames: int | None = None, batch: int = 1) -> StreamStats:
    """Every frame of ``capture`` annotated, written to ``out`` and/or shown; ``batch`` frames
    at a time go through detection and the model together. The end of the stream, ``max_frames``,
    Ctrl-C or q stop cleanly (a chunk cut by Ctrl-C is dropped)."""
    if batch < 1:
        raise PredictError(f"--batch must be at least 1, got {batch}")
    fps_in = capture.get(cv2.CAP_PROP_FPS)
    fps_in = fps_in if 1 <= fps_in <= 240 else 25.0  # webcams often report 0
    writer = None
    frames = faces_seen = 0
    start = time.perf_counter()
    try:
        while max_frames is None or frames < max_frames:
            want = batch if max_frames is None else min(batch, max_frames - frames)
            chunk = _read(capture, want)
            if not chunk:
                break
            results = predictor.predict_many([cv2.cvtColor(f, cv2.COLOR_BGR2RGB) for f in chunk])
            quit_key = False
            for frame, faces in zip(chunk, results):
                frames += 1
                faces_seen += len(faces)
                draw_faces(frame, faces)
                put_status(frame, f"{frames / (time.perf_counter() - start):.1f} fps")
                if out is not None:
                    if writer is None:
                        writer = make_writer(out, fps_in, (frame.shape[1], frame.shape[0]))
                    writer.write(frame)
                if show:
                    cv2.imshow(WINDOW, frame)
                    quit_key = quit_key or cv2.waitKey(1) & 0xFF == ord("q")
            if quit_key or len(chunk) < want:  # q pressed, or the stream ended mid-chunk
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
        raise PredictError("no frame could be read")
    return StreamStats(frames, faces_seen, time.perf_counter() - start)


def _read(capture: cv2.VideoCapture, count: int) -> list:
    """Up to ``count`` frames; fewer when the stream ends (a camera stops delivering)."""
    chunk = []
    while len(chunk) < count:
        ok, frame = capture.read()
        if not ok or frame is None:
            break
        chunk.append(frame)
    return chunk
