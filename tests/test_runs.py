"""RunFolder: a run's layout, its best checkpoint as ModelCheckpoint recorded it, and the
checks that tell a finished run from one that is not."""

import json
from pathlib import Path

import pytest
import torch

from mtlface.analysis.runs import resolve_folders
from mtlface.runs import RunFolder, best_checkpoint, log_dir, recorded_best, runs_root

WEIGHTS = {"state_dict": {"w": torch.zeros(1)}}


def _save(path: Path, best: Path | None = None) -> Path:
    """A tiny checkpoint; with ``best``, ModelCheckpoint's state pointing at it."""
    state = dict(WEIGHTS)
    if best is not None:
        state["callbacks"] = {"ModelCheckpoint{'monitor': 'val/age/mae', 'mode': 'min'}":
                              {"best_model_path": str(best), "best_model_score": 3.0}}
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(state, path)
    return path


def _run(tmp_path: Path, finished: bool = True) -> RunFolder:
    run = RunFolder(tmp_path / "2026-01-01_00-00-00")
    run.config.parent.mkdir(parents=True)
    run.config.write_text("seed: 1\n")
    _save(run.checkpoints / "epoch01-score3.0000.ckpt")
    _save(run.last, best=run.checkpoints / "epoch01-score3.0000.ckpt")
    if finished:
        run.write_results({"test/score": 0.5})
    return run


def test_layout(tmp_path):
    run = RunFolder(tmp_path)
    assert run.config == tmp_path / ".hydra" / "config.yaml"
    assert run.hydra_config == tmp_path / ".hydra" / "hydra.yaml"
    assert run.overrides == tmp_path / ".hydra" / "overrides.yaml"
    assert run.last == tmp_path / "checkpoints" / "last.ckpt"
    assert run.results == tmp_path / "results.json"
    assert run.failed == tmp_path / "failed.json"
    assert run.calibration == tmp_path / "calibration.json"
    assert run.exported("onnx") == tmp_path / "export" / "model.onnx"
    assert run.exported("torchscript") == tmp_path / "export" / "model.pt"
    assert run.evaluation("synthetic-test") == tmp_path / "eval" / "synthetic-test"
    with pytest.raises(ValueError, match="unknown export format 'tflite'"):
        run.exported("tflite")
    assert RunFolder(str(tmp_path)) == run  # a str or a Path: the same folder


def test_containing_a_checkpoint_or_a_folder(tmp_path):
    run = _run(tmp_path)
    ckpt = run.checkpoints / "epoch01-score3.0000.ckpt"
    assert RunFolder.containing(ckpt) == (run, ckpt)
    assert RunFolder.containing(run.path) == (run, None)
    loose = _save(tmp_path / "elsewhere" / "model.ckpt")  # not under checkpoints/
    assert RunFolder.containing(loose) == (RunFolder(tmp_path / "elsewhere"), loose)


def test_finished_needs_config_kept_checkpoint_and_results(tmp_path):
    run = _run(tmp_path)
    assert run.is_run() and run.is_finished()
    assert run.read_results() == {"test/score": 0.5}
    run.results.unlink()  # still training (results.json is written last)
    assert run.is_run() and not run.is_finished()
    run.write_results({"test/score": 0.5})
    for kept in run.kept_checkpoints():
        kept.unlink()  # only last.ckpt: nothing ModelCheckpoint kept by the objective
    assert not run.is_finished()
    assert not RunFolder(tmp_path / "nothing").is_run()


def test_best_is_the_one_model_checkpoint_recorded(tmp_path):
    """With several kept checkpoints the one last.ckpt records wins, whatever the names say
    (mode=min: the lowest score is the best); without a record the caller must choose."""
    run = RunFolder(tmp_path)
    low = _save(run.checkpoints / "epoch00-score3.0000.ckpt")
    _save(run.checkpoints / "epoch01-score7.0000.ckpt")
    with pytest.raises(ValueError, match=r"several checkpoints .* no record of the best one"):
        run.best_checkpoint()
    _save(run.last, best=Path("/moved/elsewhere/checkpoints") / low.name)  # a moved run
    assert recorded_best(run.last) == low.name
    assert run.best_checkpoint() == low
    assert best_checkpoint(tmp_path) == low
    assert best_checkpoint(run.checkpoints) == low  # the checkpoints folder itself


def test_one_kept_checkpoint_and_last_only(tmp_path, caplog):
    run = RunFolder(tmp_path)
    _save(run.last)
    with caplog.at_level("WARNING"):
        assert run.best_checkpoint() == run.last  # none kept: last.ckpt, said in the log
    assert "no best checkpoint" in caplog.text
    only = _save(run.checkpoints / "epoch03-score0.1000.ckpt")
    assert run.best_checkpoint() == only


def test_recorded_best_of_an_unreadable_or_plain_file(tmp_path):
    (tmp_path / "last.ckpt").write_bytes(b"cut short")
    assert recorded_best(tmp_path / "last.ckpt") is None
    assert recorded_best(_save(tmp_path / "plain.ckpt")) is None


def test_missing_config_is_a_file_not_found(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"has no \.hydra/config\.yaml"):
        RunFolder(tmp_path).load_config()
    assert _run(tmp_path).load_config().seed == 1


def test_group_choice_from_hydra_record(tmp_path):
    run = RunFolder(tmp_path)
    assert run.group_choice("data") is None
    run.hydra_config.parent.mkdir(parents=True)
    run.hydra_config.write_text("hydra:\n  runtime:\n    choices:\n      data: utkface\n")
    assert run.group_choice("data") == "utkface"
    assert run.group_choice("backbone") is None


def test_log_dir_follows_the_environment(tmp_path, monkeypatch):
    monkeypatch.delenv("MTLFACE_LOG_DIR", raising=False)
    assert runs_root() == Path("outputs") / "runs"
    monkeypatch.setenv("MTLFACE_LOG_DIR", str(tmp_path))
    assert log_dir() == tmp_path and runs_root() == tmp_path / "runs"
    (tmp_path / "multiruns" / "sweep").mkdir(parents=True)
    # The analysis looks where train.py writes, not next to the source tree.
    assert resolve_folders("", kinds=["multiruns"]) == [tmp_path / "multiruns" / "sweep"]


def test_results_are_json_floats(tmp_path):
    run = RunFolder(tmp_path)
    run.write_results({"val/score": 1})
    assert json.loads(run.results.read_text()) == {"val/score": 1}
    assert run.read_results() == {"val/score": 1.0}


def test_the_analysis_finds_outputs_from_a_subfolder(tmp_path, monkeypatch):
    """A notebook runs in notebooks/: the runs train.py wrote are in ../outputs."""
    monkeypatch.delenv("MTLFACE_LOG_DIR", raising=False)
    (tmp_path / "outputs" / "runs" / "a").mkdir(parents=True)
    (tmp_path / "notebooks").mkdir()
    monkeypatch.chdir(tmp_path / "notebooks")
    assert resolve_folders("", kinds=["runs"]) == [tmp_path / "outputs" / "runs" / "a"]
    monkeypatch.chdir(tmp_path)
    assert resolve_folders("", kinds=["runs"]) == [Path("outputs") / "runs" / "a"]


def test_the_checkpoint_callback_writes_where_run_folder_looks(tmp_path):
    from conftest import compose_train

    cfg = compose_train(output_dir=tmp_path)
    assert Path(cfg.callbacks.model_checkpoint.dirpath) == RunFolder(tmp_path).checkpoints
    assert cfg.callbacks.model_checkpoint.save_last  # last.ckpt records the best
