"""Head depth/width/dropout as config, and the age read-outs."""

from functools import partial

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from conftest import compose_train
from mtlface.heads import MLPHead
from mtlface.tasks import AgeBins, AgeReadout, AgeTask
from mtlface.train import build_model

NAN = float("nan")


def _layout(head):
    """(type, size or p) per layer: Linear -> out_features, Dropout -> p, ReLU -> None."""
    return [(type(m).__name__, getattr(m, "out_features", getattr(m, "p", None))) for m in head]


# ---- heads ------------------------------------------------------------------------------------
def test_mlp_head_layers():
    assert _layout(MLPHead(10, 3, [256, 128], 0.5)) == [
        ("Linear", 256), ("ReLU", None), ("Dropout", 0.5),
        ("Linear", 128), ("ReLU", None), ("Dropout", 0.5), ("Linear", 3)]
    assert _layout(MLPHead(10, 3)) == [("Linear", 3)]


@pytest.mark.parametrize("kwargs, message", [
    ({"hidden": [0]}, "hidden sizes must be integers >= 1"),
    ({"hidden": [64.5]}, "hidden sizes must be integers >= 1"),
    ({"dropout": 1.0}, r"dropout must be in \[0, 1\)"),
])
def test_mlp_head_rejects_wrong_values(kwargs, message):
    with pytest.raises(ValueError, match=message):
        MLPHead(10, 3, **kwargs)


@pytest.mark.parametrize("head, dropout", [(None, None), ("bknet", 0.5)])
def test_default_heads_and_bknets_published_ones(head, dropout):
    """Both are two FC-256 layers; only ``head=bknet`` (as published) adds dropout 0.5."""
    model, _ = build_model(compose_train(["tasks=[age,gender,emotion]"]
                                         + ([f"head={head}"] if head else [])))
    drop = [("Dropout", dropout or 0.0)]
    for name, n_out in {"age": 5, "gender": 2, "emotion": 7}.items():
        assert _layout(model.tasks[name].head) == [
            ("Linear", 256), ("ReLU", None), *drop,
            ("Linear", 256), ("ReLU", None), *drop, ("Linear", n_out)], name


def test_head_depth_width_and_dropout_per_task():
    model, _ = build_model(compose_train([
        "tasks=[age,gender,smile]", "tasks.age.head.hidden=[64,32,16]",
        "tasks.age.head.dropout=0.1", "tasks.gender.head.hidden=[]"]))
    assert _layout(model.tasks["age"].head) == [
        ("Linear", 64), ("ReLU", None), ("Dropout", 0.1), ("Linear", 32), ("ReLU", None),
        ("Dropout", 0.1), ("Linear", 16), ("ReLU", None), ("Dropout", 0.1), ("Linear", 5)]
    assert _layout(model.tasks["gender"].head) == [("Linear", 2)]
    assert _layout(model.tasks["smile"].head)[0] == ("Linear", 256)  # untouched: the default


def test_head_group_sets_every_task_and_linear_is_the_papers_readout():
    model, _ = build_model(compose_train(["backbone=lmtcnn", "tasks=[age,gender]",
                                          "head=linear"]))
    assert _layout(model.tasks["age"].head) == [("Linear", 5)]
    assert model.tasks["gender"].head[0].in_features == 512  # LMTCNN's shared FC-512
    model, _ = build_model(compose_train(["tasks=[age,gender]", "head.hidden=[48]"]))
    assert all(t.head[0].out_features == 48 for t in model.tasks.values())


def test_wrong_head_config_value_is_a_clear_error():
    with pytest.raises(Exception, match="head dropout must be in"):
        build_model(compose_train(["tasks=[smile]", "tasks.smile.head.dropout=1.5"]))


# ---- age read-outs ------------------------------------------------------------------------------
BINS = AgeBins([0, 10, 20, 30])  # centres 5, 15, 25


def test_argmax_and_expected_read_the_same_softmax_differently():
    logits = torch.log(torch.tensor([[0.6, 0.0001, 0.4]]))
    argmax = AgeTask(4, BINS, readout="argmax")
    expected = AgeTask(4, BINS, readout="expected")
    assert argmax.predicted_bins(logits).item() == expected.predicted_bins(logits).item() == 0
    assert argmax.years(logits).item() == pytest.approx(5.0)  # the most probable bin's centre
    assert expected.years(logits).item() == pytest.approx(0.6 * 5 + 0.4 * 25, abs=0.01)


def test_ordinal_readout_is_coral():
    task = AgeTask(4, BINS, readout="ordinal")
    assert task.head[-1].out_features == 1  # one shared score ...
    assert task(torch.randn(2, 4)).shape == (2, 2)  # ... and K-1 thresholds
    pred = torch.tensor([[3.0, -3.0], [3.0, 3.0], [-3.0, -3.0]])  # logits of "bin > k"
    assert task.predicted_bins(pred).tolist() == [1, 2, 0]
    p = torch.sigmoid(torch.tensor(3.0)).item()
    assert task.years(pred[:1]).item() == pytest.approx(5 + 10 * p + 10 * (1 - p))
    probs = task.decode(pred)["probs"]
    assert torch.allclose(probs.sum(-1), torch.ones(3)) and probs.argmax(-1).tolist() == [1, 2, 0]
    # Loss: the summed binary cross-entropies of "bin > 0" and "bin > 1".
    target = torch.tensor([25.0, 5.0, NAN])  # bins 2, 0, unlabelled
    levels = torch.tensor([[1.0, 1.0], [0.0, 0.0]])
    expected = F.binary_cross_entropy_with_logits(pred[:2], levels, reduction="none").sum(1).mean()
    assert torch.allclose(task.loss(pred, target), expected)


@pytest.mark.parametrize("readout", list(AgeReadout))
def test_every_readout_logs_the_same_metric_keys(readout):
    task = AgeTask(4, BINS, readout=readout)
    metrics = task.metrics()
    task.update_metrics(metrics, task(torch.randn(3, 4)), torch.tensor([5.0, NAN, 27.0]))
    values = metrics.compute()
    assert set(values) == {"acc", "acc_1off", "f1", "mae"}
    assert all(torch.isfinite(v) for v in values.values())
    assert set(task.decode(task(torch.randn(2, 4)))) >= {"years", "bin"}


@pytest.fixture
def one_thread():
    """Tiny tensors: one thread is ~10x faster than two that contend on a busy machine."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.mark.parametrize("readout", list(AgeReadout))
def test_every_readout_learns_age_from_an_informative_feature(readout, one_thread):
    """Features that encode the age: every read-out must reach high accuracy and low MAE."""
    torch.manual_seed(0)
    bins = AgeBins.uniform(5, 0, 80)
    task = AgeTask(2, bins, readout=readout, head=partial(MLPHead, hidden=[32]))
    ages = torch.rand(512) * 80
    features = torch.stack([ages / 40 - 1, torch.randn(512) * 0.1], dim=1)
    optimizer = torch.optim.Adam(task.parameters(), lr=0.03)
    for _ in range(300):
        optimizer.zero_grad()
        task.loss(task(features), ages).backward()
        optimizer.step()
    metrics = task.metrics()
    with torch.no_grad():
        task.update_metrics(metrics, task(features), ages)
    values = metrics.compute()
    assert values["acc"] > 0.85 and values["acc_1off"] > 0.98, values
    # Bins are 16 years wide: the argmax read-out's error is up to 8 years by construction.
    assert values["mae"] < (6.0 if readout == "argmax" else 4.5), values


def test_readout_and_regression_from_config():
    model, _ = build_model(compose_train(["tasks=[age]", "tasks.age.readout=ordinal"]))
    assert model.tasks["age"].readout is AgeReadout.ORDINAL
    assert model(torch.randn(1, 1, 48, 48))["age"].shape == (1, 4)  # 5 bins -> 4 thresholds
    model, _ = build_model(compose_train(["tasks=[age]", "tasks.age.regression=true"]))
    assert model.tasks["age"].readout is AgeReadout.REGRESSION


@pytest.mark.parametrize("overrides, message", [
    (["tasks.age.readout=median"],
     "unknown age readout 'median'; valid: argmax, expected, ordinal, regression"),
    (["tasks.age.readout=ordinal", "tasks.age.regression=true"], "contradicts readout='ordinal'"),
])
def test_wrong_readout_is_a_clear_error(overrides, message):
    with pytest.raises(Exception, match=message):
        build_model(compose_train(["tasks=[age]", *overrides]))


def test_ordinal_thresholds_are_trained_parameters():
    task = AgeTask(4, BINS, readout="ordinal")
    names = {n for n, _ in task.named_parameters()}
    assert "decoder.bias" in names
    task.loss(task(torch.randn(3, 4)), torch.tensor([5.0, 15.0, 25.0])).backward()
    assert task.decoder.bias.grad is not None and task.decoder.bias.grad.any()
    assert isinstance(task.decoder, nn.Module)
