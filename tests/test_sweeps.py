"""Sweeps: failed jobs recorded (not fatal), summaries written at the end of every multirun
(basic and Optuna sweeper), and mtlface.analysis on hand-made run folders."""

import json
import os
import runpy
import statistics
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import yaml

from conftest import ROOT, SMALL_BKNET, TINY_SOURCES
from mtlface.analysis import (
    load_curves,
    load_runs,
    resolve_folders,
    summarize,
    trials,
    write_summary,
)
from mtlface.analysis.__main__ import main as analysis_cli

pytestmark = pytest.mark.integration  # subprocess-heavy: .ci/run's second tier

# A real multirun that logs curves: age_bins.num_bins=1 fails at model build (both seeds),
# num_bins=3 trains twice (seeds 1, 2) for 2 epochs of 2 batches.
TINY_SWEEP = (*TINY_SOURCES, *SMALL_BKNET, "tasks=[age,gender]", "trainer.max_epochs=2",
              "trainer.limit_train_batches=2", "trainer.limit_val_batches=1",
              "trainer.limit_test_batches=1", "+trainer.num_sanity_val_steps=0",
              "trainer.accelerator=cpu", "data.batch_size=16", "data.eval_batch_size=32",
              "age_bins.num_bins=1,3", "seed=1,2")


def train_py(args, data_dir):
    cmd = [sys.executable, "train.py", "-m", *args]
    return subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=600,
                          env={**os.environ, "MTLFACE_DATA_DIR": str(data_dir)})


def run_tiny_sweep(base: Path, data_dir: Path) -> Path:
    """The TINY_SWEEP folder, run once per session (tests/test_notebooks.py reads it too)."""
    sweep = base / "tiny_sweep"
    if not (sweep / "summary.md").is_file():
        proc = train_py([*TINY_SWEEP, f"hydra.sweep.dir={sweep}"], data_dir)
        (base / "tiny_sweep.log").write_text(proc.stdout + proc.stderr)
        assert proc.returncode == 0, proc.stderr[-3000:]
    return sweep


@pytest.fixture(scope="module")
def tiny_sweep(tmp_path_factory, data_dir):
    return run_tiny_sweep(tmp_path_factory.getbasetemp(), data_dir)


def _job_bins(job: Path) -> int:
    overrides = yaml.safe_load((job / ".hydra/overrides.yaml").read_text())
    return int(next(o for o in overrides if o.startswith("age_bins.num_bins=")).split("=")[1])


def test_failed_job_is_recorded_and_the_sweep_summarised(tiny_sweep):
    jobs = sorted(p for p in tiny_sweep.iterdir() if p.is_dir())
    assert [j.name for j in jobs] == ["0", "1", "2", "3"]
    for job in jobs:
        if _job_bins(job) == 1:
            record = json.loads((job / "failed.json").read_text())
            assert "num_bins must be >= 2" in record["cause"]
            assert "Traceback" in record["traceback"] and record["error"]
            assert not (job / "results.json").exists()
        else:
            assert (job / "results.json").is_file() and not (job / "failed.json").exists()
    log = (tiny_sweep.parent / "tiny_sweep.log").read_text()
    assert "the sweep goes on" in log and "sweep summary:" in log

    # every metric's mean ± std recomputed from the jobs' own results.json
    results = [json.loads((j / "results.json").read_text()) for j in jobs if _job_bins(j) == 3]
    summary = pd.read_csv(tiny_sweep / "summary.csv")
    assert "seed" not in summary.columns  # a repeat axis, averaged over
    rows = summary.set_index("age_bins.num_bins")
    assert rows.loc[1, ["n", "failed"]].tolist() == [0, 2]
    assert rows.loc[3, ["n", "failed"]].tolist() == [2, 0]
    assert set(results[0]) == {c[:-5] for c in summary.columns if c.endswith("_mean")}
    for key in results[0]:
        values = [r[key] for r in results]
        assert rows.loc[3, f"{key}_mean"] == pytest.approx(statistics.mean(values)), key
        assert rows.loc[3, f"{key}_std"] == pytest.approx(statistics.stdev(values)), key
        assert pd.isna(rows.loc[1, f"{key}_mean"])
    text = (tiny_sweep / "summary.md").read_text()
    assert "| 1 | 0 | 2 | — |" in text
    scores = [r["val/score"] for r in results]
    mean, std = statistics.mean(scores), statistics.stdev(scores)
    assert f"| 3 | 2 | 0 | {mean:.4f} ± {std:.4f} |" in text
    assert "## Failed runs" in text and text.count("num_bins must be >= 2") == 2


def test_a_single_run_still_fails_loudly(data_dir, tmp_path, monkeypatch, capsys):
    # in-process (train.py as __main__): the same exit path as the command, without a new
    # interpreter importing torch again
    monkeypatch.setattr(sys, "argv", ["train.py", "debug=fast", "age_bins.num_bins=1",
                                      f"hydra.run.dir={tmp_path}"])
    with pytest.raises(SystemExit) as exit_info:
        runpy.run_path(str(ROOT / "train.py"), run_name="__main__")
    assert exit_info.value.code == 2  # a config value: one error line, exit 2
    err = capsys.readouterr().err
    assert "num_bins must be >= 2" in err and "Traceback" not in err
    assert not (tmp_path / "failed.json").exists()


def test_unknown_group_option_is_still_caught_before_hydra(data_dir):
    proc = train_py(["backbone=nope", "hparams_search=optuna"], data_dir)
    assert proc.returncode != 0
    assert "unknown backbone 'nope'" in proc.stderr and "hparams_search" not in proc.stderr


def test_optuna_sweep_marks_a_failed_trial_and_goes_on(data_dir, tmp_path):
    # TPE seeded by seed=0 draws num_bins 3 then 1: one trial trains, one raises.
    args = ["hparams_search=optuna", "hydra.sweeper.n_trials=2", "seed=0", "debug=fast",
            "tasks=[age]", "age_bins.num_bins=choice(1,3)", *TINY_SOURCES,
            *(o for o in SMALL_BKNET if not o.startswith("head.dropout")),  # searched
            f"hydra.sweep.dir={tmp_path}"]
    proc = train_py(args, data_dir)
    assert proc.returncode == 0, proc.stderr[-3000:]
    log = proc.stdout + proc.stderr
    assert "Failed experiment: Return value must be float-castable" in log  # told FAIL
    failed = [j for j in tmp_path.iterdir() if (j / "failed.json").is_file()]
    done = [j for j in tmp_path.iterdir() if (j / "results.json").is_file()]
    assert len(failed) == len(done) == 1
    best = yaml.safe_load((tmp_path / "optimization_results.yaml").read_text())
    score = json.loads((done[0] / "results.json").read_text())["val/score"]
    assert best["best_value"] == pytest.approx(score)
    assert set(best["best_params"]) >= {"model.optimizer.lr", "weighting", "age_bins.num_bins"}

    table = pd.read_csv(tmp_path / "summary.csv")
    assert table["status"].tolist() == ["ok", "failed"]  # best first, failed last
    assert table.loc[0, "val/score"] == pytest.approx(score)
    assert "model.optimizer.lr" in table.columns
    assert "best value" in (tmp_path / "summary.md").read_text()


# --- mtlface.analysis on hand-made run folders --------------------------------------------


def make_run(path: Path, overrides, results=None, failed=None, csv=None) -> Path:
    (path / ".hydra").mkdir(parents=True)
    (path / ".hydra/overrides.yaml").write_text(yaml.safe_dump(list(overrides)))
    (path / ".hydra/config.yaml").write_text("objective: val/score\n")
    if results is not None:
        (path / "results.json").write_text(json.dumps(results))
    if failed is not None:
        (path / "failed.json").write_text(json.dumps(failed))
    if csv is not None:
        (path / "csv").mkdir()
        (path / "csv/metrics.csv").write_text(csv)
    return path


def test_real_kfold_sweep_on_synthetic_folds_summarises_one_row(data_dir, tmp_path):
    """``folds=3`` on a synthetic source and ``-m data.fold=0,1,2``: three cross-validation
    runs, each testing on its own fold, summarised as one row over the folds."""
    sweep = tmp_path / "kfold"
    proc = train_py([*TINY_SOURCES, *SMALL_BKNET, "tasks=[age,gender,race]",
                     "data.sources=[utk_like]", "data.manifests.synthetic.sources.utk_like.folds=3",
                     "trainer.max_epochs=1", "trainer.limit_train_batches=2",
                     "trainer.limit_val_batches=1", "+trainer.num_sanity_val_steps=0",
                     "trainer.accelerator=cpu", "data.batch_size=16", "data.eval_batch_size=320",
                     "data.fold=0,1,2", f"hydra.sweep.dir={sweep}"], data_dir)
    assert proc.returncode == 0, proc.stderr[-3000:]
    results = [json.loads((sweep / str(k) / "results.json").read_text()) for k in range(3)]
    accs = [r["test/race/acc"] for r in results]
    summary = pd.read_csv(sweep / "summary.csv")
    assert len(summary) == 1 and summary.loc[0, "n"] == 3 and summary.loc[0, "failed"] == 0
    assert summary.loc[0, "test/race/acc_mean"] == pytest.approx(statistics.mean(accs))
    assert summary.loc[0, "test/race/acc_std"] == pytest.approx(statistics.stdev(accs))


def test_kfold_sweep_is_one_row_of_mean_and_std_over_folds(tmp_path, capsys):
    accs = [0.61, 0.64, 0.58, 0.66, 0.60]
    for fold, acc in enumerate(accs):
        make_run(tmp_path / str(fold), ["experiment=x", f"data.fold={fold}"],
                 {"val/score": acc + 0.01, "test/age/acc": acc, "test/age/loss": 1.0})
    analysis_cli([str(tmp_path), "--metrics", "test/age/acc"])
    summary = pd.read_csv(tmp_path / "summary.csv")
    assert len(summary) == 1 and summary.loc[0, "n"] == 5 and summary.loc[0, "failed"] == 0
    assert summary.loc[0, "test/age/acc_mean"] == pytest.approx(statistics.mean(accs))
    assert summary.loc[0, "test/age/acc_std"] == pytest.approx(statistics.stdev(accs))
    text = (tmp_path / "summary.md").read_text()
    row = f"| 5 | 0 | {statistics.mean(accs):.4f} ± {statistics.stdev(accs):.4f} |"
    assert row in text and row in capsys.readouterr().out
    assert "test/age/loss" not in text  # --metrics chose the columns; the csv has them all
    assert "test/age/loss_mean" in summary.columns


def test_grouping_by_swept_values_counts_every_failure(tmp_path):
    results = {(3, 1): 0.5, (3, 2): 0.7, (10, 1): 0.2}
    for i, ((bins, seed), acc) in enumerate(results.items()):
        make_run(tmp_path / str(i), [f"age_bins.num_bins={bins}", f"seed={seed}"],
                 {"test/age/acc": acc})
    make_run(tmp_path / "3", ["age_bins.num_bins=10", "seed=2"],
             failed={"error": "RuntimeError", "message": "out of memory"})
    make_run(tmp_path / "4", ["age_bins.num_bins=5", "seed=1"])  # died: no results.json
    runs = load_runs(tmp_path)
    assert runs["status"].tolist() == ["ok", "ok", "ok", "failed", "failed"]
    assert runs.loc[3, "error"] == "RuntimeError: out of memory"
    assert "no results.json" in runs.loc[4, "error"]

    summary = summarize(runs).set_index("age_bins.num_bins")
    assert summary.index.tolist() == [3, 5, 10]  # numeric order
    assert summary["n"].tolist() == [2, 0, 1] and summary["failed"].tolist() == [0, 1, 1]
    assert summary.loc[3, "test/age/acc_mean"] == pytest.approx(0.6)
    assert summary.loc[3, "test/age/acc_std"] == pytest.approx(statistics.stdev([0.5, 0.7]))
    assert pd.isna(summary.loc[10, "test/age/acc_std"])  # one run: no spread
    # seed as a compared value instead of a repeat axis
    by_both = summarize(runs, over=())
    assert {"age_bins.num_bins", "seed"} <= set(by_both.columns) and len(by_both) == 5


def test_a_run_and_a_sweep_load_together(tmp_path):
    single = make_run(tmp_path / "runs/2026-01-01_00-00-00", ["tasks=[age]"],
                      {"test/age/acc": 0.5})
    make_run(tmp_path / "multiruns/s/0", ["tasks=[age]", "seed=1"], {"test/age/acc": 0.6})
    make_run(tmp_path / "multiruns/s/1", ["tasks=[age]", "seed=2"], {"test/age/acc": 0.7})
    runs = load_runs([single, tmp_path / "multiruns/s"])
    assert runs["run"].tolist() == ["2026-01-01_00-00-00", "s/0", "s/1"]
    assert runs["sweep"].isna().tolist() == [True, False, False]
    assert runs["tasks"].tolist() == ["[age]"] * 3
    assert len(load_runs(tmp_path)) == 3  # a folder of folders: every run under it


def test_learning_curves_in_long_form(tmp_path):
    csv = "epoch,step,train/loss_epoch,val/age/acc\n0,9,1.5,\n0,9,,0.4\n1,19,1.2,\n1,19,,0.5\n"
    make_run(tmp_path / "0", ["seed=1"], {"val/age/acc": 0.5}, csv=csv)
    make_run(tmp_path / "1", ["seed=2"], {"val/age/acc": 0.5})  # debug=fast: no csv
    curves = load_curves(tmp_path)
    assert curves.columns.tolist() == ["run", "epoch", "step", "key", "value"]
    acc = curves[curves["key"] == "val/age/acc"]
    assert acc["epoch"].tolist() == [0, 1] and acc["value"].tolist() == [0.4, 0.5]
    assert set(curves["run"]) == {f"{tmp_path.name}/0"} and len(curves) == 4


def test_optuna_trials_follow_the_sweep_direction(tmp_path):
    for i, loss in enumerate([0.3, None, 0.1]):
        make_run(tmp_path / str(i), [f"model.optimizer.lr={0.001 * (i + 1)}"],
                 None if loss is None else {"val/score": loss})
        (tmp_path / str(i) / ".hydra/hydra.yaml").write_text(
            "hydra:\n  sweeper:\n    direction: minimize\n")
    (tmp_path / "optimization_results.yaml").write_text(
        "name: optuna\nbest_params:\n  model.optimizer.lr: 0.003\nbest_value: 0.1\n")
    write_summary(tmp_path)
    table = pd.read_csv(tmp_path / "summary.csv")
    assert table["run"].tolist() == [f"{tmp_path.name}/{i}" for i in (2, 0, 1)]
    assert "minimize `val/score`): best value 0.1" in (tmp_path / "summary.md").read_text()
    assert trials(load_runs(tmp_path), "val/score")["run"].iloc[0].endswith("/0")  # maximize


def test_bad_inputs_name_the_problem(tmp_path, capsys):
    with pytest.raises(FileNotFoundError, match="no such run or sweep folder: .*nowhere"):
        load_runs(tmp_path / "nowhere")
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="empty: no runs in it"):
        load_runs(tmp_path / "empty")
    run = make_run(tmp_path / "s/0", ["seed=1"])
    (run / "results.json").write_text("{not json")
    assert load_runs(tmp_path / "s").loc[0, "error"].startswith("results.json unreadable")
    make_run(tmp_path / "s/1", ["seed=2"], {"val/score": 0.5})
    with pytest.raises(ValueError, match="unknown metric.*val/nope; the runs have: val/score"):
        summarize(load_runs(tmp_path / "s"), metrics=["val/nope"])
    with pytest.raises(SystemExit) as exit_info:
        analysis_cli([str(tmp_path / "s"), "--metrics", "val/nope"])
    assert exit_info.value.code == 1 and "error: unknown metric" in capsys.readouterr().err


def test_notebook_folders_default_to_the_newest_run_and_sweep(tmp_path):
    for i, kind in enumerate(["runs/a", "runs/b", "multiruns/x", "multiruns/y"]):
        (tmp_path / kind).mkdir(parents=True)
        os.utime(tmp_path / kind, (1000 + i, 1000 + i))
    (tmp_path / "weighting").mkdir()  # not a run folder kind: ignored
    assert resolve_folders("", outputs=tmp_path) == [tmp_path / "runs/b", tmp_path / "multiruns/y"]
    assert resolve_folders(f"p{os.pathsep}q") == [Path("p"), Path("q")]
    with pytest.raises(FileNotFoundError, match="nothing under .*multiruns.* MTLFACE_RUNS"):
        resolve_folders("", kinds=["multiruns"], outputs=tmp_path / "weighting")
