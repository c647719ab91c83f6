"""Webcam mode (``python demo.py [--camera N]``) without a webcam: ``cv2.VideoCapture`` for an
integer index is replaced by a fake camera that serves the frames of a short video this module
writes (the astronaut photo, shifted frame by frame). Everything after the capture is what a
real webcam run uses: ``open_camera``, the frame loop, drawing, the fps status, the writer."""

import json

import cv2
import numpy as np
import pytest

from mtlface.predict.cli import main as demo

REAL_CAPTURE = cv2.VideoCapture
FRAMES = 4
HEADLESS = "GUI:                           NONE" in cv2.getBuildInformation()


class FakeCamera:
    """Camera ``index`` serving ``clip``'s frames, then no more (as when a camera is
    unplugged). It reports 0 fps, as many webcams do; ``interrupt_after`` raises
    ``KeyboardInterrupt`` on that read (Ctrl-C while the loop waits for a frame)."""

    def __init__(self, clip, index, available, interrupt_after=None, frames=None):
        self.index = index
        self.opened = index in available
        self.source = REAL_CAPTURE(str(clip)) if self.opened else None
        self.interrupt_after = interrupt_after
        self.frames = frames  # serve only this many (None: the whole clip)
        self.reads = 0
        self.released = False

    def isOpened(self):  # noqa: N802 (OpenCV's name)
        return self.opened and not self.released

    def read(self):
        self.reads += 1
        if self.interrupt_after is not None and self.reads > self.interrupt_after:
            raise KeyboardInterrupt
        if not self.isOpened() or (self.frames is not None and self.reads > self.frames):
            return False, None
        return self.source.read()

    def get(self, prop):
        return 0.0 if prop == cv2.CAP_PROP_FPS else self.source.get(prop)

    def release(self):
        self.released = True
        if self.source is not None:
            self.source.release()


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    skimage_data = pytest.importorskip("skimage.data")
    frame = cv2.cvtColor(skimage_data.astronaut(), cv2.COLOR_RGB2BGR)
    path = tmp_path_factory.mktemp("camera") / "feed.avi"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 10, (512, 512))
    for shift in range(FRAMES):
        writer.write(np.roll(frame, 6 * shift, axis=1))
    writer.release()
    return path


@pytest.fixture
def cameras(monkeypatch, clip):
    """Installs the fake: ``cameras.plug(index, **options)`` makes a camera available; every
    camera the code opens is kept in ``cameras.opened``."""

    class Cameras:
        available: dict[int, dict] = {}
        opened: list[FakeCamera] = []

        def plug(self, index=0, **options):
            self.available[index] = options

    state = Cameras()
    state.available, state.opened = {}, []

    def video_capture(source, *args):
        if not isinstance(source, int):  # files go to the real OpenCV reader
            return REAL_CAPTURE(source, *args)
        camera = FakeCamera(clip, source, state.available, **state.available.get(source, {}))
        state.opened.append(camera)
        return camera

    monkeypatch.setattr(cv2, "VideoCapture", video_capture)
    return state


def read_video(path):
    capture = REAL_CAPTURE(str(path))
    fps = capture.get(cv2.CAP_PROP_FPS)
    frames = []
    while (got := capture.read())[0]:
        frames.append(got[1])
    capture.release()
    return frames, fps


def test_webcam_frames_are_annotated_recorded_and_the_fps_reported(trained_run, cameras, clip,
                                                                    tmp_path, capsys):
    cameras.plug(0)
    out = tmp_path / "webcam.mp4"
    assert demo(["--run", str(trained_run), "-o", str(out)]) == 0  # no mode given: camera 0
    printed = capsys.readouterr().out
    assert f"{FRAMES} frames, {FRAMES} faces (1 track) in" in printed and " fps" in printed
    assert float(printed.split(" s: ")[1].split(" fps")[0]) > 0
    (camera,) = cameras.opened
    assert camera.index == 0 and camera.released
    recorded, fps = read_video(out)
    assert len(recorded) == FRAMES and fps == pytest.approx(25)  # camera said 0 fps: 25 assumed
    source, _ = read_video(clip)
    for got, raw in zip(recorded, source):
        assert got.shape == raw.shape
        changed = np.abs(got.astype(int) - raw).max(axis=2) > 100
        assert changed[:40, :80].mean() > 0.05  # the fps status, top left
        assert changed[40:, :].sum() > 500      # the face box and its labels


def test_webcam_writes_a_json_line_per_face_per_frame(trained_run, cameras, tmp_path, capsys):
    """--json alone is somewhere to keep the results: no window or -o needed."""
    cameras.plug(0)
    out = tmp_path / "webcam.jsonl"
    assert demo(["--run", str(trained_run), "--json", str(out), "--detect-every", "2"]) == 0
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    assert [(line["frame"], line["track"], line["detected"]) for line in lines] == \
        [(0, 0, True), (1, 0, False), (2, 0, True), (3, 0, False)]
    assert f"{FRAMES} frames, {FRAMES} faces (1 track)" in capsys.readouterr().out


def test_webcam_stops_at_the_frame_limit(trained_run, cameras, tmp_path, capsys):
    cameras.plug(2)
    out = tmp_path / "four.avi"
    assert demo(["--run", str(trained_run), "--camera", "2", "-o", str(out), "--max-frames", "3",
                 "--batch", "2"]) == 0  # chunks of 2 and 1 frames
    assert "3 frames, 3 faces" in capsys.readouterr().out
    (camera,) = cameras.opened
    assert camera.reads == 3 and camera.released  # no frame read beyond the limit
    assert len(read_video(out)[0]) == 3


def test_webcam_ends_cleanly_when_frames_stop_or_on_ctrl_c(trained_run, cameras, tmp_path,
                                                          capsys):
    cameras.plug(0, frames=2)  # the camera stops delivering after 2 frames
    assert demo(["--run", str(trained_run), "-o", str(tmp_path / "a.mp4"), "--batch", "4"]) == 0
    assert "2 frames, 2 faces" in capsys.readouterr().out
    assert len(read_video(tmp_path / "a.mp4")[0]) == 2

    cameras.plug(0, interrupt_after=3)  # Ctrl-C while waiting for the 4th frame
    assert demo(["--run", str(trained_run), "-o", str(tmp_path / "b.mp4")]) == 0
    assert "3 frames, 3 faces" in capsys.readouterr().out
    assert len(read_video(tmp_path / "b.mp4")[0]) == 3  # the file was closed properly
    assert all(c.released for c in cameras.opened)


def test_camera_mistakes_exit_nonzero_with_a_message(trained_run, cameras, tmp_path, capsys):
    cameras.plug(0)
    assert demo(["--run", str(trained_run), "--camera", "5", "-o", str(tmp_path / "x.mp4")]) == 1
    assert "error: cannot open camera 5: no such camera" in capsys.readouterr().err
    assert not (tmp_path / "x.mp4").exists()

    cameras.plug(1, frames=0)  # opens, then delivers nothing
    assert demo(["--run", str(trained_run), "--camera", "1", "-o", str(tmp_path / "y.mp4")]) == 1
    assert "error: no frame could be read" in capsys.readouterr().err

    if HEADLESS:  # opencv-python-headless and no -o: nowhere to show or keep the frames
        assert demo(["--run", str(trained_run)]) == 1
        assert "cannot open windows" in capsys.readouterr().err
    assert all(c.released for c in cameras.opened)
    with pytest.raises(SystemExit) as usage:
        demo(["--run", str(trained_run), "-o", str(tmp_path / "z.mp4"), "--batch", "0"])
    assert usage.value.code == 2 and "--batch must be at least 1" in capsys.readouterr().err
