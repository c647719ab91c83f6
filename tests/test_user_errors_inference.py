"""One error style for demo, evaluate, export and pseudo-label: a user mistake ends with one
``error: ...`` line on stderr and exit code 2 (an argument) or 1 (anything else), never a
traceback unless asked for (--debug, HYDRA_FULL_ERROR=1); outputs are checked before any
work. Tests run as root, where chmod does not stop writes: an unwritable path here is one
under a regular file, or under /proc."""

import os
import shutil
import subprocess
import sys

import pytest
import torch

from conftest import ROOT
from mtlface.errors import DEBUG_ENV
from mtlface.evaluate.cli import main as evaluate
from mtlface.export import main as export
from mtlface.predict import RunFolderError
from mtlface.predict.cli import main as demo
from mtlface.predict.runs import newest_run
from mtlface.pseudo_label import main as pseudo_label

NO_GPU = pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")


@pytest.fixture(autouse=True)
def no_debug(monkeypatch):
    """One-line errors, whatever the environment (and an earlier --debug) says."""
    monkeypatch.setenv(DEBUG_ENV, "0")
    monkeypatch.delenv("HYDRA_FULL_ERROR", raising=False)


@pytest.fixture
def photo(astronaut):
    return astronaut


@pytest.fixture
def blocked(tmp_path):
    """A folder path that cannot be created: its parent is a regular file."""
    (tmp_path / "file.txt").write_text("not a folder")
    return tmp_path / "file.txt" / "out"


@pytest.fixture(scope="module")
def source_manifest(trained_run, data_dir):
    return next(data_dir.glob("synthetic/*/manifest.csv"))


@pytest.fixture
def no_model_load(monkeypatch):
    """Loading a model fails the test: the mistake must be found before that work."""

    def refuse(*args, **kwargs):
        raise AssertionError("the model was loaded before the mistake was reported")

    monkeypatch.setattr("mtlface.predict.cli.Predictor.from_run", refuse)
    monkeypatch.setattr("mtlface.export.build_trained_model", refuse)
    monkeypatch.setattr("mtlface.evaluate.run.build_trained_model", refuse)
    monkeypatch.setattr("mtlface.pseudo_label.load_run", refuse)


def one_error(capsys, code, command, args):
    """The single ``error:`` line ``command(args)`` prints, after checking its exit code."""
    try:
        got = command(args)
    except SystemExit as exc:  # argparse
        got = exc.code
    err = capsys.readouterr().err.strip()
    assert got == code, err
    assert err.startswith("error: ") and "\n" not in err and "Traceback" not in err, err
    return err


def truncated_copy(run, folder):
    """A copy of ``run`` whose best checkpoint lost its second half (a copy cut short)."""
    copy = shutil.copytree(run, folder)
    ckpt = next((copy / "checkpoints").glob("epoch*.ckpt"))
    data = ckpt.read_bytes()
    ckpt.write_bytes(data[: len(data) // 2])
    return copy, ckpt


# -- unwritable outputs: reported before the model is loaded ---------------------------------


def test_demo_unwritable_image_output_names_the_folder_not_the_extension(
        trained_run, photo, blocked, no_model_load, capsys):
    err = one_error(capsys, 1, demo, ["--run", str(trained_run), "-i", str(photo), "-o",
                                      str(blocked / "a.jpg")])
    assert f"{blocked.parent}: not a folder" in err and "-o" in err
    assert ".png" not in err  # the extension is fine
    err = one_error(capsys, 1, demo, ["--run", str(trained_run), "-i", str(photo), "-o",
                                      "/proc/mtlface-test/annotated.jpg"])
    assert "/proc" in err and "pass another path with -o" in err


def test_demo_unwritable_json_and_csv(trained_run, photo, blocked, no_model_load, capsys):
    err = one_error(capsys, 1, demo, ["--run", str(trained_run), "-i", str(photo), "--json",
                                      str(blocked / "faces.jsonl")])
    assert "JSON predictions" in err and "--json" in err
    err = one_error(capsys, 1, demo, ["--run", str(trained_run), "--dir", str(photo.parent),
                                      "--csv", str(blocked / "predictions.csv")])
    assert "predictions CSV" in err and "--csv" in err


def test_demo_output_type_is_an_argument_mistake(trained_run, photo, tmp_path, no_model_load,
                                                 capsys):
    err = one_error(capsys, 2, demo, ["--run", str(trained_run), "-i", str(photo), "-o",
                                      str(tmp_path / "annotated.txt")])
    assert "-o" in err and ".jpg" in err


def test_export_unwritable_out(trained_run, blocked, no_model_load, capsys):
    err = one_error(capsys, 1, export, [f"run={trained_run}", "format=onnx",
                                        f"out={blocked / 'model.onnx'}"])
    assert "not a folder" in err and "out=" in err


def test_evaluate_unwritable_out(trained_run, blocked, no_model_load, capsys):
    err = one_error(capsys, 1, evaluate, [f"run={trained_run}", f"out={blocked}"])
    assert "not a folder" in err and "out=" in err


def test_pseudo_label_unwritable_output(trained_run, source_manifest, blocked, no_model_load,
                                        capsys):
    err = one_error(capsys, 1, pseudo_label, [f"run={trained_run}",
                                              f"source_manifest={source_manifest}",
                                              f"output={blocked / 'pseudo.csv'}"])
    assert "not a folder" in err and "output=" in err


# -- a GPU asked for on a machine without one ---------------------------------------------------


@NO_GPU
def test_cuda_without_a_gpu_says_to_use_the_cpu(trained_run, photo, source_manifest,
                                                no_model_load, capsys):
    err = one_error(capsys, 1, demo, ["--run", str(trained_run), "-i", str(photo), "--device",
                                      "cuda"])
    assert "--device cuda: no CUDA device" in err and "use --device cpu" in err
    err = one_error(capsys, 1, evaluate, [f"run={trained_run}", "device=cuda"])
    assert "device=cuda: no CUDA device" in err and "use device=cpu" in err
    err = one_error(capsys, 1, pseudo_label, [f"run={trained_run}", "device=cuda",
                                              f"source_manifest={source_manifest}"])
    assert "no CUDA device" in err and "use device=cpu" in err


# -- a missing run, a damaged checkpoint --------------------------------------------------------


def test_a_missing_run_is_one_line(tmp_path, photo, capsys):
    missing = tmp_path / "no-such-run"
    assert "does not exist" in one_error(capsys, 1, demo, ["--run", str(missing), "-i",
                                                           str(photo)])
    assert "does not exist" in one_error(capsys, 1, evaluate, [f"run={missing}"])
    assert "does not exist" in one_error(capsys, 1, export, [f"run={missing}", "format=onnx"])


def test_a_truncated_checkpoint_is_one_line(trained_run, photo, source_manifest, tmp_path,
                                            capsys):
    run, ckpt = truncated_copy(trained_run, tmp_path / "run")
    for command, args in [
        (demo, ["--run", str(run), "-i", str(photo)]),
        (evaluate, [f"run={ckpt}", f"out={tmp_path / 'eval'}"]),
        (export, [f"run={run}", "format=onnx", f"checkpoint={ckpt}",
                  f"out={tmp_path / 'model.onnx'}"]),
        (pseudo_label, [f"run={run}", f"source_manifest={source_manifest}",
                        f"output={tmp_path / 'pseudo.csv'}"]),
    ]:
        err = one_error(capsys, 1, command, args)
        assert str(ckpt) in err and "damaged or not a model checkpoint" in err


# -- argument mistakes: exit 2 -----------------------------------------------------------------


def test_argument_mistakes_exit_2(trained_run, photo, source_manifest, capsys):
    assert "format must be one of onnx, torchscript" in one_error(
        capsys, 2, export, [f"run={trained_run}", "format=tflite"])
    assert "run=... is required" in one_error(capsys, 2, export, ["format=onnx"])
    assert "unknown split" in one_error(capsys, 2, evaluate, [f"run={trained_run}",
                                                              "split=dev"])
    assert "threshold must be in (0, 1]" in one_error(
        capsys, 2, pseudo_label, [f"run={trained_run}", f"source_manifest={source_manifest}",
                                  "threshold=2"])
    assert "run=" in one_error(capsys, 2, pseudo_label, ["threshold=0.5"])
    assert "--device gpu9: not a device" in one_error(
        capsys, 2, demo, ["--run", str(trained_run), "-i", str(photo), "--device", "gpu9"])


@pytest.mark.parametrize("score", ["5", "-0.1", "nan", "high"])
def test_min_score_is_a_probability(score, capsys):
    err = one_error(capsys, 2, demo, ["-i", "x.jpg", "--min-score", score])
    assert "--min-score" in err


def test_min_score_accepts_zero_to_one():
    from mtlface.predict.cli import build_parser

    for score in ("0", "0.5", "1"):
        assert build_parser().parse_args(["--min-score", score]).min_score == float(score)


# -- tracebacks when asked for ------------------------------------------------------------------


def test_debug_and_hydra_full_error_show_the_exception(tmp_path, photo, monkeypatch):
    missing = str(tmp_path / "no-such-run")
    with pytest.raises(RunFolderError):
        demo(["--debug", "--run", missing, "-i", str(photo)])
    monkeypatch.setenv(DEBUG_ENV, "0")
    with pytest.raises(RunFolderError):
        export(["--debug", f"run={missing}", "format=onnx"])
    monkeypatch.setenv(DEBUG_ENV, "0")
    monkeypatch.setenv("HYDRA_FULL_ERROR", "1")
    with pytest.raises(RunFolderError):
        evaluate([f"run={missing}"])


@pytest.mark.slow  # fresh interpreters: ~10 s of imports each
def test_commands_end_with_one_line_and_no_traceback(tmp_path, photo):
    missing = str(tmp_path / "no-such-run")
    env = {k: v for k, v in os.environ.items() if k not in (DEBUG_ENV, "HYDRA_FULL_ERROR")}
    commands = [
        ["demo.py", "--run", missing, "-i", str(photo)],
        ["evaluate.py", f"run={missing}"],
        ["-m", "mtlface.export", f"run={missing}", "format=onnx"],
        ["-m", "mtlface.pseudo_label", f"run={missing}", f"source_manifest={photo}"],
    ]
    for args in commands:
        proc = subprocess.run([sys.executable, *args], cwd=ROOT, capture_output=True, text=True,
                              timeout=180, env=env)
        assert proc.returncode == 1, (args, proc.stderr[-2000:])
        lines = proc.stderr.strip().splitlines()
        assert lines[-1].startswith("error: ") and "Traceback" not in proc.stderr, args
    proc = subprocess.run([sys.executable, "demo.py", "--debug", "--run", missing, "-i",
                           str(photo)], cwd=ROOT, capture_output=True, text=True, timeout=180,
                          env=env)
    assert proc.returncode == 1 and "Traceback" in proc.stderr
    assert "RunFolderError" in proc.stderr


# -- the demo's default run ---------------------------------------------------------------------


def make_runs(trained_run, root):
    """``root/outputs/runs`` with a finished run and a newer unfinished one (a one-step
    ``debug=fast`` run: only ``last.ckpt``, no ``results.json``)."""
    runs = root / "outputs" / "runs"
    finished = shutil.copytree(trained_run, runs / "2026-01-01_10-00-00")
    unfinished = shutil.copytree(trained_run, runs / "2026-01-02_10-00-00")
    (unfinished / "results.json").unlink()
    for ckpt in (unfinished / "checkpoints").glob("epoch*.ckpt"):
        ckpt.unlink()
    os.utime(finished / ".hydra" / "config.yaml", (1_700_000_000, 1_700_000_000))
    return finished, unfinished


def test_the_default_run_is_the_newest_finished_one(trained_run, photo, tmp_path, monkeypatch,
                                                    capsys):
    finished, unfinished = make_runs(trained_run, tmp_path)
    monkeypatch.chdir(tmp_path)
    assert newest_run().name == finished.name
    assert demo(["-i", str(photo)]) == 0
    err = capsys.readouterr().err
    relative = os.path.join("outputs", "runs", finished.name)
    assert f"using run {relative} (newest finished run under outputs/runs)" in err
    shutil.rmtree(finished)
    with pytest.raises(RunFolderError, match=r"no finished run under outputs/runs/ \(1 unfinished"):
        newest_run()
