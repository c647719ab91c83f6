"""Video: the IoU tracker (stable ids through crossings and missed frames, the Hungarian
assignment), per-track smoothing, the demo's JSON lines per face per frame, ``--detect-every``
carrying boxes, and bad input (a damaged video, a frame of another size, no face for many
frames, a 1x1 image, ``--detect-every 0``) ending in one line or a counted skip."""

import itertools
import json

import cv2
import numpy as np
import pytest

from mtlface.data.preprocess.detectors import Face
from mtlface.predict.results import AgePrediction, FacePrediction, TaskPrediction
from mtlface.predict.smoothing import PredictionSmoother
from mtlface.predict.tracking import IoUTracker, iou, match
from mtlface.tasks import AgeBins, AgeTask, BinaryTask, RegressionTask, ValuePrediction


def box(x, y, side=40):
    return (float(x), float(y), float(x + side), float(y + side))


# -- tracker ------------------------------------------------------------------------------------

def test_iou_of_boxes():
    assert iou(box(0, 0), box(0, 0)) == 1
    assert iou(box(0, 0), box(40, 0)) == 0  # touching edges
    assert iou(box(0, 0, 10), box(5, 0, 10)) == pytest.approx(50 / 150)
    assert iou((0, 0, 0, 0), (0, 0, 0, 0)) == 0


def test_two_faces_crossing_keep_their_ids():
    """Two faces walk towards each other on the same line and pass through each other: at the
    crossing the boxes overlap almost fully, and only the motion tells them apart."""
    tracker = IoUTracker(min_iou=0.3, max_missed=2)
    ids = []
    for t in range(30):
        a, b = box(20 + 8 * t, 100), box(263 - 8 * t, 100)  # 3 px apart at the crossing
        boxes = sorted([a, b])  # left to right, as the detector gives them
        got = dict(zip(boxes, tracker.update(boxes)))
        ids.append((got[a], got[b]))
    assert set(ids) == {(0, 1)}
    assert tracker.next_id == 2


def test_a_face_missed_for_a_few_frames_keeps_its_id_and_ends_after_max_missed():
    tracker = IoUTracker(min_iou=0.3, max_missed=3)
    assert tracker.update([box(100, 100)]) == [0]
    for _ in range(3):  # missed 3 frames: kept
        assert tracker.update([]) == [] and tracker.ended == []
    assert tracker.update([box(102, 100)]) == [0]
    for frames in range(1, 5):  # ended when 4 frames have passed since it was seen
        tracker.update([])
        assert tracker.ended == ([0] if frames == 4 else [])
    assert tracker.tracks == []
    assert tracker.update([box(102, 100)]) == [1]  # a new track


def test_max_missed_counts_frames_with_or_without_detection():
    tracker = IoUTracker(max_missed=3)
    tracker.update([box(100, 100)])
    assert [t.id for t in tracker.carry()] == [0]
    tracker.update([])  # frame 2: missed, 2 frames since seen
    assert tracker.carry() == []  # a missed track is not carried
    tracker.update([])  # frame 4
    assert tracker.ended == [0]


def test_a_moving_face_is_found_where_its_motion_takes_it_after_a_miss():
    """Moving 30 px a frame, a 100 px face overlaps its last box too little two frames later
    (IoU 0.25): matching the box moved on by its velocity keeps the id."""
    tracker = IoUTracker(min_iou=0.3, max_missed=3)
    for t in range(3):
        assert tracker.update([box(30 * t, 0, 100)]) == [0]
    tracker.update([])  # missed at 90
    assert iou(box(60, 0, 100), box(120, 0, 100)) < 0.3
    assert tracker.update([box(120, 0, 100)]) == [0]


def test_carry_moves_the_seen_tracks_on_by_their_velocity():
    tracker = IoUTracker()
    tracker.update([box(0, 0), box(200, 0)])
    tracker.update([box(10, 5), box(200, 0)])
    carried = {t.id: t.box for t in tracker.carry()}
    assert carried[0] == pytest.approx(box(20, 10)) and carried[1] == pytest.approx(box(200, 0))
    carried = {t.id: t.box for t in tracker.carry()}
    assert carried[0] == pytest.approx(box(30, 15))
    assert tracker.update([box(31, 15), box(200, 0)]) == [0, 1]


def greedy(tracks, detections, min_iou):
    """The assignment a greedy tracker makes: best remaining pair first."""
    pairs = sorted(((iou(t, d), i, j) for i, t in enumerate(tracks)
                    for j, d in enumerate(detections)), reverse=True)
    used_t, used_d, out = set(), set(), []
    for overlap, i, j in pairs:
        if overlap >= min_iou and i not in used_t and j not in used_d:
            out.append((i, j))
            used_t.add(i)
            used_d.add(j)
    return sorted(out)


def test_hungarian_matches_every_face_where_greedy_loses_one():
    """Track A overlaps both detections, track B only the first one enough. Greedy gives the
    first detection to A (the best pair), leaving B unmatched and the second detection a new
    id: a switch. The Hungarian assignment pairs A with the second and B with the first."""
    a, b = (0.0, 0.0, 100.0, 100.0), (40.0, 0.0, 140.0, 100.0)
    first, second = (10.0, 0.0, 110.0, 100.0), (-30.0, 0.0, 70.0, 100.0)
    assert [round(iou(a, first), 3), round(iou(a, second), 3)] == [0.818, 0.538]
    assert [round(iou(b, first), 3), round(iou(b, second), 3)] == [0.538, 0.176]
    assert greedy([a, b], [first, second], 0.3) == [(0, 0)]
    assert sorted(match([a, b], [first, second], 0.3)) == [(0, 1), (1, 0)]

    tracker = IoUTracker(min_iou=0.3)
    tracker.update([a, b])
    assert tracker.update([first, second]) == [1, 0]


def test_tracker_options_are_checked():
    with pytest.raises(ValueError, match="min_iou"):
        IoUTracker(min_iou=0)
    with pytest.raises(ValueError, match="max_missed"):
        IoUTracker(max_missed=-1)


# -- smoothing ----------------------------------------------------------------------------------

def gender(p_female):
    probs = {"male": round(1 - p_female, 6), "female": p_female}
    label = "female" if p_female > 0.5 else "male"
    return TaskPrediction(label, list(probs).index(label), probs)


AGE_BINS = AgeBins.uniform(5)  # 0-16, 16-32, 32-48, 48-64, 64+
TASKS = {"gender": BinaryTask("gender", 1, ["male", "female"]), "age": AgeTask(1, AGE_BINS)}


def age(years, probs=(0.1, 0.2, 0.4, 0.2, 0.1), interval=None):
    g = min(int(years // 16), 4)
    bounds = (16.0 * g, None if g == 4 else 16.0 * (g + 1))
    return AgePrediction(AGE_BINS.names[g], g, dict(zip(AGE_BINS.names, probs)), years,
                         bounds, interval, 0.9 if interval else None)


def test_smoothing_averages_probabilities_and_rederives_the_label():
    smoother = PredictionSmoother(0.6, TASKS)
    first = smoother.smooth(7, {"gender": gender(0.9)})["gender"]
    assert first == gender(0.9)  # a track's first frame is taken as it is
    second = smoother.smooth(7, {"gender": gender(0.2)})["gender"]
    assert second.probs["female"] == pytest.approx(0.6 * 0.9 + 0.4 * 0.2)
    assert (second.label, second.index) == ("female", 1)  # one odd frame does not flip it
    for _ in range(3):
        last = smoother.smooth(7, {"gender": gender(0.2)})["gender"]
    assert (last.label, last.index) == ("male", 0)  # a lasting change does
    assert sum(last.probs.values()) == pytest.approx(1)


def test_smoothing_is_per_track_and_forgets_ended_tracks():
    smoother = PredictionSmoother(0.5, TASKS)
    smoother.smooth(1, {"gender": gender(0.9)})
    assert smoother.smooth(2, {"gender": gender(0.1)})["gender"] == gender(0.1)
    assert smoother.smooth(1, {"gender": gender(0.1)})["gender"].probs["female"] == \
        pytest.approx(0.5)
    smoother.forget([1])
    assert smoother.smooth(1, {"gender": gender(0.3)})["gender"] == gender(0.3)


def test_smoothing_off_returns_the_predictions_unchanged():
    smoother = PredictionSmoother(0, TASKS)
    for p in (0.9, 0.1, 0.8):
        assert smoother.smooth(0, {"gender": gender(p)}) == {"gender": gender(p)}
    with pytest.raises(ValueError, match="smoothing weight"):
        PredictionSmoother(1, TASKS)


def test_smoothed_age_keeps_its_group_holding_the_smoothed_years():
    smoother = PredictionSmoother(0.5, TASKS)
    smoother.smooth(0, {"age": age(30.0, interval=(20.0, 40.0))})
    out = smoother.smooth(0, {"age": age(40.0, (0.1, 0.1, 0.1, 0.1, 0.6), (30.0, 50.0))})["age"]
    assert isinstance(out, AgePrediction)
    assert out.years == pytest.approx(35.0)
    assert (out.label, out.index, out.bin) == ("32-48", 2, (32.0, 48.0))
    assert out.interval == (25.0, 45.0) and out.interval_level == 0.9
    assert out.probs["64+"] == pytest.approx(0.35)  # the most probable group, yet not shown
    old = PredictionSmoother(0.5, TASKS)
    old.smooth(0, {"age": age(70.0)})
    assert old.smooth(0, {"age": age(80.0)})["age"].bin == (64.0, None)


def test_smoothing_makes_a_flickering_label_steady():
    """The true class is the most probable on average (0.58), but every third frame says
    otherwise: unsmoothed, a third of the frames are wrong; smoothed, none."""
    smoother = PredictionSmoother(0.6, TASKS)
    raw = [0.35 if i % 3 == 2 else 0.7 for i in range(30)]
    labels = [smoother.smooth(0, {"gender": gender(p)})["gender"].label for p in raw]
    assert sum(gender(p).label == "male" for p in raw) == 10
    assert labels.count("female") == 30


# -- the frame loop, without a model ---------------------------------------------------------------

class FakePredictor:
    """Records the faces it is asked about; every face is 70 % female."""

    def __init__(self):
        self.tasks = {"gender": TASKS["gender"]}
        self.asked = []

    def predict_at(self, images, faces):
        self.asked.append([list(found) for found in faces])
        return [[FacePrediction(f.box, f.score, {"gender": gender(0.7)}) for f in found]
                for found in faces]


def test_face_stream_detects_every_nth_frame_and_moves_carried_landmarks():
    from mtlface.predict.stream import FaceStream, TrackingOptions

    def face_at(x):
        return Face(box(x, 50, 100), 0.99, np.array([[x + 30.0, 80.0]] * 5))

    detected_on = []

    def detect(images):
        detected_on.extend(int(image[0, 0, 0]) for image in images)
        return [[face_at(10 * int(image[0, 0, 0]))] for image in images]

    frames = [np.full((300, 400, 3), n, np.uint8) for n in range(6)]  # pixel value: the frame
    predictor = FakePredictor()
    stream = FaceStream(predictor, TrackingOptions(detect_every=2), detect)
    out = stream.process(frames[:4]) + stream.process(frames[4:])
    assert detected_on == [0, 2, 4]
    assert [[(t.frame, t.track, t.detected) for t in frame] for frame in out] == \
        [[(n, 0, n % 2 == 0)] for n in range(6)]
    carried = predictor.asked[0][3][0]  # frame 3: carried 10 px on from frame 2
    assert carried.box == pytest.approx(box(30, 50, 100)) and np.isnan(carried.score)
    np.testing.assert_allclose(carried.landmarks, face_at(30).landmarks)
    assert out[3][0].to_dict()["score"] is None and out[3][0].to_dict()["frame"] == 3


def test_face_stream_keeps_the_frame_numbers_it_is_given():
    from mtlface.predict.stream import FaceStream, TrackingOptions

    stream = FaceStream(FakePredictor(), TrackingOptions(detect_every=3),
                        lambda images: [[Face(box(0, 0, 50), 0.9)] for _ in images])
    frames = [np.zeros((100, 100, 3), np.uint8)] * 3
    out = stream.process(frames, numbers=[0, 2, 3])  # frame 1 was left out
    assert [(f[0].frame, f[0].detected) for f in out] == [(0, True), (2, False), (3, True)]
    assert stream.frames == 4


# -- the demo on video: JSON lines, --detect-every, bad input ----------------------------------

@pytest.fixture(scope="module")
def astronaut_bgr():
    skimage_data = pytest.importorskip("skimage.data")
    return cv2.cvtColor(skimage_data.astronaut(), cv2.COLOR_RGB2BGR)


def write_clip(path, frames, fps=10):
    h, w = frames[0].shape[:2]
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), fps, (w, h))
    for frame in frames:
        writer.write(frame)
    writer.release()
    return path


def two_astronauts(astronaut_bgr, shift):
    """Two copies side by side, moving apart by ``shift`` px each: two faces, two tracks."""
    pair = np.concatenate([astronaut_bgr, astronaut_bgr], axis=1)[::2, ::2]
    left, right = np.roll(pair[:, :256], -shift, axis=1), np.roll(pair[:, 256:], shift, axis=1)
    return np.ascontiguousarray(np.concatenate([left, right], axis=1))


@pytest.fixture(scope="module")
def clip(astronaut_bgr, tmp_path_factory):
    frames = [two_astronauts(astronaut_bgr, 3 * t) for t in range(6)]
    return write_clip(tmp_path_factory.mktemp("video") / "two.avi", frames)


def read_lines(path):
    return [json.loads(line) for line in path.read_text().splitlines()]


@pytest.fixture
def detections(monkeypatch):
    """Counts the frames the detector is run on."""
    from mtlface.predict.faces import FaceFinder

    seen = []
    real = FaceFinder.find_all

    def find_all(self, images):
        seen.append(len(images))
        return real(self, images)

    monkeypatch.setattr(FaceFinder, "find_all", find_all)
    return seen


def test_demo_writes_a_json_line_per_face_per_frame_with_its_track(trained_run, clip, tmp_path,
                                                                   capsys, detections):
    from mtlface.predict.cli import main as demo

    out = tmp_path / "faces.jsonl"
    assert demo(["--run", str(trained_run), "-v", str(clip), "--json", str(out),
                 "--batch", "4"]) == 0
    printed = capsys.readouterr().out
    assert "6 frames, 12 faces (2 tracks)" in printed and f"predictions: {out}" in printed
    lines = read_lines(out)
    assert [(line["frame"], line["track"]) for line in lines] == \
        [(f, t) for f in range(6) for t in (0, 1)]
    assert all(line["detected"] for line in lines) and sum(detections) == 6
    first = lines[0]
    assert set(first) == {"frame", "track", "detected", "box", "score", "tasks"}
    assert set(first["tasks"]) == {"age", "gender", "smile", "emotion", "race"}
    assert "years" in first["tasks"]["age"] and first["tasks"]["gender"]["label"]
    assert lines[10]["box"][0] < lines[0]["box"][0]  # the left face moved left


def test_demo_smooths_video_by_default_and_smooth_0_turns_it_off(trained_run, clip, tmp_path,
                                                                capsys):
    from mtlface.predict.cli import main as demo

    raw, steady = tmp_path / "raw.jsonl", tmp_path / "steady.jsonl"
    assert demo(["--run", str(trained_run), "-v", str(clip), "--json", str(raw),
                 "--smooth", "0"]) == 0
    assert demo(["--run", str(trained_run), "-v", str(clip), "--json", str(steady)]) == 0
    capsys.readouterr()
    raw, steady = read_lines(raw), read_lines(steady)
    assert [r["box"] for r in raw] == [s["box"] for s in steady]
    assert raw[:2] == steady[:2]  # a track's first frame is as predicted
    ages = [(r["tasks"]["age"]["years"], s["tasks"]["age"]["years"]) for r, s in
            zip(raw, steady) if r["track"] == 0]
    # The smoothed age moves less from frame to frame than the raw one.
    moves = [sum(abs(a[k] - b[k]) for a, b in itertools.pairwise(ages)) for k in (0, 1)]
    assert moves[1] < moves[0]


def test_video_json_on_stdout_stays_pure_json(trained_run, clip, capsys):
    from mtlface.predict.cli import main as demo

    assert demo(["--run", str(trained_run), "-v", str(clip), "--json", "-",
                 "--max-frames", "2"]) == 0
    captured = capsys.readouterr()
    lines = [json.loads(line) for line in captured.out.splitlines()]  # nothing else there
    assert [(line["frame"], line["track"]) for line in lines] == [(0, 0), (0, 1), (1, 0), (1, 1)]
    assert "2 frames, 4 faces (2 tracks)" in captured.err


def test_detect_every_carries_the_boxes_between_detections(trained_run, clip, tmp_path, capsys,
                                                           detections):
    from mtlface.predict.cli import main as demo

    out = tmp_path / "every3.jsonl"
    assert demo(["--run", str(trained_run), "-v", str(clip), "--json", str(out),
                 "--detect-every", "3", "--batch", "4"]) == 0
    assert "6 frames, 12 faces (2 tracks)" in capsys.readouterr().out
    assert sum(detections) == 2  # frames 0 and 3
    lines = read_lines(out)
    assert [line["detected"] for line in lines[::2]] == [True, False, False] * 2
    assert {line["track"] for line in lines} == {0, 1}
    by_frame = {(line["frame"], line["track"]): line for line in lines}
    # Frame 1 is carried from frame 0 (no motion known yet); frame 4 by the motion seen.
    assert by_frame[1, 0]["box"] == by_frame[0, 0]["box"] and by_frame[1, 0]["score"] is None
    def centre(frame):
        x1, _, x2, _ = by_frame[frame, 1]["box"]
        return (x1 + x2) / 2

    moved = centre(4) - centre(3)
    assert moved == pytest.approx((centre(3) - centre(0)) / 3, abs=0.02) and moved > 0
    assert centre(5) - centre(4) == pytest.approx(moved, abs=0.02)


class ListCapture:
    """A capture serving the given frames, stating ``stated`` frames (a file's frame count)."""

    def __init__(self, frames, stated=None):
        self.frames, self.stated = list(frames), stated
        self.released = False

    def isOpened(self):  # OpenCV's name
        return not self.released

    def read(self):
        if not self.frames:
            return False, None
        return True, self.frames.pop(0)

    def get(self, prop):
        if prop == cv2.CAP_PROP_FRAME_COUNT:
            return float(self.stated or 0)
        return 10.0 if prop == cv2.CAP_PROP_FPS else 0.0

    def release(self):
        self.released = True


def serve(monkeypatch, frames, stated=None):
    from mtlface.predict import video

    monkeypatch.setattr(video, "open_video", lambda path: ListCapture(frames, stated))


def test_a_frame_of_another_size_is_skipped_and_counted(trained_run, astronaut_bgr, tmp_path,
                                                        capsys, monkeypatch):
    from mtlface.predict.cli import main as demo

    frames = [two_astronauts(astronaut_bgr, 0)] * 2 + [astronaut_bgr] + \
        [two_astronauts(astronaut_bgr, 0)] * 2
    serve(monkeypatch, frames)
    out, annotated = tmp_path / "sizes.jsonl", tmp_path / "sizes.avi"
    assert demo(["--run", str(trained_run), "-v", "clip.avi", "--json", str(out), "-o",
                 str(annotated), "--batch", "2"]) == 0
    captured = capsys.readouterr()
    assert "4 frames, 8 faces (2 tracks)" in captured.out
    assert "skipped 1 frame whose size differs from the first frame's (512x256)" in \
        captured.err
    assert sorted({line["frame"] for line in read_lines(out)}) == [0, 1, 3, 4]  # file's numbers
    capture = cv2.VideoCapture(str(annotated))
    assert capture.get(cv2.CAP_PROP_FRAME_COUNT) == 4
    assert (capture.get(cv2.CAP_PROP_FRAME_WIDTH), capture.get(cv2.CAP_PROP_FRAME_HEIGHT)) == \
        (512, 256)
    capture.release()


def test_frames_without_a_face_end_tracks_and_are_counted(trained_run, astronaut_bgr, tmp_path,
                                                          capsys, monkeypatch):
    from mtlface.predict.cli import main as demo

    face, wall = astronaut_bgr[::2, ::2].copy(), np.full((256, 256, 3), 128, np.uint8)
    serve(monkeypatch, [face, face] + [wall] * 4 + [face])
    out = tmp_path / "gap.jsonl"
    assert demo(["--run", str(trained_run), "-v", "gap.avi", "--json", str(out),
                 "--max-missed", "2"]) == 0
    captured = capsys.readouterr()
    assert "7 frames, 3 faces (2 tracks)" in captured.out
    assert "4 of 7 frames had no face" in captured.err
    assert [(line["frame"], line["track"]) for line in read_lines(out)] == \
        [(0, 0), (1, 0), (6, 1)]  # ended after 2 misses: the face comes back as a new track

    serve(monkeypatch, [wall] * 3)
    assert demo(["--run", str(trained_run), "-v", "wall.avi", "--json", str(out)]) == 1
    assert "no face found in any of the 3 frames" in capsys.readouterr().err
    assert out.read_text() == ""


def test_a_damaged_or_truncated_video_ends_in_one_line(trained_run, clip, tmp_path, capsys):
    from mtlface.predict.cli import main as demo

    garbage = tmp_path / "garbage.avi"
    garbage.write_bytes(b"RIFF" + bytes(range(256)) * 20)
    assert demo(["--run", str(trained_run), "-v", str(garbage), "--json",
                 str(tmp_path / "g.jsonl")]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: video") and "cannot open it" in err and "Traceback" not in err

    data = clip.read_bytes()
    cut = tmp_path / "cut.avi"
    cut.write_bytes(data[:len(data) * 2 // 3])  # the last frames and the index are gone
    # OpenCV opens what is left and reads 5 frames; the 6 the file states tell it is short.
    assert demo(["--run", str(trained_run), "-v", str(cut), "--json",
                 str(tmp_path / "c.jsonl")]) == 0
    captured = capsys.readouterr()
    assert "5 frames, 10 faces" in captured.out
    assert "read 5 of the 6 frames the file states: it ends early or is damaged" in captured.err
    assert "Traceback" not in captured.err


def test_tiny_images_and_frames_give_no_face_not_a_traceback(trained_run, tmp_path, capsys,
                                                             monkeypatch):
    from PIL import Image

    from mtlface.predict.cli import main as demo

    dot = tmp_path / "dot.png"
    Image.new("RGB", (1, 1), (200, 150, 120)).save(dot)
    assert demo(["--run", str(trained_run), "-i", str(dot), "--json", str(tmp_path / "d.jsonl")]) \
        == 1
    assert f"no face found in {dot}" in capsys.readouterr().err

    serve(monkeypatch, [np.zeros((1, 1, 3), np.uint8)] * 3)
    assert demo(["--run", str(trained_run), "-v", "dots.avi", "--json",
                 str(tmp_path / "dots.jsonl"), "--detect-every", "2"]) == 1
    captured = capsys.readouterr()
    assert "3 frames, 0 faces" in captured.out
    assert "no face found in any of the 3 frames" in captured.err


@pytest.mark.parametrize("args, message", [
    (["--detect-every", "0"], "--detect-every must be at least 1"),
    (["--detect-every", "x"], "--detect-every: invalid int value"),
    (["--smooth", "1"], "--smooth: must be at least 0 (off) and below 1"),
    (["--smooth", "-0.1"], "--smooth: must be at least 0"),
    (["--track-iou", "0"], "--track-iou must be above 0"),
    (["--max-missed", "-1"], "--max-missed must be 0 or more"),
    (["-i", "photo.jpg", "--smooth", "0.5"], "--smooth goes with -v or the webcam"),
    (["-i", "photo.jpg", "--detect-every", "2"], "--detect-every goes with -v or the webcam"),
    (["--dir", "photos", "--csv", "p.csv", "--json", "x.jsonl"], "--json goes with -i, -v"),
])
def test_video_option_mistakes_exit_2_with_one_line(args, message, capsys):
    from mtlface.predict.cli import main as demo

    with pytest.raises(SystemExit) as usage:
        demo(["-v", "clip.mp4", *args] if "-i" not in args and "--dir" not in args else args)
    assert usage.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and message in err and len(err.splitlines()) == 1


def test_video_needs_an_output(clip, capsys):
    from mtlface.predict.cli import main as demo

    assert demo(["-v", str(clip)]) == 2
    assert "pass -o annotated.mp4, --json faces.jsonl or --show" in capsys.readouterr().err


def test_smoothing_a_number_averages_it():
    tasks = {"valence": RegressionTask("valence", 1, [-1, 1])}
    smoother = PredictionSmoother(0.5, tasks)
    smoother.smooth(3, {"valence": ValuePrediction(0.8)})
    assert smoother.smooth(3, {"valence": ValuePrediction(-0.4)})["valence"].value == \
        pytest.approx(0.2)
