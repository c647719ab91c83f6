"""Export to TorchScript and ONNX: named outputs per task, a dynamic batch axis, parity with
PyTorch, and the exported models behind ``Predictor`` (ONNX without Lightning)."""

import copy
import json
import subprocess
import sys

import numpy as np
import pytest
import torch
from omegaconf import OmegaConf, open_dict

from conftest import ROOT, SMALL_BKNET, compose_train
from mtlface.export import PARITY_TOLERANCE, export_run, main as export_main, random_inputs
from mtlface.predict import Predictor
from mtlface.predict.metadata import ModelInfo
from mtlface.train import build_model


def make_run(folder, overrides):
    """A run folder as train.py leaves it (config + checkpoint), with untrained weights:
    export only has to reproduce whatever the weights compute."""
    cfg = compose_train(overrides)
    model, _ = build_model(cfg)
    (folder / "checkpoints").mkdir(parents=True)
    torch.save({"state_dict": model.state_dict()},
               folder / "checkpoints" / "epoch00-score0.5000.ckpt")
    task_cfg = copy.deepcopy(cfg)
    with open_dict(task_cfg):
        del task_cfg["hydra"]
    (folder / ".hydra").mkdir()
    (folder / ".hydra" / "config.yaml").write_text(OmegaConf.to_yaml(task_cfg))
    return folder


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    return make_run(tmp_path_factory.mktemp("run"), [*SMALL_BKNET, "tasks.age.readout=ordinal"])


@pytest.fixture(scope="module")
def exports(run_dir):
    """Both formats exported once into the run's export/ folder (where from_run looks)."""
    return {fmt: export_run(run_dir, fmt) for fmt in ("onnx", "torchscript")}


def test_torchscript_export_has_named_outputs_and_matches_pytorch(run_dir, tmp_path):
    result = export_run(run_dir, "torchscript", out=tmp_path / "m.pt")
    assert result.max_abs_diff < PARITY_TOLERANCE
    scripted = torch.jit.load(str(result.path))
    out = scripted(random_inputs(ModelInfo.load(result.metadata).input_spec, batch=5, seed=3))
    assert list(out) == ["age", "gender", "smile", "emotion", "race"]
    assert out["age"].shape == (5, 4) and out["emotion"].shape == (5, 7)  # ordinal: K-1 logits
    meta = json.loads(result.metadata.read_text())
    assert meta["parity_max_abs_diff"] == result.max_abs_diff
    assert meta["input_spec"]["size"] == 32 and meta["input_spec"]["channels"] == 1


def test_onnx_export_names_outputs_by_task_and_matches_pytorch(run_dir, exports):
    import onnxruntime as ort

    result = exports["onnx"]
    assert result.path == run_dir / "export" / "model.onnx"
    assert result.max_abs_diff < PARITY_TOLERANCE
    session = ort.InferenceSession(str(result.path), providers=["CPUExecutionProvider"])
    assert [o.name for o in session.get_outputs()] == ["age", "gender", "smile", "emotion", "race"]
    (inp,) = session.get_inputs()
    assert inp.name == "image" and isinstance(inp.shape[0], str)  # dynamic batch
    assert inp.shape[1:] == [1, 32, 32]


def test_exported_models_predict_like_the_checkpoint(run_dir, exports, astronaut):
    reference = Predictor.from_run(run_dir).predict(astronaut)
    assert len(reference) == 1
    for backend in ("onnx", "torchscript"):
        faces = Predictor.from_run(run_dir, backend=backend).predict(astronaut)
        assert len(faces) == 1 and faces[0].box == pytest.approx(reference[0].box)
        for task, pred in reference[0].tasks.items():
            assert faces[0][task].label == pred.label
            assert faces[0][task].probs == pytest.approx(pred.probs, abs=1e-4)
        assert faces[0]["age"].years == pytest.approx(reference[0]["age"].years, abs=1e-3)


@pytest.mark.slow  # a fresh interpreter: ~10 s of imports
def test_onnx_predictor_runs_without_lightning(exports, astronaut):
    path = exports["onnx"].path
    code = ("import sys; from mtlface import Predictor; "
            f"faces = Predictor.from_exported({str(path)!r}).predict({str(astronaut)!r}); "
            "print(len(faces), 'pytorch_lightning' in sys.modules)")
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.split()[-2:] == ["1", "False"]


@pytest.mark.parametrize("overrides", [
    ["tasks=[age,gender]", "tasks.age.regression=true", "backbone=lmtcnn", "head=linear"],
    pytest.param(["tasks=[smile]", "backbone=levi_hassner"], marks=pytest.mark.slow),
])
def test_export_parity_for_other_backbones_and_readouts(tmp_path, overrides):
    run_dir = make_run(tmp_path / "run", overrides)
    assert export_run(run_dir, "torchscript").max_abs_diff < PARITY_TOLERANCE
    assert export_run(run_dir, "onnx").max_abs_diff < PARITY_TOLERANCE


def test_export_cli_reports_parity_and_refuses_bad_arguments(run_dir, tmp_path, capsys):
    assert export_main([f"run={run_dir}", "format=torchscript", f"out={tmp_path / 'x.pt'}"]) == 0
    printed = capsys.readouterr().out
    assert "max abs difference" in printed and ": ok" in printed
    assert (tmp_path / "x.pt").is_file() and (tmp_path / "x.pt.json").is_file()
    assert export_main([f"run={run_dir}", "format=tflite"]) == 2
    assert "format must be one of onnx, torchscript" in capsys.readouterr().err
    assert export_main([f"run={tmp_path / 'none'}", "format=onnx"]) == 1  # not an argument
    assert "does not exist" in capsys.readouterr().err
    assert export_main(["format=onnx"]) == 2
    assert "run=... is required" in capsys.readouterr().err
    assert export_main(["run", "x"]) == 2


@pytest.mark.slow  # a fresh interpreter: ~10 s of imports
def test_export_module_entry_point(run_dir, tmp_path):
    proc = subprocess.run([sys.executable, "-m", "mtlface.export", f"run={run_dir}",
                           "format=torchscript", f"out={tmp_path / 'cli.pt'}"], cwd=ROOT,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "parity with PyTorch" in proc.stdout and (tmp_path / "cli.pt").is_file()
    assert np.isfinite(json.loads((tmp_path / "cli.pt.json").read_text())["parity_max_abs_diff"])
