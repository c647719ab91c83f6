"""Evaluation of a trained run (python -m mtlface.evaluate): the metric functions on hand-made
predictions with known answers, then a tiny real run evaluated end to end and checked against
Lightning's own test loop and against independent recomputation from the saved predictions."""

import json
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from conftest import ROOT, TINY_SOURCES
from mtlface.data.manifest import read_manifest, write_manifest
from mtlface.evaluate import compute_metrics, group_gaps, group_table, reliability, task_metrics
from mtlface.evaluate.cli import main, parse_args
from mtlface.evaluate.metrics import expected_calibration_error
from mtlface.evaluate.run import evaluate
from mtlface.labels import label
from mtlface.tasks import AgeBins, AgeTask, BinaryTask, MulticlassTask

TASKS = ["age", "gender", "smile", "emotion", "race"]
GENDER = BinaryTask("gender", 1, label("gender").classes)
ADIENCE8 = AgeBins.from_groups([[0, 2], [4, 6], [8, 12], [15, 20], [25, 32], [38, 43],
                                [48, 53], [60, 100]])


def gender_table():
    """Five faces from two sources, worked out by hand in the test below."""
    conf = [0.85, 0.75, 0.65, 0.55, 0.95]
    return pd.DataFrame({
        "source": ["a", "a", "a", "b", "b"],
        "gender": pd.array([0, 0, 1, 1, 1], dtype="Int64"),
        "race": pd.array([0, 0, 1, 1, None], dtype="Int64"),
        "gender_true": pd.array([0, 0, 1, 1, 1], dtype="Int64"),
        "gender_pred": [0, 1, 1, 1, 0],
        "gender_conf": conf,
        "gender_p0": [0.85, 0.25, 0.35, 0.45, 0.95],
        "gender_p1": [0.15, 0.75, 0.65, 0.55, 0.05],
    })


def test_classification_metrics_match_a_hand_computation():
    m = task_metrics(gender_table(), GENDER, ece_bins=10)
    assert m["count"] == 5 and m["acc"] == pytest.approx(3 / 5)
    # male: tp 1, fp 1, fn 1 -> F1 1/2; female: tp 2, fp 1, fn 1 -> 2/3
    assert m["f1"] == pytest.approx((1 / 2 + 2 / 3) / 2)
    # One prediction per confidence bin: ECE = mean |correct - confidence|.
    assert m["ece"] == pytest.approx((0.15 + 0.75 + 0.35 + 0.45 + 0.95) / 5)
    bins = reliability(gender_table(), "gender", ece_bins=10)
    assert bins["count"].tolist() == [0] * 5 + [1] * 5
    assert bins["accuracy"][5:].tolist() == [1, 1, 0, 1, 0]
    assert expected_calibration_error(bins) == pytest.approx(m["ece"])


def test_pooled_and_per_source_keys_and_a_task_nobody_labels():
    table = gender_table().assign(smile_true=pd.array([None] * 5, dtype="Int64"))
    infos = {"gender": GENDER, "smile": BinaryTask("smile", 1)}
    metrics, skipped = compute_metrics(table, infos, "test", ece_bins=10)
    assert metrics["test/a/gender/acc"] == pytest.approx(2 / 3)
    assert metrics["test/b/gender/acc"] == pytest.approx(1 / 2)
    assert metrics["test/gender/count"] == 5
    assert list(skipped) == ["smile"] and "no evaluated test row" in skipped["smile"]
    assert not [k for k in metrics if "smile" in k]  # not evaluated: no NaN keys either
    assert all(np.isfinite(v) for v in metrics.values())


def test_group_accuracy_and_gap_by_hand():
    groups = group_table(gender_table(), {"gender": GENDER}, "test")
    race = groups[groups["attribute"] == "race"].set_index("group")
    assert race["count"].to_dict() == {"white": 2, "black": 2}  # the unlabelled row is out
    assert race["acc"].to_dict() == {"white": 0.5, "black": 1.0}
    gender = groups[groups["attribute"] == "gender"].set_index("group")
    assert gender["acc"].to_dict() == pytest.approx({"male": 1 / 2, "female": 2 / 3})
    gaps = group_gaps(groups, min_count=1)
    assert gaps["test/gender/acc_gap_race"] == pytest.approx(0.5)
    assert "test/gender/acc_gap_race" not in group_gaps(groups, min_count=3)


def test_adience_eight_groups_exact_one_off_and_mae():
    info = AgeTask(1, ADIENCE8)
    years = np.array([1.0, 17.0, 28.0, 80.0])  # groups 0, 3, 4, 7
    pred_years = np.array([5.0, 17.0, 50.0, 40.0])  # groups 1, 3, 6, 5
    probs = np.full((4, 8), 0.05)
    pred = np.array([1, 3, 6, 5])
    probs[np.arange(4), pred] = 0.65
    table = pd.DataFrame({**info.table_targets(years), "age_pred": pred,
                          "age_pred_years": pred_years, "age_conf": probs.max(1),
                          **{f"age_p{k}": probs[:, k] for k in range(8)}})
    assert table["age_true"].tolist() == [0, 3, 4, 7]
    m = task_metrics(table, info)
    assert m["acc"] == pytest.approx(1 / 4)       # only the 17-year-old
    assert m["acc_1off"] == pytest.approx(2 / 4)  # one adjacent group off counts; two do not
    assert m["mae"] == pytest.approx((4 + 0 + 22 + 40) / 4)
    assert m["ece"] == pytest.approx(abs(0.65 - 0.25))
    # Age by regression has no class probabilities: no ECE.
    regression = AgeTask(1, ADIENCE8, readout="regression")
    assert "ece" not in task_metrics(table, regression)


def test_a_perfect_model_scores_perfectly():
    info = MulticlassTask("emotion", 1, label("emotion").classes)
    labels = np.arange(7).repeat(3)
    table = pd.DataFrame({"source": "x", "emotion_true": pd.array(labels, dtype="Int64"),
                          "emotion_pred": labels, "emotion_conf": 1.0})
    m = task_metrics(table, info)
    assert (m["acc"], m["f1"], m["ece"]) == (1.0, 1.0, 0.0)


# ----------------------------------------------------------------- a real run, end to end


@pytest.fixture(scope="module")
def evaluated(trained_run):
    return evaluate(parse_args([f"run={trained_run}"]))


def test_evaluation_reproduces_lightnings_test_metrics(evaluated, trained_run):
    reference = json.loads((trained_run / "results.json").read_text())
    for task in TASKS:
        for metric in ("acc", "f1", "acc_1off", "mae"):
            key = f"test/{task}/{metric}"
            if key in reference:
                assert evaluated.metrics[key] == pytest.approx(reference[key], abs=1e-4), key
    assert not evaluated.not_evaluated


def test_metrics_agree_with_the_saved_predictions(evaluated):
    folder, metrics = evaluated.folder, evaluated.metrics
    table = pd.read_csv(folder / "predictions.csv")
    assert len(table) == 4 * 160  # every test image of the four tiny sources
    for task in TASKS:
        rows = table[table[f"{task}_true"].notna()]
        pred, true = rows[f"{task}_pred"].to_numpy(int), rows[f"{task}_true"].to_numpy(int)
        k = len([c for c in table if c.startswith(f"{task}_p") and c[len(task) + 2:].isdigit()])
        confusion = np.zeros((k, k), int)
        np.add.at(confusion, (true, pred), 1)
        assert metrics[f"test/{task}/acc"] == pytest.approx(np.trace(confusion) / len(rows))
        # Pooled = count-weighted mean of the per-source values; counts add up.
        sources = sorted(rows["source"].unique())
        counts = [metrics[f"test/{s}/{task}/count"] for s in sources]
        assert sum(counts) == metrics[f"test/{task}/count"] == len(rows)
        assert metrics[f"test/{task}/acc"] == pytest.approx(
            sum(n * metrics[f"test/{s}/{task}/acc"] for n, s in zip(counts, sources)) / len(rows))
        # ECE from first principles: 15 equal-width bins of the predicted class's probability.
        conf, correct = rows[f"{task}_conf"].to_numpy(), pred == true
        which = np.minimum((conf * 15).astype(int), 14)
        ece = sum(abs(correct[which == b].mean() - conf[which == b].mean()) * (which == b).sum()
                  for b in np.unique(which)) / len(rows)
        assert metrics[f"test/{task}/ece"] == pytest.approx(ece, abs=1e-6)
    age = table[table["age_true"].notna()]
    assert metrics["test/age/mae"] == pytest.approx(
        (age["age_pred_years"] - age["age_true_years"]).abs().mean(), abs=1e-5)
    # The files carry the same numbers.
    saved = json.loads((folder / "metrics.json").read_text())["metrics"]
    long = pd.read_csv(folder / "metrics.csv")
    assert dict(zip(long["key"], long["value"])) == pytest.approx(saved)
    assert saved == pytest.approx(metrics)


def test_group_counts_add_up_to_the_labelled_rows(evaluated):
    table = pd.read_csv(evaluated.folder / "predictions.csv")
    groups = pd.read_csv(evaluated.folder / "groups.csv")
    for (task, attribute), part in groups.groupby(["task", "attribute"]):
        both = table[table[f"{task}_true"].notna() & table[attribute].notna()]
        assert part["count"].sum() == len(both)
        assert (part["count"] * part["acc"]).sum() == pytest.approx(
            (both[f"{task}_pred"] == both[f"{task}_true"]).sum())
        gap = evaluated.metrics.get(f"test/{task}/acc_gap_{attribute}")
        big = part[part["count"] >= 10]
        assert gap == pytest.approx(big["acc"].max() - big["acc"].min())
    # Race is labelled only by utk_like: every task of its rows is broken down by race.
    assert set(groups[groups["attribute"] == "race"]["task"]) == {"age", "gender", "race"}


def test_plots_are_real_images_and_the_report_covers_every_task(evaluated):
    names = {p.name for p in evaluated.plots}
    expected = ({f"confusion_{t}.png" for t in TASKS} | {f"reliability_{t}.png" for t in TASKS}
                | {"age_years.png"})
    assert names == expected
    for path in evaluated.plots:
        assert path.parent == evaluated.folder and path.stat().st_size > 10_000
        with Image.open(path) as image:
            image.verify()
        with Image.open(path) as image:
            assert image.format == "PNG" and min(image.size) >= 300
            assert len(set(image.convert("L").getdata())) > 10  # drawn, not blank
    report = (evaluated.folder / "report.md").read_text()
    assert report == evaluated.report
    for task in TASKS:
        assert f"| {task} | **all** |" in report
    assert "By race" in report and "By gender" in report
    assert evaluated.folder == evaluated.folder.parent.parent / "eval" / "data-test"


def test_another_source_and_split_from_a_manifest_with_a_task_it_lacks(trained_run, data_dir,
                                                                     tmp_path):
    manifest = next(data_dir.glob("synthetic/*/manifest.csv"))
    result = evaluate(parse_args([f"run={trained_run}", f"manifest={manifest}", "split=val",
                                  "sources=[utk_like]", "plots=false",
                                  f"out={tmp_path / 'utk'}"]))
    assert result.folder == tmp_path / "utk" and not result.plots
    assert set(result.not_evaluated) == {"smile", "emotion"}
    assert result.metrics["val/utk_like/race/count"] == 160
    assert not [k for k in result.metrics if "smile" in k or "emotion" in k]
    assert "smile: not evaluated" in result.report


def test_a_data_option_composes_as_train_does(trained_run, tmp_path):
    overrides = [f"data.{o.split('data.', 1)[1]}" for o in TINY_SOURCES]  # same cache
    result = evaluate(parse_args([f"run={trained_run}", "data=synthetic", *overrides,
                                  "sources=[genki_like]", "plots=false"]))
    assert result.folder.name == "genki_like-test"
    assert list(result.table["source"].unique()) == ["genki_like"]
    assert result.metrics["test/smile/count"] == 160


def test_a_checkpoint_file_stands_for_its_run(trained_run):
    last = trained_run / "checkpoints" / "last.ckpt"
    result = evaluate(parse_args([f"run={last}", "sources=[genki_like]", "plots=false",
                                  "name=last"]))
    assert result.folder == trained_run / "eval" / "last"
    assert json.loads((result.folder / "metrics.json").read_text())["checkpoint"] == str(last)


def test_missing_images_are_counted_in_the_report(trained_run, data_dir, tmp_path):
    manifest = next(data_dir.glob("synthetic/*/manifest.csv"))
    rows = read_manifest(manifest)
    rows = rows[(rows["source"] == "genki_like") & (rows["split"] == "test")].copy()
    rows["path"] = [str(manifest.parent / p) for p in rows["path"]]
    rows.iloc[0, rows.columns.get_loc("path")] = str(tmp_path / "gone.jpg")
    write_manifest(rows, tmp_path / "m" / "manifest.csv")
    result = evaluate(parse_args([f"run={trained_run}", f"manifest={tmp_path / 'm'}",
                                  "plots=false"]))
    assert result.metrics["test/smile/count"] == 159
    assert "genki_like/test: skipped 1 (image file missing)" in result.report


def error_of(capsys, *args, code=2):
    """The one-line error of evaluating with ``args``; ``code``: 2 for a mistake in the
    options, 1 for anything else (a missing run or checkpoint)."""
    assert main(list(args)) == code
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and err.count("\n") == 0, err
    return err


def test_bad_input_gives_one_line_errors(trained_run, data_dir, tmp_path, capsys):
    err = error_of(capsys, f"run={tmp_path / 'nope'}", code=1)
    assert "does not exist" in err and "nope" in err
    untrained = tmp_path / "untrained"
    (untrained / ".hydra").mkdir(parents=True)
    (untrained / ".hydra" / "config.yaml").write_text(
        (trained_run / ".hydra" / "config.yaml").read_text())
    assert "no checkpoint" in error_of(capsys, f"run={untrained}", code=1)
    assert "unknown split 'dev'" in error_of(capsys, f"run={trained_run}", "split=dev")
    err = error_of(capsys, f"run={trained_run}", "sources=[nobody]")
    assert "nobody" in err and "utk_like" in err
    assert "unknown data 'nowhere'" in error_of(capsys, f"run={trained_run}", "data=nowhere")
    assert "bogus" in error_of(capsys, f"run={trained_run}", "bogus=1")
    assert "run=" in error_of(capsys, "split=test")
    # A manifest that labels none of the run's tasks.
    manifest = next(data_dir.glob("synthetic/*/manifest.csv"))
    rows = read_manifest(manifest)
    rows = rows[rows["split"] == "test"].assign(**{t: np.nan for t in TASKS})
    rows["path"] = [str(manifest.parent / p) for p in rows["path"]]
    write_manifest(rows, tmp_path / "unlabelled.csv")
    err = error_of(capsys, f"run={trained_run}", f"manifest={tmp_path / 'unlabelled.csv'}")
    assert "nothing to evaluate" in err and "labelled" in err


def test_root_script_prints_its_help():
    out = subprocess.run([sys.executable, str(ROOT / "evaluate.py"), "--help"],
                         capture_output=True, text=True, timeout=60, cwd=ROOT)
    assert out.returncode == 0 and "python -m mtlface.evaluate run=" in out.stdout
