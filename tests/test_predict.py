"""Predictor and demo on a briefly trained run: typed predictions on a real photo (the
astronaut, where MTCNN finds one face), bad inputs, and the demo's image, video, folder
and error paths."""

import csv
import json
import subprocess
import sys

import cv2
import numpy as np
import pytest
import torch
from omegaconf import OmegaConf
from PIL import Image

from conftest import ROOT, SMALL_BKNET, compose_train
from mtlface import Predictor
from mtlface.predict import (AgePrediction, FacePrediction, ImageInputError, RunFolderError,
                             TaskPrediction)
from mtlface.data.preprocess.crop import CropSpec
from mtlface.export import export_run
from mtlface.predict.backends import OnnxBackend
from mtlface.predict.cli import main as demo
from mtlface.predict.draw import caption
from mtlface.predict.results import decode_batch
from mtlface.predict.faces import settings_from_config
from mtlface.predict.runs import best_checkpoint, load_weights, read_state_dict
from mtlface.tasks import AgeBins, AgeTask
from mtlface.train import build_model

TASKS = ["age", "gender", "smile", "emotion", "race"]


@pytest.fixture(scope="module")
def predictor(trained_run):
    return Predictor.from_run(trained_run)


def _check_face(face, image_size, task_names):
    assert isinstance(face, FacePrediction)
    x1, y1, x2, y2 = face.box
    w, h = image_size
    assert 0 <= x1 < x2 <= w and 0 <= y1 < y2 <= h
    assert 40 < x2 - x1 < w / 2  # a face, not the whole picture
    assert face.score > 0.9
    assert list(face.tasks) == task_names
    for name, pred in face.tasks.items():
        assert isinstance(pred, TaskPrediction)
        assert pred.label in pred.probs and list(pred.probs)[pred.index] == pred.label
        assert sum(pred.probs.values()) == pytest.approx(1, abs=1e-4)
        if name != "age":  # age: the group holding the age in years, not the likeliest one
            assert pred.probs[pred.label] == max(pred.probs.values())
    age = face["age"]
    assert isinstance(age, AgePrediction)
    assert 0 <= age.years <= 80 and age.label == age_group_name(age.bin)
    low, high = age.bin
    assert (low is None or low <= age.years) and (high is None or age.years < high)


def age_group_name(bounds):
    """The name of the age group ``[low, high)``, ``None`` at an open end."""
    low, high = bounds
    return f"{low:g}+" if high is None else f"<{high:g}" if low is None else f"{low:g}-{high:g}"


def test_run_folder_gives_the_best_checkpoint(trained_run):
    ckpt = best_checkpoint(trained_run)
    assert ckpt.name.startswith("epoch") and ckpt.parent.name == "checkpoints"
    state = read_state_dict(ckpt)  # weights_only: a Lightning checkpoint loads without pickle
    assert any(k.startswith("backbone.") for k in state)


def test_predict_finds_the_astronaut_and_types_every_task(predictor, astronaut):
    faces = predictor.predict(astronaut)
    assert len(faces) == 1
    _check_face(faces[0], (512, 512), TASKS)
    json.dumps(faces[0].to_dict())  # JSON-ready
    # Same result whatever form the image comes in.
    rgb = np.asarray(Image.open(astronaut).convert("RGB"))
    for other in (predictor.predict(Image.open(astronaut)), predictor.predict(rgb)):
        assert other[0].box == pytest.approx(faces[0].box)
        assert other[0]["gender"].probs == pytest.approx(faces[0]["gender"].probs, abs=1e-5)


def test_predictions_are_the_modules_outputs_decoded(predictor, astronaut, trained_run):
    rgb = np.asarray(Image.open(astronaut).convert("RGB"))
    crop = predictor.finder.crop(rgb, predictor.finder.find(rgb)[0])
    face = predictor.predict_faces([crop])[0]
    model = predictor.backend.model
    with torch.no_grad():
        raw = model(predictor.preprocess([crop]))
    # The run is calibrated: probabilities of logits / T; classes and the age are unchanged.
    probs = predictor.calibration.apply(raw)["emotion"].softmax(-1)[0]
    assert face["emotion"].index == int(probs.argmax())
    assert face["emotion"].probs["happy"] == pytest.approx(float(probs[3]), abs=1e-5)
    expected_age = float(raw["age"].softmax(-1)[0] @ torch.tensor([8.0, 24, 40, 56, 72]))
    assert face["age"].years == pytest.approx(expected_age, abs=1e-3)
    # The detected face and the same crop given directly agree.
    detected = predictor.predict(rgb)[0]
    assert detected["race"].probs == pytest.approx(face["race"].probs, abs=1e-5)


def test_open_ended_age_groups_are_named_so():
    assert AgeBins.uniform(5).names == ["0-16", "16-32", "32-48", "48-64", "64+"]
    assert AgeBins([1, 9, 17, 81]).names == ["<9", "9-17", "17+"]  # ages under 1 go to bin 0
    assert AgeBins([0, 18, 30, 45, 65, 100]).names[-2:] == ["45-65", "65+"]


def age_prediction(readout, output):
    task = AgeTask(4, AgeBins.uniform(5), readout=readout)
    return decode_batch({"age": task}, {"age": torch.tensor([output])})[0]["age"]


def test_the_age_group_shown_is_the_one_holding_the_age():
    # Most probable group 64+ (35%), expected age 44: the old label read "age 44 (64-80)".
    probs = torch.tensor([0.2, 0.2, 0.1, 0.15, 0.35])
    age = age_prediction("expected", probs.log().tolist())
    assert age.years == pytest.approx(44.0, abs=1e-4)
    assert (age.label, age.index, age.bin) == ("32-48", 2, (32.0, 48.0))
    assert age.probs["64+"] == pytest.approx(0.35) and age.confidence == pytest.approx(0.1)
    assert caption("age", age) == "age 44 (32-48)"
    # An age past the last edge is in the open-ended top group, open in the JSON too.
    old = age_prediction("regression", [1.5])  # standardised: 40 + 40 * 1.5 = 100 years
    assert (old.label, old.bin) == ("64+", (64.0, None))
    assert caption("age", old) == "age 100 (64+)"
    assert json.loads(json.dumps(FacePrediction((0, 0, 1, 1), 0.9, {"age": old}).to_dict())
                      )["tasks"]["age"]["bin"] == [64.0, None]


def test_predict_faces_runs_one_batch_and_matches_one_by_one(predictor, astronaut):
    rgb = np.asarray(Image.open(astronaut).convert("RGB"))
    crops = [rgb[20:240, 150:330], rgb[300:500, 0:200], np.ascontiguousarray(rgb[::-1])]
    batched = predictor.predict_faces(crops)
    assert len(batched) == 3 and np.isnan(batched[0].score)
    assert batched[0].box == (0.0, 0.0, 180.0, 220.0)
    for crop, face in zip(crops, batched):
        alone = predictor.predict_faces([crop])[0]
        assert alone["smile"].probs == pytest.approx(face["smile"].probs, abs=1e-5)


class Spy:
    """Wraps a callable and records the length of its first argument on each call."""

    def __init__(self, fn):
        self.fn, self.sizes = fn, []

    def __call__(self, batch, *args, **kwargs):
        self.sizes.append(len(batch))
        return self.fn(batch, *args, **kwargs)


def test_predict_many_batches_frames_and_matches_one_by_one(predictor, astronaut, monkeypatch):
    rgb = np.asarray(Image.open(astronaut).convert("RGB"))
    frames = [rgb, np.roll(rgb, 24, axis=1), np.full_like(rgb, 127), rgb[:, ::-1].copy()]
    alone = [predictor.predict(f) for f in frames]
    detect = Spy(predictor.finder._mtcnn.detect)
    backend = Spy(predictor.backend)
    monkeypatch.setattr(predictor.finder._mtcnn, "detect", detect)
    monkeypatch.setattr(predictor, "backend", backend)
    together = predictor.predict_many(frames)
    assert detect.sizes == [4] and backend.sizes == [3]  # one detection, one model batch
    assert [len(f) for f in together] == [1, 1, 0, 1]
    for one, many in zip(alone, together):
        for a, b in zip(one, many):
            assert b.box == pytest.approx(a.box, abs=0.5) and b.score == pytest.approx(a.score)
            assert b["emotion"].probs == pytest.approx(a["emotion"].probs, abs=1e-3)
            assert b["age"].years == pytest.approx(a["age"].years, abs=0.1)
    assert predictor.predict_many([]) == []


def test_faces_are_found_and_cut_with_the_runs_preprocessing_settings(trained_run):
    """A run trained on a preprocessed cache: the Predictor detects and crops like that cache."""
    cfg = compose_train([*SMALL_BKNET, "data=genki4k", "+data.manifests.genki4k.crop.margin=0.35",
                         "+data.manifests.genki4k.crop.size=160",
                         "data.manifests.genki4k.detector.min_face_size=40",
                         "data.manifests.genki4k.detector.thresholds=[0.5,0.6,0.8]"])
    settings = settings_from_config(cfg)
    assert settings.crop == CropSpec(size=160, margin=0.35)
    assert settings.detector["min_face_size"] == 40 and settings.detector["min_score"] == 0.9
    pred = Predictor.from_checkpoint(best_checkpoint(trained_run), cfg)
    assert pred.finder.crop_spec == settings.crop
    assert (pred.finder.min_face_size, pred.finder.thresholds) == (40, [0.5, 0.6, 0.8])
    assert settings_from_config(compose_train()).crop == CropSpec()  # synthetic: defaults


def test_bad_images_are_refused_with_clear_errors(predictor, tmp_path, astronaut, monkeypatch):
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    with pytest.raises(ImageInputError, match="cannot read the image"):
        predictor.predict(broken)
    with pytest.raises(ImageInputError, match="no such file"):
        predictor.predict(tmp_path / "missing.jpg")
    with pytest.raises(ImageInputError, match="uint8"):
        predictor.predict(np.zeros((10, 10, 3), np.float32))
    with pytest.raises(ImageInputError, match="PIL image or uint8 array"):
        predictor.predict(42)
    # Decompression bombs: PIL's pixel limit, as our own message (not PIL's warning/error).
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 100 * 100)
    with pytest.raises(ImageInputError, match="too large.*decompression bomb"):
        predictor.predict(astronaut)
    with pytest.raises(ImageInputError, match="MAX_IMAGE_PIXELS"):
        predictor.predict(Image.new("RGB", (200, 200)))


def test_no_face_gives_an_empty_list(predictor):
    assert predictor.predict(np.full((240, 320, 3), 127, np.uint8)) == []
    assert predictor.predict(np.zeros((8, 8, 3), np.uint8)) == []  # below MTCNN's window


def test_run_folder_mistakes_are_clear(tmp_path, trained_run):
    with pytest.raises(RunFolderError, match="does not exist"):
        Predictor.from_run(tmp_path / "nope")
    with pytest.raises(RunFolderError, match="config.yaml is missing"):
        Predictor.from_run(tmp_path)
    with pytest.raises(RunFolderError, match="export it first"):
        Predictor.from_run(trained_run, backend="onnx")
    with pytest.raises(RunFolderError, match="weights_only"):
        bad = tmp_path / "pickled.ckpt"
        torch.save({"state_dict": {"x": torch.zeros(1)}, "obj": Image.new("L", (1, 1))}, bad)
        read_state_dict(bad)


def test_weights_load_strictly_except_training_only_state(trained_run):
    cfg = OmegaConf.load(trained_run / ".hydra" / "config.yaml")
    state = read_state_dict(best_checkpoint(trained_run))
    model, _ = build_model(cfg)
    load_weights(model, {**state, "weighting.log_vars": torch.zeros(5)}, "ckpt")
    loaded = model.state_dict()
    assert all(torch.equal(loaded[k], v) for k, v in state.items())
    with pytest.raises(RunFolderError, match="unexpected.*tasks.extra"):
        load_weights(model, {**state, "tasks.extra.weight": torch.zeros(1)}, "ckpt")
    dropped = {k: v for k, v in state.items() if not k.startswith("tasks.race.")}
    with pytest.raises(RunFolderError, match="missing.*tasks.race"):
        load_weights(model, dropped, "ckpt")
    other, _ = build_model(compose_train([*SMALL_BKNET, "tasks=[age,gender]",
                                          "head.hidden=[32]"]))
    with pytest.raises(RunFolderError, match="does not fit"):
        load_weights(other, state, "ckpt")


# -- demo.py ------------------------------------------------------------------------------------


def test_demo_annotates_a_photo_and_writes_json(trained_run, astronaut, tmp_path, capsys):
    out, js = tmp_path / "out" / "annotated.jpg", tmp_path / "faces.jsonl"
    assert demo(["--run", str(trained_run), "-i", str(astronaut), "-o", str(out),
                 "--json", str(js)]) == 0
    printed = capsys.readouterr().out
    assert "face 0" in printed and "age" in printed
    annotated, original = cv2.imread(str(out)), cv2.imread(str(astronaut))
    assert annotated.shape == original.shape
    assert np.abs(annotated.astype(int) - original).max() > 100  # boxes and labels drawn
    (face,) = [json.loads(line) for line in js.read_text().splitlines()]  # one line per face
    assert face["image"] == str(astronaut) and face["face"] == 0 and face["score"] > 0.9
    x1, y1, x2, y2 = face["box"]
    assert 0 <= x1 < x2 <= 512 and 0 <= y1 < y2 <= 512
    assert list(face["tasks"]) == TASKS
    age = face["tasks"]["age"]
    assert 0 <= age["years"] <= 80 and age["label"] == age_group_name(age["bin"])
    assert sum(face["tasks"]["gender"]["probs"].values()) == pytest.approx(1, abs=1e-4)


def test_demo_prints_one_json_object_per_face_to_stdout(trained_run, astronaut, tmp_path,
                                                        capsys):
    pair = tmp_path / "pair.png"  # two people: two lines
    photo = np.asarray(Image.open(astronaut))
    Image.fromarray(np.concatenate([photo, photo[:, ::-1]], axis=1)).save(pair)
    assert demo(["--run", str(trained_run), "-i", str(pair), "--json"]) == 0
    faces = [json.loads(line) for line in capsys.readouterr().out.splitlines()]  # stdout: JSON only
    assert [f["face"] for f in faces] == [0, 1]
    assert faces[0]["box"][2] < 512 < faces[1]["box"][0]  # left to right, one per copy
    # The key=value form of the same command (every mtlface command takes it).
    assert demo([f"run={trained_run}", f"image={pair}", "--json"]) == 0
    assert [json.loads(line)["face"] for line in capsys.readouterr().out.splitlines()] == [0, 1]


def test_demo_says_when_there_is_no_face(trained_run, tmp_path, capsys):
    blank = tmp_path / "wall.png"
    Image.new("RGB", (320, 240), (120, 130, 140)).save(blank)
    assert demo(["--run", str(trained_run), "-i", str(blank), "-o", str(tmp_path / "o.png"),
                 "--json", str(tmp_path / "none.jsonl")]) == 1
    assert f"no face found in {blank}" in capsys.readouterr().err
    assert (tmp_path / "o.png").is_file() and (tmp_path / "none.jsonl").read_text() == ""


def test_demo_annotates_a_video(trained_run, astronaut, tmp_path, capsys):
    frame = cv2.imread(str(astronaut))
    clip = tmp_path / "clip.mp4"
    writer = cv2.VideoWriter(str(clip), cv2.VideoWriter_fourcc(*"mp4v"), 5, (512, 512))
    for shift in range(3):
        writer.write(np.roll(frame, 8 * shift, axis=1))
    writer.release()
    out = tmp_path / "annotated.mp4"
    assert demo(["--run", str(trained_run), "-v", str(clip), "-o", str(out), "--batch", "2"]) == 0
    printed = capsys.readouterr().out  # chunks of 2 and 1 frames
    assert "3 frames, 3 faces" in printed and "fps" in printed
    capture = cv2.VideoCapture(str(out))
    frames = []
    while (read := capture.read())[0]:
        frames.append(read[1])
    assert len(frames) == 3 and frames[0].shape == (512, 512, 3)
    assert np.abs(frames[0].astype(int) - frame).max() > 100


def test_demo_says_when_no_frame_of_a_video_has_a_face(trained_run, tmp_path, capsys):
    clip = tmp_path / "wall.avi"
    writer = cv2.VideoWriter(str(clip), cv2.VideoWriter_fourcc(*"MJPG"), 5, (160, 120))
    for grey in (90, 120):
        writer.write(np.full((120, 160, 3), grey, np.uint8))
    writer.release()
    out = tmp_path / "wall_out.avi"
    assert demo(["--run", str(trained_run), "-v", str(clip), "-o", str(out)]) == 1
    captured = capsys.readouterr()
    assert "2 frames, 0 faces" in captured.out
    assert "no face found in any of the 2 frames" in captured.err and out.is_file()


def test_onnx_backend_takes_a_thread_count(trained_run, tmp_path):
    path = export_run(trained_run, "onnx", out=tmp_path / "model.onnx").path
    one, default = OnnxBackend(path, threads=1), OnnxBackend(path)
    assert one.session.get_session_options().intra_op_num_threads == 1
    images = torch.randn(3, 1, 32, 32)
    for name, value in one(images).items():
        assert torch.allclose(value, default(images)[name], atol=1e-5)


def test_demo_folder_mode_writes_a_csv_and_resumes(trained_run, astronaut, tmp_path, capsys):
    photos = tmp_path / "photos"
    (photos / "sub").mkdir(parents=True)
    Image.open(astronaut).save(photos / "a.jpg")
    Image.open(astronaut).save(photos / "sub" / "b.png")
    Image.new("RGB", (200, 200), (90, 90, 90)).save(photos / "wall.png")
    (photos / "corrupt.jpg").write_bytes(b"garbage")
    (photos / "notes.txt").write_text("not an image")
    table = tmp_path / "predictions.csv"
    args = ["--run", str(trained_run), "--dir", str(photos), "--csv", str(table), "--no-progress"]
    assert demo(args) == 0
    summary = capsys.readouterr().out
    assert "4 images: 0 already in the CSV, 3 processed (2 faces, 1 without a face), 1 skipped" \
        in summary
    rows = list(csv.DictReader(table.open()))
    by_path = {r["path"]: r for r in rows}
    assert sorted(by_path) == ["a.jpg", "corrupt.jpg", "sub/b.png", "wall.png"]
    assert by_path["a.jpg"]["status"] == "ok" and by_path["a.jpg"]["gender"] in ("male", "female")
    assert 0 <= float(by_path["sub/b.png"]["age_years"]) <= 80
    assert by_path["wall.png"]["status"] == "no face"
    assert by_path["corrupt.jpg"]["status"].startswith("error: cannot read")
    before = table.read_text()

    assert demo(args) == 0  # a re-run skips every listed image
    assert "4 already in the CSV, 0 processed" in capsys.readouterr().out
    assert table.read_text() == before

    Image.open(astronaut).save(photos / "sub" / "c.jpg")
    with table.open("a") as handle:  # a killed run's half-written row
        handle.write("sub/c.jpg,ok,0,1")
    assert demo(args) == 0
    assert "4 already in the CSV, 1 processed (1 faces" in capsys.readouterr().out
    rows = list(csv.DictReader(table.open()))
    assert [r["path"] for r in rows].count("sub/c.jpg") == 1 and len(rows) == 5


def test_demo_folder_mode_counts_a_broken_link_as_skipped(trained_run, tmp_path, capsys):
    photos = tmp_path / "photos"
    photos.mkdir()
    Image.new("RGB", (200, 200), (90, 90, 90)).save(photos / "wall.png")
    (photos / "moved.jpg").symlink_to(tmp_path / "elsewhere" / "moved.jpg")
    table = tmp_path / "predictions.csv"
    assert demo(["--run", str(trained_run), "--dir", str(photos), "--csv", str(table),
                 "--no-progress"]) == 0
    captured = capsys.readouterr()
    assert ("2 images: 0 already in the CSV, 1 processed (0 faces, 1 without a face), 1 "
            "skipped (broken symbolic link, target missing: 1)") in captured.out
    assert "skipped moved.jpg: broken symbolic link, target missing" in captured.err
    by_path = {r["path"]: r["status"] for r in csv.DictReader(table.open())}
    assert by_path == {"moved.jpg": "error: broken symbolic link, target missing",
                       "wall.png": "no face"}


def test_demo_user_mistakes_exit_nonzero_with_a_message(trained_run, astronaut, tmp_path,
                                                       capsys):
    assert demo(["--run", str(tmp_path / "missing"), "-i", str(astronaut)]) == 1
    assert "error: run folder" in capsys.readouterr().err
    assert demo(["--run", str(trained_run), "-i", str(tmp_path / "nope.jpg")]) == 1
    assert "no such file" in capsys.readouterr().err
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"\x89PNG broken")
    assert demo(["--run", str(trained_run), "-i", str(broken)]) == 1
    assert "cannot read the image" in capsys.readouterr().err
    assert demo(["--run", str(trained_run), "--camera", "97", "-o", str(tmp_path / "c.mp4")]) == 1
    assert "cannot open camera 97" in capsys.readouterr().err
    (tmp_path / "bad.mp4").write_bytes(b"not a video")
    assert demo(["--run", str(trained_run), "-v", str(tmp_path / "bad.mp4"), "-o",
                 str(tmp_path / "v.mp4")]) == 1
    assert "cannot open it" in capsys.readouterr().err
    assert demo(["--run", str(trained_run), "-i", str(astronaut), "--device", "gpu9"]) == 2
    assert "--device gpu9: not a device" in capsys.readouterr().err
    with pytest.raises(SystemExit) as usage:
        demo(["--dir", str(tmp_path)])  # without --csv
    assert usage.value.code == 2


@pytest.mark.slow  # a fresh interpreter: ~10 s of imports
def test_demo_script_fails_without_a_traceback(astronaut, tmp_path):
    proc = subprocess.run([sys.executable, "demo.py", "--run", str(tmp_path / "none"), "-i",
                           str(astronaut)], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert proc.returncode != 0
    assert "error: run folder" in proc.stderr and "Traceback" not in proc.stderr
