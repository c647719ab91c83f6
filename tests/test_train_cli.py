"""``python train.py`` as a user types it: sweeps without extra Hydra settings, debug runs that
leave nothing behind, and one ``error:`` line for every user mistake."""

import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import torch

from conftest import ROOT, TINY_SOURCES
from mtlface.memory import check_fits, estimate
from mtlface.errors import ConfigError


def train_py(args, tmp_path: Path, data_dir: Path, timeout=600):
    """train.py in a fresh interpreter, runs under ``tmp_path/outputs`` by environment (the
    command's own Hydra settings stay as they are)."""
    env = {**os.environ, "MTLFACE_DATA_DIR": str(data_dir),
           "MTLFACE_LOG_DIR": str(tmp_path / "outputs"), "TMPDIR": str(tmp_path / "tmp")}
    env.pop("HYDRA_FULL_ERROR", None)
    (tmp_path / "tmp").mkdir(exist_ok=True)
    return subprocess.run([sys.executable, "train.py", *args], cwd=ROOT, capture_output=True,
                          text=True, timeout=timeout, env=env)


@pytest.mark.integration
def test_a_multirun_works_as_typed_and_writes_its_summary(data_dir, tmp_path):
    proc = train_py(["-m", "age_bins.num_bins=3,5", "debug=fast", *TINY_SOURCES], tmp_path,
                    data_dir)
    assert proc.returncode == 0, proc.stderr[-3000:]
    (sweep,) = (tmp_path / "tmp" / "mtlface-debug" / "multiruns").iterdir()
    summary = pd.read_csv(sweep / "summary.csv")
    assert list(summary["age_bins.num_bins"]) == [3, 5]
    assert any(c.startswith("test/age/") for c in summary), list(summary)  # every task validated
    assert not list(sweep.rglob("*.ckpt"))  # debug=fast saves no checkpoint


@pytest.mark.integration
def test_debug_fast_leaves_nothing_behind(data_dir, tmp_path):
    proc = train_py(["debug=fast", "tasks=[age,gender]", *TINY_SOURCES], tmp_path, data_dir)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "test/score" in proc.stdout  # the results are printed
    assert not (tmp_path / "outputs").exists()
    assert list((tmp_path / "tmp" / "mtlface-debug" / "runs").iterdir()) == []


# Each user mistake: (command-line arguments, exit code, words the one line must hold).
MISTAKES = {
    "type": (["trainer.max_epochs=abc"], 2, "trainer.max_epochs=abc is not a whole number"),
    "seed": (["seed=x"], 2, "seed=x is not a whole number"),
    "bool": (["test=maybe"], 2, "test=maybe is not true or false"),
    "range": (["model.optimizer.lr=-1", "debug=fast"], 2, "model.optimizer: Invalid learning"),
    "batch": (["data.batch_size=0", "debug=fast"], 2, "data.batch_size must be >= 1"),
    "group": (["backbone=nope"], 2, "unknown backbone 'nope'"),
    "cache": (["data=utkface", "debug=fast"], 1, "python preprocess.py source=utkface"),
    "init_from": (["init_from=/nonexistent", "debug=fast"], 1,
                  "init_from=/nonexistent: no run folder or checkpoint"),
    "required": (["experiment=keras_mtl_emotion"], 2, "required value(s) not set: init_from"),
    "gpu": (["trainer.accelerator=gpu", "debug=fast"], 2, "no CUDA GPU"),
    "memory": (["backbone=efficientnet_b4", "tasks=[age,gender]", "data.batch_size=4096",
                "debug=fast"], 2, "lower data.batch_size"),
}


@pytest.mark.integration
@pytest.mark.skipif(torch.cuda.is_available(), reason="the gpu case needs a machine without one")
@pytest.mark.parametrize("name", list(MISTAKES))
def test_a_user_mistake_ends_with_one_error_line(data_dir, tmp_path, name):
    args, code, words = MISTAKES[name]
    own_data = any(a.startswith(("data=", "experiment=")) for a in args)
    proc = train_py([*args, *(() if own_data else TINY_SOURCES)], tmp_path, data_dir)
    assert proc.returncode == code, proc.stderr[-3000:]
    assert "Traceback" not in proc.stderr
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith("error: ") and words in last, proc.stderr[-3000:]
    assert [line for line in proc.stderr.splitlines() if line.startswith("error:")] == [last]


@pytest.mark.integration
def test_debug_flag_shows_the_traceback(data_dir, tmp_path):
    proc = train_py(["trainer.max_epochs=abc", "--debug"], tmp_path, data_dir)
    assert proc.returncode != 0
    assert "Traceback" in proc.stderr and "ConfigError" in proc.stderr


@pytest.mark.integration
def test_resume_from_a_damaged_checkpoint_is_one_line(data_dir, tmp_path):
    run_dir = tmp_path / "run"
    proc = train_py([f"hydra.run.dir={run_dir}", "trainer.max_epochs=1",
                     "trainer.limit_train_batches=1", "trainer.limit_val_batches=1",
                     "test=false", "backbone.widths=[8,8,8,8]", *TINY_SOURCES],
                    tmp_path, data_dir)
    assert proc.returncode == 0, proc.stderr[-3000:]
    last = run_dir / "checkpoints" / "last.ckpt"
    last.write_bytes(last.read_bytes()[: last.stat().st_size // 2])
    proc = train_py([f"resume={run_dir}", "trainer.max_epochs=2"], tmp_path, data_dir)
    assert proc.returncode == 1
    assert proc.stderr.strip().splitlines()[-1].startswith(f"error: resume={run_dir}: ")
    assert "damaged" in proc.stderr and "Traceback" not in proc.stderr


def test_help_lists_the_groups_train_takes_and_not_preprocessing_ones():
    proc = subprocess.run([sys.executable, "train.py", "--help"], cwd=ROOT, capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 0
    groups = {p.name for p in (ROOT / "conf").iterdir() if p.is_dir()}
    for group in groups - {"source", "detector", "hydra", "paths"}:
        assert f"{group}:" in proc.stdout, group
    for group in ("source", "detector"):
        assert f"{group}:" not in proc.stdout
    assert "python train.py -m age_bins.num_bins=3,5,10" in proc.stdout


def test_the_memory_probe_measures_what_autograd_keeps_and_leaves_the_model_as_it_was():
    from mtlface.backbones import BKNet

    model = BKNet(in_chans=1, input_size=48)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    small, large = estimate(model, (1, 48, 48)), estimate(model, (1, 96, 96))
    assert 0 < small.per_sample < large.per_sample  # 4x the pixels, about 4x the activations
    assert 3 < large.per_sample / small.per_sample < 5
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    assert model.training
    check_fits(model, (1, 48, 48), batch_size=8)  # fits: returns quietly
    with pytest.raises(ConfigError, match=r"data.batch_size=10000000 needs about .* lower "):
        check_fits(model, (1, 48, 48), batch_size=10_000_000)
