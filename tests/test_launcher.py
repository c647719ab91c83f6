"""Sweeps through hydra-submitit-launcher: the SLURM config agrees with the Trainer's DDP shape
(checked on the sbatch script submitit writes), and a real sweep runs with the local executor."""

import json
import os
import stat
import subprocess
import sys

import pytest
import submitit
from hydra.utils import instantiate
from hydra_plugins.hydra_submitit_launcher.config import BaseQueueConf
from omegaconf import OmegaConf

from conftest import ROOT, compose_train
from mtlface.train import _check_launch, build_trainer

SOURCE = "data.manifests.synthetic.sources"
# The one small source test_resume.py and test_ddp.py use too (one generated cache).
ONE_SOURCE = (f"~{SOURCE}.imdb_like", f"~{SOURCE}.genki_like", f"~{SOURCE}.fer_like",
              f"{SOURCE}.utk_like.splits={{train:64,val:33,test:33}}",
              f"{SOURCE}.utk_like.image_size=32", "tasks=[age,gender,race]", "data.shares=null")


def test_slurm_launcher_takes_its_job_shape_from_the_trainer(tmp_path, monkeypatch):
    cfg = compose_train(["trainer=ddp", "trainer.devices=4", "trainer.num_nodes=2",
                         "hydra/launcher=slurm", "hydra.launcher.partition=gpu",
                         f"hydra.sweep.dir={tmp_path}"])
    assert cfg.trainer.strategy == "ddp"
    launcher = instantiate(cfg.hydra.launcher)
    assert type(launcher).__name__ == "SlurmLauncher"  # (Hydra's plugin loader re-imports it)
    params = launcher.params
    assert (params["nodes"], params["tasks_per_node"], params["gpus_per_node"]) == (2, 4, 4)
    assert params["submitit_folder"] == f"{tmp_path}/.submitit/%j"

    # The sbatch script submitit writes for these parameters, mapped as the plugin's launch()
    # maps them (shared names as they are, the others with the executor's prefix). submitit
    # only builds a SLURM executor where `srun` exists: a stand-in on PATH.
    fake_bin = tmp_path / "bin"
    fake_bin.mkdir()
    (fake_bin / "srun").write_text("#!/bin/sh\n")
    (fake_bin / "srun").chmod(stat.S_IRWXU)
    monkeypatch.setenv("PATH", f"{fake_bin}{os.pathsep}{os.environ['PATH']}")
    executor = submitit.AutoExecutor(folder=tmp_path / "submitit", cluster="slurm")
    shared = set(OmegaConf.structured(BaseQueueConf).keys())
    executor.update_parameters(**{k if k in shared else f"slurm_{k}": v
                                  for k, v in params.items()
                                  if k not in ("submitit_folder", "max_num_timeout")})
    script = executor._executor._make_submission_file_text("python -u train.py", "uid")
    for line in ("--nodes=2", "--ntasks-per-node=4", "--gpus-per-node=4", "--partition=gpu",
                 "--time=240", "--cpus-per-task=4", "--mem=32GB"):
        assert f"#SBATCH {line}\n" in script, line


def test_cpu_ddp_on_slurm_asks_for_no_gpu():
    cfg = compose_train(["trainer=ddp", "trainer.accelerator=cpu", "hydra/launcher=slurm",
                         "hydra.launcher.gpus_per_node=0"])
    assert instantiate(cfg.hydra.launcher).params["tasks_per_node"] == 2  # trainer=ddp's devices
    assert instantiate(cfg.hydra.launcher).params["gpus_per_node"] == 0


def test_local_launcher_composes():
    cfg = compose_train(["hydra/launcher=local"])
    assert type(instantiate(cfg.hydra.launcher)).__name__ == "LocalLauncher"


@pytest.mark.integration  # submitit jobs in subprocesses
def test_a_sweep_runs_as_submitit_jobs_on_this_machine(data_dir, tmp_path):
    cmd = [sys.executable, "train.py", "-m", "hydra/launcher=local", "hydra.launcher.timeout_min=5",
           "debug=fast", "seed=1,2", f"hydra.sweep.dir={tmp_path}", *ONE_SOURCE]
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=600,
                          env={**os.environ, "MTLFACE_DATA_DIR": str(data_dir)})
    assert proc.returncode == 0, proc.stderr[-3000:]
    for job, seed in ((0, 1), (1, 2)):
        assert f"seed={seed}" in (tmp_path / str(job) / ".hydra" / "overrides.yaml").read_text()
        assert "test/age/acc" in json.loads((tmp_path / str(job) / "results.json").read_text())
    # Each job ran in its own submitit process, with its own log.
    logs = sorted(tmp_path.glob(".submitit/*/*_0_log.out"))
    assert len(logs) == 2


def test_a_sweep_job_refuses_to_launch_its_own_ddp_processes(tmp_path):
    # Lightning would re-run the command line (-m and all) for rank 1: a sweep inside a sweep.
    cfg = compose_train(["trainer=ddp", "trainer.accelerator=cpu", "hydra.mode=MULTIRUN"],
                        output_dir=tmp_path)
    with pytest.raises(ValueError, match="cannot start its own 2 DDP processes: sweep with "
                                         "hydra/launcher=slurm"):
        _check_launch(build_trainer(cfg))
    _check_launch(build_trainer(compose_train(["trainer=ddp", "trainer.accelerator=cpu"],
                                              output_dir=tmp_path)))  # a single run may
