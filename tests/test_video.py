"""Video: the IoU tracker (stable ids through crossings and missed frames, the Hungarian
assignment), per-track smoothing, the demo's JSON lines per face per frame, ``--detect-every``
carrying boxes, and bad input (a damaged video, a frame of another size, no face for many
frames, a 1x1 image, ``--detect-every 0``) ending in one line or a counted skip."""

import json

import cv2
import numpy as np
import pytest

from mtlface.data.preprocess.detectors import Face
from mtlface.predict.results import AgePrediction, TaskPrediction
from mtlface.predict.smoothing import AgeGroups, PredictionSmoother
from mtlface.predict.tracking import IoUTracker, iou, match
from mtlface.tasks import AgeBins


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
    for _ in range(3):  # missed 3 times: kept
        assert tracker.update([]) == []
    assert tracker.update([box(102, 100)]) == [0]
    for _ in range(4):  # missed 4 times: ended
        tracker.update([])
    assert tracker.ended == [0] or 0 not in [t.id for t in tracker.tracks]
    assert tracker.update([box(102, 100)]) == [1]  # a new track


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


def age(years, probs=(0.1, 0.2, 0.4, 0.2, 0.1), interval=None):
    groups = AgeGroups(AGE_BINS.edges, AGE_BINS.names)
    g = groups.index(years)
    return AgePrediction(AGE_BINS.names[g], g, dict(zip(AGE_BINS.names, probs)), years,
                         groups.bounds(g), interval, 0.9 if interval else None)


def test_smoothing_averages_probabilities_and_rederives_the_label():
    smoother = PredictionSmoother(0.6)
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
    smoother = PredictionSmoother(0.5)
    smoother.smooth(1, {"gender": gender(0.9)})
    assert smoother.smooth(2, {"gender": gender(0.1)})["gender"] == gender(0.1)
    assert smoother.smooth(1, {"gender": gender(0.1)})["gender"].probs["female"] == \
        pytest.approx(0.5)
    smoother.forget([1])
    assert smoother.smooth(1, {"gender": gender(0.3)})["gender"] == gender(0.3)


def test_smoothing_off_returns_the_predictions_unchanged():
    smoother = PredictionSmoother(0)
    for p in (0.9, 0.1, 0.8):
        assert smoother.smooth(0, {"gender": gender(p)}) == {"gender": gender(p)}
    with pytest.raises(ValueError, match="smoothing weight"):
        PredictionSmoother(1)


def test_smoothed_age_keeps_its_group_holding_the_smoothed_years():
    groups = {"age": AgeGroups(AGE_BINS.edges, AGE_BINS.names)}
    smoother = PredictionSmoother(0.5, groups)
    smoother.smooth(0, {"age": age(30.0, interval=(20.0, 40.0))})
    out = smoother.smooth(0, {"age": age(40.0, (0.1, 0.1, 0.1, 0.1, 0.6), (30.0, 50.0))})["age"]
    assert isinstance(out, AgePrediction)
    assert out.years == pytest.approx(35.0)
    assert (out.label, out.index, out.bin) == ("32-48", 2, (32.0, 48.0))
    assert out.interval == (25.0, 45.0) and out.interval_level == 0.9
    assert out.probs["64+"] == pytest.approx(0.35)  # the most probable group, yet not shown
    old = PredictionSmoother(0.5, groups)
    old.smooth(0, {"age": age(70.0)})
    assert old.smooth(0, {"age": age(80.0)})["age"].bin == (64.0, None)


def test_smoothing_makes_a_flickering_label_steady():
    """The true class is the most probable on average (0.58), but every third frame says
    otherwise: unsmoothed, a third of the frames are wrong; smoothed, none."""
    smoother = PredictionSmoother(0.6)
    raw = [0.35 if i % 3 == 2 else 0.7 for i in range(30)]
    labels = [smoother.smooth(0, {"gender": gender(p)})["gender"].label for p in raw]
    assert sum(gender(p).label == "male" for p in raw) == 10
    assert labels.count("female") == 30
