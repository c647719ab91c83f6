import math

import pytest
import torch
from hydra.utils import instantiate

from conftest import compose_train
from mtlface.errors import ConfigError
from mtlface.labels import label
from mtlface.tasks import AgeBins, AgeReadout, AgeTask, BinaryTask, MulticlassTask

NAN = float("nan")


# ---- age binning edges ----------------------------------------------------------------------
def test_uniform_bins_are_half_open_and_clamp_the_ends():
    bins = AgeBins.uniform(5, 0, 80)
    assert bins.edges == [0, 16, 32, 48, 64, 80]
    ages = torch.tensor([-3.0, 0.0, 15.999, 16.0, 63.9, 64.0, 80.0, 116.0])
    assert bins.bucketize(ages).tolist() == [0, 0, 0, 1, 3, 4, 4, 4]


@pytest.mark.parametrize("n", [3, 5, 10])
def test_uniform_bins_cover_every_class(n):
    bins = AgeBins.uniform(n, 0, 80)
    ages = torch.arange(0, 80, 0.5)
    assert bins.bucketize(ages).unique().tolist() == list(range(n))
    assert bins.num_bins == len(bins.centres) == len(bins.names) == n


def test_group_bins_send_between_group_ages_to_the_nearer_group():
    adience = AgeBins.from_groups([(0, 2), (4, 6), (8, 12), (15, 20), (25, 32), (38, 43),
                                   (48, 53), (60, 100)])
    ages = torch.tensor([1.0, 2.9, 3.0, 13.0, 14.0, 22.0, 23.0, 35.0, 57.0, 90.0])
    assert adience.bucketize(ages).tolist() == [0, 0, 1, 2, 3, 3, 4, 5, 7, 7]
    assert adience.centres[0] == 1.0 and adience.centres[-1] == 80.0


def test_named_schemes_from_config():
    keras = instantiate(compose_train(["age_bins=keras5"]).age_bins)
    assert keras.bucketize(torch.tensor([17.9, 18.0, 64.0, 65.0, 99.0])).tolist() == [0, 1, 3, 4, 4]
    effnet = instantiate(compose_train(["age_bins=effnet5"]).age_bins)
    assert effnet.bucketize(torch.tensor([13.0, 14.0, 23.0, 24.0, 56.0])).tolist() == [0, 1, 1, 2, 4]


@pytest.mark.parametrize("edges", [[0, 10], [0, 10, 10], [5, 3, 8]])
def test_bad_edges_are_rejected(edges):
    with pytest.raises(ValueError, match="strictly increasing"):
        AgeBins(edges)


def test_too_few_uniform_bins_are_rejected():
    with pytest.raises(ValueError, match="num_bins must be >= 2"):
        AgeBins.uniform(1)


def test_expected_age_is_the_probability_weighted_centre():
    bins = AgeBins([0, 10, 20])  # centres 5 and 15
    logits = torch.tensor([[0.0, 0.0], [100.0, 0.0]])
    assert torch.allclose(bins.expected_years(logits), torch.tensor([10.0, 5.0]))


# ---- masked losses ----------------------------------------------------------------------------
def _tasks():
    return [BinaryTask("gender", 8, ["male", "female"]),
            MulticlassTask("emotion", 8, label("emotion").classes),
            *(AgeTask(8, AgeBins.uniform(5), readout=r) for r in AgeReadout)]


@pytest.mark.parametrize("task", _tasks(),
                         ids=lambda t: f"{t.name}-{getattr(t, 'readout', type(t).__name__)}")
def test_all_missing_labels_give_a_finite_zero_loss_that_keeps_the_graph(task):
    features = torch.randn(4, 8, requires_grad=True)
    pred = task(features)
    missing = torch.full((4,), NAN) if isinstance(task, AgeTask) else torch.full((4,), -1)
    loss = task.loss(pred, missing)
    assert loss.item() == 0.0 and math.isfinite(loss.item())
    loss.backward()  # graph intact: gradients exist (all zero)
    assert features.grad is not None and torch.count_nonzero(features.grad) == 0


def test_loss_averages_over_labelled_samples_only():
    task = BinaryTask("gender", 4, ["male", "female"])
    pred = torch.randn(4, 2)
    target = torch.tensor([1, -1, 0, -1])
    expected = torch.nn.functional.cross_entropy(pred[[0, 2]], target[[0, 2]])
    assert torch.allclose(task.loss(pred, target), expected)


def test_metrics_ignore_missing_labels():
    task = BinaryTask("smile", 4)
    metrics = task.metrics()
    pred = torch.tensor([[5.0, 0.0], [0.0, 5.0], [5.0, 0.0]])
    task.update_metrics(metrics, pred, torch.tensor([0, -1, -1]))
    assert metrics.compute()["acc"] == 1.0


def test_age_metrics_exact_one_off_and_mae():
    task = AgeTask(4, AgeBins([0, 10, 20, 30, 40]))
    logits = torch.full((3, 4), -50.0)
    logits[0, 0] = logits[1, 1] = logits[2, 3] = 50.0  # predicted bins 0, 1, 3
    target = torch.tensor([5.0, 5.0, 15.0])  # true bins 0, 0, 1
    metrics = task.metrics()
    task.update_metrics(metrics, logits, target)
    values = metrics.compute()
    assert values["acc"].item() == pytest.approx(1 / 3)
    assert values["acc_1off"].item() == pytest.approx(2 / 3)
    assert values["mae"].item() == pytest.approx((0 + 10 + 20) / 3)


def test_age_regression_reports_bucketed_accuracy():
    task = AgeTask(4, AgeBins.uniform(4, 0, 80), regression=True)
    pred = (torch.tensor([[10.0], [50.0]]) - 40) / 40  # 10 and 50 years, standardised over 0-80
    assert torch.allclose(task.years(pred), torch.tensor([10.0, 50.0]))
    metrics = task.metrics()
    task.update_metrics(metrics, pred, torch.tensor([12.0, 75.0]))
    values = metrics.compute()
    assert values["acc"] == 0.5 and values["acc_1off"] == 1.0
    assert values["mae"].item() == pytest.approx(13.5)


def test_a_class_task_needs_its_classes_declared():
    with pytest.raises(ConfigError, match="tasks.hat: a multiclass task declares its classes"):
        MulticlassTask("hat", 4, None)
    with pytest.raises(ConfigError, match="two classes"):
        BinaryTask("hat", 4, ["a", "b", "c"])
    with pytest.raises(ConfigError, match="quote them"):
        BinaryTask("hat", 4, [False, True])  # YAML's unquoted no/yes
    with pytest.raises(ConfigError, match="repeat"):
        MulticlassTask("hat", 4, ["a", "a"])
