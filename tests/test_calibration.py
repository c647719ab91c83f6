"""Calibration: temperature scaling, split-conformal age intervals, calibration.json after
training and from `python -m mtlface.calibrate`, and the mistakes a user can make."""

import json
import math

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
