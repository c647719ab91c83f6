"""Tasks declared in config, not code: a binary and a regression task that exist only in this
test's YAML train, evaluate, export to ONNX with parity and are predicted by the demo; the
declarations validate manifests; the csv source maps a user's own columns and values."""

import json

import numpy as np
import pandas as pd
import pytest
from omegaconf import open_dict
from PIL import Image

from conftest import SMALL_BKNET, compose_train, save_like_hydra
from mtlface.data.manifest import read_manifest, write_manifest
from mtlface.data.readers import CSVManifestReader
from mtlface.errors import ConfigError
from mtlface.labels import LabelSpec, declared_labels, label

SPECTACLES = """\
spectacles:
  _target_: mtlface.tasks.BinaryTask
  name: spectacles
  classes: ["bare", "glasses"]
  head: {_target_: mtlface.heads.MLPHead, _partial_: true, hidden: [32]}
"""
TINT = """\
tint:
  _target_: mtlface.tasks.RegressionTask
  name: tint
  value_range: [0, 1]
  head: {_target_: mtlface.heads.MLPHead, _partial_: true, hidden: [32]}
"""
CELEBA_SPLITS = "data.manifests.synthetic.sources.celeba_like.splits={train:480,val:160,test:160}"


@pytest.fixture(scope="module")
def own_conf(tmp_path_factory):
    """A config folder of the user's own, put on Hydra's search path."""
    folder = tmp_path_factory.mktemp("myconf")
    (folder / "tasks").mkdir()
    (folder / "tasks" / "spectacles.yaml").write_text(SPECTACLES)
    (folder / "tasks" / "tint.yaml").write_text(TINT)
    return folder


@pytest.fixture(scope="module")
def own_manifest(data_dir):
    """The CelebA-like synthetic faces with the user's own columns: ``spectacles`` (0 bare,
    1 glasses: the drawn eyeglasses) and ``tint`` (a number in [0, 1] that follows them)."""
    from hydra.utils import instantiate

    cfg = compose_train(["data=synthetic_celeba", CELEBA_SPLITS])
    path = instantiate(cfg.data.manifests.synthetic).prepare()
    frame = read_manifest(path)
    frame["spectacles"] = frame["eyeglasses"]
    frame["tint"] = 0.2 + 0.6 * frame["eyeglasses"].astype(float)
    frame["path"] = "../" + frame["path"]  # relative to the new manifest's folder
    return write_manifest(frame, path.parent / "declared" / "manifest.csv").parent, path.parent


def test_declarations_give_the_data_side_its_labels(own_conf):
    from omegaconf import OmegaConf

    tasks = OmegaConf.create(SPECTACLES + TINT)
    labels = declared_labels(tasks)
    assert labels["spectacles"] == LabelSpec("spectacles", ("bare", "glasses"))
    assert labels["tint"] == LabelSpec("tint", value_range=(0.0, 1.0))
    assert label("emotion").classes[3] == "happy"  # the shipped conventions are the configs
    with pytest.raises(ConfigError, match="tasks.hat: unknown task kind 'mtlface.tasks.Hat'"):
        declared_labels(OmegaConf.create({"hat": {"_target_": "mtlface.tasks.Hat"}}))


def test_a_declared_task_validates_its_manifest_column(tmp_path, caplog):
    frame = pd.DataFrame({"path": ["a.jpg", "b.jpg", "c.jpg", "d.jpg"], "source": "s",
                          "split": "train", "spectacles": [0, 1, 2, None],
                          "tint": [0.5, 1.5, None, 0.0]})
    path = write_manifest(frame, tmp_path / "manifest.csv")
    labels = {"spectacles": LabelSpec("spectacles", ("bare", "glasses")),
              "tint": LabelSpec("tint", value_range=(0.0, 1.0)),
              "wears_hat": LabelSpec("wears_hat", ("no", "yes"))}
    with caplog.at_level("INFO"):
        df = read_manifest(path, labels)
    assert df["spectacles"].tolist()[:2] == [0, 1] and df["spectacles"].isna().sum() == 2
    assert df["tint"].isna().tolist() == [False, True, True, False]
    assert df["wears_hat"].isna().all() and df.attrs["absent_labels"] == ["wears_hat"]
    text = caplog.text
    assert "skipped 1 (spectacles not in 0..1 (label blanked))" in text
    assert "skipped 1 (tint outside [0, 1] (label blanked))" in text
    assert "has no column for task(s) wears_hat" in text


def test_csv_source_maps_a_users_columns_and_values(tmp_path, caplog):
    for name in ("a", "b", "c", "d"):
        Image.new("RGB", (8, 8)).save(tmp_path / f"{name}.jpg")
    csv = tmp_path / "faces.csv"
    csv.write_text("path,Eyeglasses,Sex,split\na.jpg,1,F,train\nb.jpg,-1,M,train\n"
                   "c.jpg,maybe,M,test\nd.jpg,,X,val\n")
    reader = CSVManifestReader(csv, columns={"eyeglasses": "Eyeglasses", "gender": "Sex"},
                               value_maps={"eyeglasses": {-1: 0, 1: 1},
                                           "gender": {"M": 0, "F": 1}})
    with caplog.at_level("INFO"):
        df = reader.read().set_index("path")
    got = {p.rsplit("/", 1)[-1]: (e, g) for p, e, g in zip(df.index, df["eyeglasses"],
                                                            df["gender"])}
    assert got["a.jpg"] == (1, 1) and got["b.jpg"] == (0, 0)
    assert pd.isna(got["c.jpg"][0]) and got["c.jpg"][1] == 0  # "maybe" is no label
    assert pd.isna(got["d.jpg"][0]) and pd.isna(got["d.jpg"][1])
    assert df.attrs["skipped"]["eyeglasses: value not in source.value_maps.eyeglasses "
                               "(label blanked)"] == 1
    assert df.attrs["skipped"]["gender: value not in source.value_maps.gender (label blanked)"] == 1
    with pytest.raises(ConfigError, match=r"no column \['Glasses'\]"):
        CSVManifestReader(csv, columns={"eyeglasses": "Glasses"}).read()


def test_a_task_declared_only_in_a_users_yaml_trains_evaluates_exports_and_predicts(
        own_conf, own_manifest, astronaut, tmp_path, capsys):
    from mtlface.evaluate.cli import parse_args
    from mtlface.evaluate.run import evaluate
    from mtlface.export import PARITY_TOLERANCE, export_run
    from mtlface.predict.cli import main as demo
    from mtlface.predict.metadata import ModelInfo
    from mtlface.train import run

    manifest_dir, _ = own_manifest
    out = tmp_path / "run"
    out.mkdir()
    cfg = compose_train([f"hydra.searchpath=[file://{own_conf}]", "tasks=[gender,spectacles,tint]",
                         "data=synthetic_celeba", *SMALL_BKNET, "trainer.max_epochs=2",
                         "trainer.limit_train_batches=8", "trainer.accelerator=cpu",
                         "logger=csv", "calibrate=false"], output_dir=out)
    with open_dict(cfg):
        cfg.data.manifests = {"mine": str(manifest_dir / "manifest.csv")}
    results = run(cfg)
    save_like_hydra(cfg, out)
    assert {"test/spectacles/acc", "test/spectacles/f1", "test/tint/mae", "test/tint/ccc",
            "test/gender/acc"} <= set(results)

    evaluation = evaluate(parse_args([f"run={out}"]))
    assert evaluation.metrics["test/spectacles/count"] == 160
    assert 0 <= evaluation.metrics["test/tint/mae"] <= 1
    assert all(np.isfinite(v) for v in evaluation.metrics.values())  # no NaN acc gap for tint
    assert "| CCC |" in evaluation.report and "test/tint/acc_gap_gender" not in evaluation.metrics
    assert {p.name for p in evaluation.plots} >= {"confusion_spectacles.png", "tint_values.png",
                                                  "reliability_spectacles.png"}

    export = export_run(out, "onnx")
    assert export.max_abs_diff < PARITY_TOLERANCE
    kinds = {t["name"]: t["kind"] for t in ModelInfo.load(export.metadata).tasks}
    assert kinds == {"gender": "binary", "spectacles": "binary", "tint": "regression"}

    faces = tmp_path / "faces.jsonl"
    assert demo(["--run", str(out), "--backend", "onnx", "-i", str(astronaut),
                 "--json", str(faces)]) == 0
    (face,) = [json.loads(line) for line in faces.read_text().splitlines()]
    assert face["tasks"]["spectacles"]["label"] in ("bare", "glasses")
    assert np.isfinite(face["tasks"]["tint"]["value"])
    assert "tint" in capsys.readouterr().out


def test_cross_dataset_matrix_of_two_runs(trained_run, tmp_path, capsys):
    """Two runs (the session's run and a copy standing for a second training mix) on the
    default sources: one cell per run x source, each shared task's main metric."""
    import shutil

    import pandas as pd

    from mtlface.evaluate.matrix import main as matrix

    sweep = tmp_path / "sweep"
    for name in ("0", "1"):
        shutil.copytree(trained_run, sweep / name, ignore=shutil.ignore_patterns("eval"))
    out = tmp_path / "matrix"
    assert matrix([f"runs={sweep}", f"out={out}", "sources=[utk_like,genki_like]"]) == 0
    frame = pd.read_csv(out / "matrix.csv", dtype={"run": str})
    assert sorted(frame["run"].unique()) == ["0", "1"]
    assert set(frame["source"]) == {"utk_like", "genki_like"}
    utk = frame[(frame["run"] == "0") & (frame["source"] == "utk_like")].set_index("task")
    assert utk.loc["age", "metric"] == "mae" and utk.loc["gender", "metric"] == "acc"
    assert set(utk.index) == {"age", "gender", "race"}  # utk_like labels only these
    assert (frame[frame["source"] == "genki_like"]["task"] == "smile").all()
    # The same weights on the same rows: the two runs' cells agree.
    a, b = (frame[frame["run"] == r].set_index(["source", "task"])["value"] for r in "01")
    assert (a - b).abs().max() < 1e-9
    assert (out / "matrix.png").stat().st_size > 1000
    md = (out / "matrix.md").read_text()
    assert md.startswith("| run (training mix) |") and "age mae" in md
    assert "matrix.md" in capsys.readouterr().out
    with pytest.raises(SystemExit) as exit_:
        matrix([f"runs={tmp_path / 'nothing'}"])
    assert exit_.value.code == 1
    assert "neither a run folder nor a sweep folder" in capsys.readouterr().err


def test_a_model_trained_on_synthetic_faces_says_so(trained_run, astronaut, tmp_path, capsys):
    """Once in the demo, and in an export's metadata (which the Predictor reads back)."""
    from mtlface.data.provenance import SYNTHETIC_NOTICE, trained_on_synthetic_only
    from mtlface.export import export_run
    from mtlface.predict import Predictor
    from mtlface.predict.cli import main as demo
    from mtlface.predict.metadata import ModelInfo

    assert demo(["--run", str(trained_run), "-i", str(astronaut)]) == 0
    assert capsys.readouterr().err.count("trained on synthetic faces only") == 1
    export = export_run(trained_run, "onnx", out=tmp_path / "m.onnx")
    extra = ModelInfo.load(export.metadata).extra
    assert extra["trained_on"] == "synthetic only" and extra["notice"] == SYNTHETIC_NOTICE
    assert Predictor.from_exported(export.path).notice == SYNTHETIC_NOTICE
    real = {"data": {"manifests": {"mine": "/data/faces/manifest.csv",
                                   "synthetic": {"_target_": "mtlface.data.synthetic."
                                                              "SyntheticFaces"}}}}
    assert not trained_on_synthetic_only(real)  # one real source: no notice
    assert trained_on_synthetic_only({"data": {"manifests": {
        "synthetic": real["data"]["manifests"]["synthetic"]}}})


def test_shipped_task_sets_match_the_readers_columns():
    """celeba40 declares one binary task per CelebA attribute, named as the reader's columns;
    race7 and age_group have FairFace's classes in FairFace's order."""
    from fixtures_benchmarks import CELEBA_ATTRS, FAIRFACE_AGES, FAIRFACE_RACES
    from mtlface.factory import build_model

    model, _ = build_model(compose_train(["tasks=celeba40"]))
    assert list(model.tasks) == [a.lower() for a in CELEBA_ATTRS]
    assert {t.kind for t in model.tasks.values()} == {"binary"}
    assert len(label("race7").classes) == len(FAIRFACE_RACES) == 7
    assert [c.replace("_", " ") for c in label("race7").classes] == [
        r.lower().replace("_", " ") for r in FAIRFACE_RACES]
    assert label("age_group").classes[:-1] == FAIRFACE_AGES[:-1]
    assert label("valence").value_range == label("arousal").value_range == (-1.0, 1.0)
