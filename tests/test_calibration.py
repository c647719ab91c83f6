"""Calibration: temperature scaling, split-conformal age intervals, calibration.json after
training and from `python -m mtlface.calibrate`, and the mistakes a user can make."""

import json

import numpy as np
import pytest
import torch

from mtlface.calibrate import main as calibrate_main
from mtlface.calibration import Calibration, calibration_path, conformal_quantile, fit_temperature
from mtlface.calibration.conformal import TooFewSamples, check_level, min_samples
from mtlface.calibration.temperature import nll
from mtlface.errors import ConfigError


def ece(logits, targets, bins=15):
    probs = logits.softmax(-1)
    conf, pred = probs.max(-1)
    correct = (pred == targets).double()
    edges = torch.linspace(0, 1, bins + 1)
    total = 0.0
    for lo, hi in zip(edges[:-1], edges[1:]):
        mine = (conf > lo) & (conf <= hi)
        if mine.any():
            total += mine.double().mean() * (conf[mine].double().mean() - correct[mine].mean()).abs()
    return float(total)


def calibrated_logits(n=4000, k=5, seed=0):
    """Logits whose softmax is the true class distribution: sampling labels from it makes
    the probabilities calibrated by construction."""
    g = torch.Generator().manual_seed(seed)
    logits = torch.randn(n, k, generator=g) * 1.5
    targets = torch.multinomial(logits.softmax(-1), 1, generator=g)[:, 0]
    return logits, targets


def test_temperature_fixes_forced_over_confidence():
    logits, targets = calibrated_logits()
    over = logits * 3.0  # same ranking, three times too sure
    assert ece(over, targets) > 0.15
    fit = fit_temperature(over, targets)
    assert fit.temperature == pytest.approx(3.0, rel=0.1)
    assert ece(over / fit.temperature, targets) < 0.03
    assert fit.nll_after < fit.nll_before


def test_temperature_sharpens_under_confidence_and_keeps_predictions():
    logits, targets = calibrated_logits(seed=1)
    under = logits / 2.0
    fit = fit_temperature(under, targets)
    assert fit.temperature == pytest.approx(0.5, rel=0.1)
    assert torch.equal((under / fit.temperature).argmax(-1), under.argmax(-1))


@pytest.mark.parametrize("seed", range(5))
def test_temperature_never_raises_the_nll_of_the_fit_set(seed):
    g = torch.Generator().manual_seed(seed)
    logits = torch.randn(200, 3, generator=g) * (seed + 0.1)
    targets = torch.randint(0, 3, (200,), generator=g)  # labels unrelated to the logits
    fit = fit_temperature(logits, targets)
    assert fit.nll_after <= fit.nll_before + 1e-12
    assert float(nll(logits.double(), targets, fit.temperature)) == pytest.approx(fit.nll_after)


def test_split_conformal_coverage_lies_within_the_theoretical_bounds():
    rng = np.random.default_rng(0)
    level, n = 0.9, 1000
    # Exchangeable calibration and test rows: a model with heteroscedastic errors.
    def rows(m):
        true = rng.uniform(0, 80, m)
        pred = true + rng.normal(0, 2 + true / 10, m)
        return pred, true
    pred, true = rows(n)
    q = conformal_quantile(np.abs(pred - true), level)
    test_pred, test_true = rows(20000)
    covered = np.mean(np.abs(test_pred - test_true) <= q)
    assert 0.87 <= covered <= 0.95
    # Over many calibration draws the mean coverage is within [level, level + 1/(n+1)].
    coverages = []
    for _ in range(200):
        p, t = rows(n)
        qq = conformal_quantile(np.abs(p - t), level)
        tp, tt = rows(2000)
        coverages.append(np.mean(np.abs(tp - tt) <= qq))
    assert level - 0.005 <= np.mean(coverages) <= level + 1 / (n + 1) + 0.005


def test_conformal_quantile_is_the_finite_sample_rank():
    scores = np.arange(1, 20, dtype=float)  # n = 19, level 0.9: ceil(20 * 0.9) = 18th
    assert conformal_quantile(scores, 0.9) == 18.0
    assert min_samples(0.9) == 9
    assert conformal_quantile(np.arange(1, 10.0), 0.9) == 9.0  # n = 9 is just enough


@pytest.mark.parametrize("level", [0, 1, 1.5, -0.1, "x", float("nan")])
def test_a_level_outside_0_1_is_a_config_error(level):
    with pytest.raises(ConfigError, match="strictly between 0 and 1"):
        check_level(level)


def test_too_few_samples_for_the_level_says_what_to_do():
    with pytest.raises(TooFewSamples, match=r"8 labelled age rows .* needs at least 9.*lower"):
        conformal_quantile(np.arange(8.0), 0.9)


def test_calibration_json_round_trips_and_is_written_atomically(tmp_path):
    from mtlface.calibration import AgeInterval

    cal = Calibration({"gender": 1.5}, AgeInterval("age", 0.9, 7.0, 100, "gender",
                                                    {"female": 6.0}, {"female": 50}), "x.ckpt")
    path = cal.save(tmp_path / "calibration.json")
    assert Calibration.load(path) == cal
    assert [p.name for p in tmp_path.iterdir()] == ["calibration.json"]
    out = cal.apply({"gender": torch.tensor([[3.0, 0.0]]), "smile": torch.tensor([[2.0, 0.0]])})
    assert out["gender"].tolist() == [[2.0, 0.0]] and out["smile"].tolist() == [[2.0, 0.0]]
    assert cal.interval.bounds(3.0, "female") == (0.0, 9.0)
    assert cal.interval.bounds(30.0, "male") == (23.0, 37.0)


def test_a_trained_run_has_its_calibration(trained_run):
    data = json.loads(calibration_path(trained_run).read_text())
    cal = Calibration.load(calibration_path(trained_run))
    assert set(cal.temperatures) == {"age", "gender", "smile", "emotion", "race"}
    assert all(t > 0 for t in cal.temperatures.values())
    assert cal.interval is not None and cal.interval.level == 0.9 and cal.interval.q > 0
    assert data["checkpoint"].endswith(".ckpt") and data["split"] == "val"
    for fit in data["fit"].values():
        assert fit["nll_after"] <= fit["nll_before"] + 1e-9


def test_calibrate_command_refits_with_another_level(trained_run, tmp_path, capsys):
    import shutil

    run = tmp_path / "run"
    shutil.copytree(trained_run, run)
    assert calibrate_main([f"run={run}", "level=0.5", "groupwise=gender"]) == 0
    out = capsys.readouterr().out
    assert "50% interval" in out and "calibration written" in out
    cal = Calibration.load(calibration_path(run))
    assert cal.interval.level == 0.5 and cal.interval.groupwise == "gender"
    assert set(cal.interval.q_by_group) <= {"male", "female"} and cal.interval.q_by_group
    assert cal.interval.q < Calibration.load(calibration_path(trained_run)).interval.q


@pytest.mark.parametrize("args, code, message", [
    (["level=1.2"], 2, "strictly between 0 and 1"),
    (["level=0"], 2, "strictly between 0 and 1"),
    (["levle=0.9"], 2, "bad argument"),
    (["groupwise=age"], 2, "not a group attribute"),
    (["level=0.9999"], 1, "needs at least 9999"),
])
def test_calibrate_command_mistakes_are_one_line(trained_run, args, code, message, capsys):
    assert calibrate_main([f"run={trained_run}", *args]) == code
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and message in err and "\n" not in err


def test_calibrate_command_without_a_validation_split(trained_run, tmp_path, capsys):
    import shutil

    from omegaconf import OmegaConf

    run = tmp_path / "run"
    shutil.copytree(trained_run, run)
    cfg = OmegaConf.load(run / ".hydra" / "config.yaml")
    cfg.data.split_map = {s: {"val": None} for s in cfg.data.manifests.synthetic.sources}
    OmegaConf.save(cfg, run / ".hydra" / "config.yaml")
    assert calibrate_main([f"run={run}"]) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "no labelled validation rows" in err
    assert "\n" not in err


def test_calibrate_command_for_a_missing_run(tmp_path, capsys):
    assert calibrate_main([f"run={tmp_path / 'nope'}"]) == 1
    assert "does not exist" in capsys.readouterr().err


# -- after training: skipped under debug=fast, a bad level stops the run early -------------


def test_fast_debug_run_skips_calibration_with_a_reason(data_dir, tmp_path, caplog):
    import logging

    from conftest import SMALL_BKNET, TINY_SOURCES, compose_train
    from mtlface.train import run

    cfg = compose_train([*TINY_SOURCES, *SMALL_BKNET, "debug=fast", "tasks=[age,gender]"],
                        output_dir=tmp_path / "fast")
    with caplog.at_level(logging.INFO, logger="mtlface.calibration.fit"):
        run(cfg)
    assert "calibration skipped: no best checkpoint" in caplog.text


def test_a_bad_conformal_level_stops_training_before_it_starts(data_dir, tmp_path):
    from conftest import TINY_SOURCES, compose_train
    from mtlface.train import run

    cfg = compose_train([*TINY_SOURCES, "debug=fast", "conformal.level=1.5"],
                        output_dir=tmp_path / "bad")
    with pytest.raises(ConfigError, match=r"conformal.level=1.5: .*strictly between 0 and 1"):
        run(cfg)


# -- the Predictor and the demo ---------------------------------------------------------------


def test_predictor_gives_calibrated_probabilities_and_the_age_interval(trained_run, astronaut):
    from mtlface import Predictor

    cal = Calibration.load(calibration_path(trained_run))
    calibrated = Predictor.from_run(trained_run)
    assert calibrated.calibration == cal
    age = calibrated.predict(astronaut)[0]["age"]
    lo, hi = age.interval
    assert age.interval_level == 0.9
    assert lo == pytest.approx(max(0.0, age.years - cal.interval.q), abs=0.01)
    assert hi == pytest.approx(age.years + cal.interval.q, abs=0.01)
    assert json.loads(json.dumps(calibrated.predict(astronaut)[0].to_dict())
                      )["tasks"]["age"]["interval"] == [lo, hi]
    # The probabilities are softmax(logits / T): the uncalibrated predictor's logits agree.
    raw = Predictor.from_checkpoint(calibrated_ckpt(trained_run, cal), trained_run / ".hydra" /
                                    "config.yaml")
    assert raw.calibration is None
    face = raw.predict(astronaut)[0]
    assert face["age"].interval is None
    # Calibration changes the probabilities, never the prediction.
    assert face["age"].years == pytest.approx(age.years, abs=1e-4)
    assert all(face[t].label == calibrated.predict(astronaut)[0][t].label for t in face.tasks)
    gender_raw = torch.tensor(list(face["gender"].probs.values())).log()
    expected = (gender_raw / cal.temperatures["gender"]).softmax(-1)
    got = calibrated.predict(astronaut)[0]["gender"].probs
    assert list(got.values()) == pytest.approx(expected.tolist(), abs=1e-4)


def calibrated_ckpt(run, cal):
    return run / "checkpoints" / cal.checkpoint


def test_groupwise_interval_uses_the_faces_predicted_group():
    from mtlface.calibration import AgeInterval
    from mtlface.predict.results import AgePrediction, TaskPrediction, with_intervals

    interval = AgeInterval("age", 0.9, 10.0, 100, "gender", {"female": 4.0})
    age = AgePrediction("16-32", 1, {}, 20.0, (16.0, 32.0))
    faces = [{"age": age, "gender": TaskPrediction("female", 1, {})},
             {"age": age, "gender": TaskPrediction("male", 0, {})}]
    with_intervals(faces, interval)
    assert faces[0]["age"].interval == (16.0, 24.0)
    assert faces[1]["age"].interval == (10.0, 30.0)  # no own q: the pooled one


def test_demo_json_csv_and_caption_carry_the_interval(trained_run, astronaut, tmp_path, capsys):
    import csv

    from PIL import Image

    from mtlface.predict.cli import main as demo
    from mtlface.predict.draw import caption

    js = tmp_path / "faces.jsonl"
    assert demo(["--run", str(trained_run), "-i", str(astronaut), "-o",
                 str(tmp_path / "a.jpg"), "--json", str(js)]) == 0
    age = json.loads(js.read_text().splitlines()[0])["tasks"]["age"]
    lo, hi = age["interval"]
    assert lo <= age["years"] <= hi and age["interval_level"] == 0.9
    photos = tmp_path / "photos"
    photos.mkdir()
    Image.open(astronaut).save(photos / "a.jpg")
    table = tmp_path / "p.csv"
    assert demo(["--run", str(trained_run), "--dir", str(photos), "--csv", str(table),
                 "--no-progress"]) == 0
    (row,) = list(csv.DictReader(table.open()))
    assert json.loads(row["age_interval"]) == pytest.approx([lo, hi], abs=0.06)
    from mtlface.predict.results import AgePrediction

    shown = AgePrediction("32-48", 2, {}, 44.0, (32.0, 48.0), (35.2, 52.8), 0.9)
    assert caption("age", shown) == "age 44 (32-48) 90%: 35-53"
    capsys.readouterr()


# -- exports -----------------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", ["onnx", "torchscript"])
def test_exports_carry_the_calibration_and_predict_like_the_checkpoint(trained_run, tmp_path,
                                                                      astronaut, fmt):
    import shutil

    from mtlface import Predictor
    from mtlface.export import PARITY_TOLERANCE, export_run
    from mtlface.predict.metadata import ModelInfo

    run = tmp_path / "run"
    shutil.copytree(trained_run, run)
    result = export_run(run, fmt)
    assert result.calibrated and result.max_abs_diff < PARITY_TOLERANCE
    stored = ModelInfo.load(result.metadata).extra["calibration"]
    assert Calibration.from_dict(stored) == Calibration.load(calibration_path(run))
    torch_face = Predictor.from_run(run).predict(astronaut)[0]
    exported = Predictor.from_run(run, backend=fmt)
    assert exported.calibration == Calibration.load(calibration_path(run))
    face = exported.predict(astronaut)[0]
    for name, pred in torch_face.tasks.items():
        assert list(face[name].probs.values()) == pytest.approx(list(pred.probs.values()),
                                                                abs=1e-4)
    assert face["age"].interval == pytest.approx(torch_face["age"].interval, abs=0.011)


@pytest.mark.parametrize("readout", ["expected", "ordinal", "argmax"])
def test_a_temperature_changes_probabilities_never_the_predicted_age(readout):
    from mtlface.calibration.store import decode
    from mtlface.tasks import AgeBins, AgeTask

    task = AgeTask(8, AgeBins.uniform(5), readout=readout)
    raw = task(torch.randn(16, 8, generator=torch.Generator().manual_seed(0)))
    plain, hot = task.decode(raw), decode(task, raw, 2.5)
    assert torch.equal(hot["years"], plain["years"]) and torch.equal(hot["bin"], plain["bin"])
    assert torch.allclose(hot["probs"], task.decode(raw / 2.5)["probs"])
    assert not torch.allclose(hot["probs"], plain["probs"])


# -- evaluation ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def evaluated(trained_run, tmp_path_factory):
    from mtlface.evaluate.cli import parse_args
    from mtlface.evaluate.run import evaluate

    return evaluate(parse_args([f"run={trained_run}", f"out={tmp_path_factory.mktemp('ev')}"]))


def test_evaluation_reports_ece_and_nll_before_and_after_calibration(evaluated, trained_run):
    import pandas as pd
    from PIL import Image

    m, table = evaluated.metrics, pd.read_csv(evaluated.folder / "predictions.csv")
    cal = Calibration.load(calibration_path(trained_run))
    for task in ("age", "gender", "smile", "emotion", "race"):
        rows = table[table[f"{task}_true"].notna()]
        assert m[f"test/{task}/nll"] == pytest.approx(rows[f"{task}_nll"].mean())
        assert m[f"test/{task}/nll_uncal"] == pytest.approx(rows[f"{task}_nll_raw"].mean())
        assert 0 <= m[f"test/{task}/ece_uncal"] <= 1
        for source in rows["source"].unique():
            assert f"test/{source}/{task}/ece_uncal" in m and f"test/{source}/{task}/nll" in m
        # The calibrated confidence is the raw one sharpened or softened, never re-ranked.
        hot = rows[f"{task}_conf"] > rows[f"{task}_conf_raw"]
        assert hot.all() or (~hot).all() or cal.temperatures[task] == pytest.approx(1.0)
    assert "## Calibration" in evaluated.report and "ECE before" in evaluated.report
    with Image.open(evaluated.folder / "reliability_gender.png") as image:
        assert image.size[0] > 1.5 * image.size[1]  # before and after, side by side


def test_evaluation_reports_interval_coverage_by_group_and_band(evaluated, trained_run):
    import pandas as pd

    from mtlface.evaluate.coverage import AGE_BANDS

    m, table = evaluated.metrics, pd.read_csv(evaluated.folder / "predictions.csv")
    q = Calibration.load(calibration_path(trained_run)).interval.q
    age = table[table["age_true"].notna()]
    assert (age["age_hi"] - age["age_pred_years"]).to_numpy() == pytest.approx(q)
    inside = (age["age_true_years"] >= age["age_lo"]) & (age["age_true_years"] <= age["age_hi"])
    assert m["test/age/coverage"] == pytest.approx(inside.mean())
    assert m["test/age/interval_width"] == pytest.approx((age["age_hi"] - age["age_lo"]).mean())
    cov = pd.read_csv(evaluated.folder / "coverage.csv", keep_default_na=False)
    assert {"all", "source", "gender", "race", "age band"} <= set(cov["attribute"])
    for name, lo, hi in AGE_BANDS:
        mine = age[(age["age_true_years"] >= lo) & (age["age_true_years"] < hi)]
        if len(mine):
            key = f"test/age/by_age_band/{name}"
            assert m[f"{key}/mae"] == pytest.approx(
                (mine["age_pred_years"] - mine["age_true_years"]).abs().mean())
            assert m[f"{key}/count"] == len(mine)
    flagged = cov[cov["coverage"].astype(float) < 0.9 - 0.05]
    assert set(flagged.index) == set(cov[cov["flagged"].astype(str) == "True"].index)
    lines = evaluated.report.splitlines()
    assert lines[2].startswith("**Worst age band: ") and lines[3].startswith("**Worst group: ")
    assert "interval coverage" in lines[3]


def test_coverage_table_flags_groups_under_the_level():
    import pandas as pd

    from mtlface.calibration import AgeInterval
    from mtlface.evaluate.coverage import add_intervals, coverage_table, worst
    from mtlface.tasks import AgeBins, AgeTask

    true = np.array([5.0, 15, 25, 30, 45, 70, 70, 70, 25, 30])
    pred = np.array([6.0, 14, 26, 31, 44, 50, 52, 69, 35, 30])
    table = pd.DataFrame({"source": ["a"] * 5 + ["b"] * 5,
                          "gender": pd.array([0, 1, 0, 1, 0, 1, 1, 1, None, 0], dtype="Int64"),
                          "age_true": pd.array([0] * 10, dtype="Int64"), "age_pred": [0] * 10,
                          "age_true_years": true, "age_pred_years": pred})
    info = AgeTask(1, AgeBins([0, 80, 100]))
    add_intervals(table, AgeInterval("age", 0.9, 2.0, 10), {"age": info})
    frame = coverage_table(table, "age", 0.9).set_index(["attribute", "group"])
    assert frame.loc[("all", "all"), "coverage"] == pytest.approx(0.7)
    assert frame.loc[("age band", "65+"), "coverage"] == pytest.approx(1 / 3)
    assert frame.loc[("age band", "65+"), "flagged"]
    assert not frame.loc[("source", "a"), "flagged"]  # every one covered
    assert frame.loc[("age band", "0-12"), "width"] == pytest.approx(4.0)
    band, group = worst(frame.reset_index(), min_count=1)
    assert band["group"] == "65+" and (group["attribute"], group["group"]) == ("source", "b")
    assert frame.loc[("gender", "female"), "coverage"] == pytest.approx(0.6)


def test_groupwise_without_its_task_stops_training_before_it_starts(data_dir, tmp_path):
    from conftest import TINY_SOURCES, compose_train
    from mtlface.train import run

    cfg = compose_train([*TINY_SOURCES, "debug=fast", "tasks=[age,smile]",
                         "conformal.groupwise=gender"], output_dir=tmp_path / "bad")
    with pytest.raises(ConfigError, match=r"conformal.groupwise=gender: the run has no gender"):
        run(cfg)


def test_without_an_interval_the_bands_and_groups_still_have_their_errors():
    import pandas as pd

    from mtlface.evaluate.coverage import coverage_table, worst
    from mtlface.evaluate.report import coverage_lines, headline

    table = pd.DataFrame({"source": ["a", "a", "b", "b"],
                          "gender": pd.array([0, 1, 0, 1], dtype="Int64"),
                          "age_true": pd.array([0, 0, 1, 1], dtype="Int64"),
                          "age_pred": [0, 1, 1, 1],
                          "age_true_years": [10.0, 30, 70, 50],
                          "age_pred_years": [12.0, 50, 69, 52]})
    frame = coverage_table(table, "age", None)
    assert frame["coverage"].isna().all() and not frame["flagged"].any()
    band, group = worst(frame, min_count=1)
    assert band["group"] == "20-39" and band["mae"] == 20.0
    assert (group["attribute"], group["group"]) == ("source", "a")
    first = headline(band, group, None)
    assert first[0].startswith("**Worst age band: 20-39**") and "highest age MAE" in first[1]
    assert "coverage" not in "\n".join(coverage_lines(frame, "age", None, 10))
