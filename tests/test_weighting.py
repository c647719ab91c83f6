"""Loss weighting: each strategy's defining property on a tiny problem, the module's delegation
(unlabelled tasks left out, weights logged, gradient aggregation in the backward pass) and
every `weighting=` option trained end to end through train.py."""

import functools
import math

import pandas as pd
import pytest
import pytorch_lightning as pl
import torch
from torch import nn
from torchjd.aggregation import MGDA, CAGrad, PCGrad, UPGrad

from conftest import CONF_DIR, SMALL_BKNET, TINY_SOURCES, compose_train
from mtlface.module import MTLFaceModule
from mtlface.tasks import BinaryTask
from mtlface.train import run
from mtlface.weighting import (
    DynamicWeightAveraging,
    FixedWeighting,
    GradientAggregation,
    GradNorm,
    UncertaintyWeighting,
)

# The module tests train without validation data on purpose.
pytestmark = pytest.mark.filterwarnings("ignore:You defined a `validation_step`")


class _StubTask(nn.Module):
    def __init__(self, regression: bool = False) -> None:
        super().__init__()
        self.regresses = regression


def _set_up(weighting, *names, regression=()):
    weighting.setup({n: _StubTask(n in regression) for n in names})
    return weighting


def _losses(**values):
    return {n: torch.tensor(float(v)) for n, v in values.items()}


# --- uncertainty -----------------------------------------------------------------------------

def test_uncertainty_loss_is_weighted_losses_plus_log_variance_regulariser():
    w = _set_up(UncertaintyWeighting(), "gender", "age", regression={"age"})
    with torch.no_grad():
        w.log_vars["gender"].fill_(0.3)
        w.log_vars["age"].fill_(-0.2)
    out = w(_losses(gender=2.0, age=3.0), None)
    # classification: exp(-s) L; regression: exp(-s) L / 2; both + s / 2 (= log sigma)
    expected = math.exp(-0.3) * 2 + 0.5 * math.exp(0.2) * 3 + 0.5 * (0.3 - 0.2)
    assert out.total.item() == pytest.approx(expected, rel=1e-6)
    assert out.weights["gender"].item() == pytest.approx(math.exp(-0.3), rel=1e-6)
    assert out.weights["age"].item() == pytest.approx(0.5 * math.exp(0.2), rel=1e-6)


@pytest.mark.parametrize("regression", [False, True])
def test_uncertainty_learns_weights_inverse_to_the_loss_scale(regression):
    w = _set_up(UncertaintyWeighting(), "small", "large",
                regression={"small", "large"} if regression else ())
    optimiser = torch.optim.Adam(w.parameters(), lr=0.05)
    losses = _losses(small=0.2, large=5.0)
    for _ in range(400):
        optimiser.zero_grad()
        w(losses, None).total.backward()
        optimiser.step()
    weights = w(losses, None).weights
    # the minimum of c exp(-s) L + s/2 is at weight c exp(-s) = 1 / (2 L), in both forms
    assert weights["small"].item() == pytest.approx(1 / (2 * 0.2), rel=0.05)
    assert weights["large"].item() == pytest.approx(1 / (2 * 5.0), rel=0.05)


# --- DWA -------------------------------------------------------------------------------------

def _dwa_epoch(w, **losses):
    for _ in range(3):
        w(_losses(**losses), None)
    w.on_train_epoch_end()


def _current_weights(w, names):
    """The weights a step would use, read in eval mode (a training step would be averaged in)."""
    w.eval()
    weights = w(_losses(**{n: 1.0 for n in names}), None).weights
    w.train()
    return weights


def test_dwa_gives_the_slower_falling_task_the_larger_weight_summing_to_task_count():
    w = _set_up(DynamicWeightAveraging(temperature=2.0), "a", "b", "c").train()
    _dwa_epoch(w, a=1.0, b=1.0, c=2.0)
    assert [v.item() for v in _current_weights(w, "abc").values()] == [1, 1, 1]
    _dwa_epoch(w, a=0.5, b=0.9, c=2.0)  # a falls fastest, c not at all
    weights = _current_weights(w, "abc")
    assert weights["c"] > weights["b"] > weights["a"]
    assert sum(weights.values()).item() == pytest.approx(3.0)
    ratios = torch.tensor([0.5, 0.9, 1.0])
    expected = 3 * torch.softmax(ratios / 2.0, dim=0)
    assert torch.stack(list(weights.values())) == pytest.approx(expected, rel=1e-5)


def test_dwa_averages_training_steps_only_and_per_window():
    w = _set_up(DynamicWeightAveraging(window_steps=2), "a", "b").eval()
    for _ in range(10):  # validation: no statistics
        w(_losses(a=1, b=5), None)
    assert w.loss_count.sum() == 0
    w.train()
    for a, b in [(1, 1), (1, 1), (0.2, 1), (0.2, 1)]:  # two windows of two steps, no epoch end
        w(_losses(a=a, b=b), None)
    weights = _current_weights(w, "ab")
    assert weights["b"] > weights["a"]
    # a task missing from a step (no label) is not averaged in
    w.loss_sum.zero_(), w.loss_count.zero_(), w.window_step.zero_()
    w(_losses(b=2.0), None)
    assert w.loss_count.tolist() == [0, 1]


@pytest.mark.parametrize("kwargs", [{"temperature": 0}, {"window_steps": 0}])
def test_dwa_rejects_bad_settings(kwargs):
    with pytest.raises(ValueError, match="dwa"):
        DynamicWeightAveraging(**kwargs)


# --- GradNorm --------------------------------------------------------------------------------

def _feature_grad_norms(losses, features):
    return torch.stack([torch.autograd.grad(v, features, retain_graph=True)[0].norm()
                        for v in losses.values()])


def test_gradnorm_equalises_gradient_norms_of_tasks_with_scaled_losses():
    torch.manual_seed(0)
    trunk = nn.Sequential(nn.Linear(8, 16), nn.Tanh())
    heads = nn.ModuleList([nn.Linear(16, 1), nn.Linear(16, 1)])
    x, y = torch.randn(64, 8), torch.randn(64, 2)
    gradnorm = _set_up(GradNorm(alpha=0.0, lr=0.05), "a", "b").train()
    optimiser = torch.optim.Adam([*trunk.parameters(), *heads.parameters()], lr=1e-3)

    def step():
        features = trunk(x)
        losses = {"a": nn.functional.mse_loss(heads[0](features)[:, 0], y[:, 0]),
                  "b": 100 * nn.functional.mse_loss(heads[1](features)[:, 0], y[:, 1])}
        norms = gradnorm.weights.detach() * _feature_grad_norms(losses, features)
        out = gradnorm(losses, features)
        optimiser.zero_grad()
        out.total.backward()
        optimiser.step()
        assert gradnorm.weights.sum().item() == pytest.approx(2.0, rel=1e-5)
        return norms

    first = step()
    assert first[1] / first[0] > 10  # the scaled task dominates the shared features at first
    for _ in range(300):
        last = step()
    assert last[1] / last[0] == pytest.approx(1.0, abs=0.15)
    assert gradnorm.weights[0] > 10 * gradnorm.weights[1]


def test_gradnorm_alpha_favours_the_task_that_trained_less():
    features = torch.ones(4, requires_grad=True)
    gradnorm = _set_up(GradNorm(alpha=1.0, lr=0.05), "a", "b").train()
    # equal gradient norms at the features; a's loss has halved since its first value, b's not
    gradnorm({"a": (features * 2).sum(), "b": (features * 2).sum()}, features)
    gradnorm({"a": (features * 2).sum() - 4, "b": (features * 2).sum()}, features)
    assert gradnorm.weights[1] > gradnorm.weights[0]
    before = gradnorm.weights.clone()
    gradnorm.eval()({"a": features.sum(), "b": features.sum()}, features)  # validation
    assert torch.equal(gradnorm.weights, before)


def test_gradnorm_rejects_bad_settings():
    with pytest.raises(ValueError, match="alpha"):
        GradNorm(alpha=-1)
    with pytest.raises(ValueError, match="lr"):
        GradNorm(lr=0)


# --- gradient aggregation (torchjd) ----------------------------------------------------------

def _conflicting_problem():
    """A shared trunk and three heads; task b pulls the features against task a (same head
    weights, opposite targets) with 8x its loss scale; c agrees with a."""
    torch.manual_seed(0)
    trunk = nn.Linear(6, 5)
    heads = nn.ModuleList([nn.Linear(5, 1) for _ in range(3)])
    heads[1].load_state_dict(heads[0].state_dict())
    heads[2].load_state_dict(heads[0].state_dict())
    x, y = torch.randn(32, 6), torch.randn(32)
    features = trunk(x)
    losses = {"a": nn.functional.mse_loss(heads[0](features)[:, 0], y),
              "b": 8 * nn.functional.mse_loss(heads[1](features)[:, 0], -y),
              "c": nn.functional.mse_loss(heads[2](features)[:, 0], y)}
    shared = list(trunk.parameters())
    jacobian = torch.stack([
        torch.cat([g.flatten() for g in torch.autograd.grad(v, shared, retain_graph=True)])
        for v in losses.values()])
    return trunk, heads, features, losses, jacobian


def _aggregate(aggregator, names="abc"):
    trunk, heads, features, losses, jacobian = _conflicting_problem()
    losses = {n: losses[n] for n in names}
    jacobian = jacobian[["abc".index(n) for n in names]]
    head_grads = [torch.autograd.grad(losses[n], heads["abc".index(n)].weight,
                                      retain_graph=True)[0] for n in names]
    weighting = _set_up(GradientAggregation(aggregator), *names)
    weights = weighting.backward(losses, features, list(trunk.parameters()))
    update = torch.cat([p.grad.flatten() for p in trunk.parameters()])
    for n, grad in zip(names, head_grads):  # each head gets its own task's gradient
        assert torch.allclose(heads["abc".index(n)].weight.grad, grad)
    return update, jacobian, weights


@pytest.mark.parametrize("aggregator", [UPGrad(), MGDA()], ids=["upgrad", "mgda"])
def test_upgrad_and_mgda_updates_raise_no_task_loss_to_first_order(aggregator):
    update, jacobian, weights = _aggregate(aggregator)
    assert (jacobian @ jacobian.sum(0)).min() < 0  # the plain sum would raise task a's loss
    assert (jacobian @ update).min() >= -1e-5 * update.norm() * jacobian.norm(dim=1).max()
    assert update.norm() > 0
    assert set(weights) == {"a", "b", "c"}
    assert torch.allclose(torch.stack(list(weights.values())) @ jacobian, update, atol=1e-5)


def test_pcgrad_projects_out_the_conflicting_components():
    update, (ga, gb), _ = _aggregate(PCGrad(), names="ab")
    assert ga @ gb < 0
    expected = (ga - (ga @ gb) / (gb @ gb) * gb) + (gb - (gb @ ga) / (ga @ ga) * ga)
    assert torch.allclose(update, expected, atol=1e-5)
    update, (ga, gc), _ = _aggregate(PCGrad(), names="ac")  # no conflict: the plain sum
    assert ga @ gc > 0
    assert torch.allclose(update, ga + gc, atol=1e-5)


def test_cagrad_improves_the_worst_task_within_a_ball_around_the_mean_gradient():
    c = 0.4
    update, jacobian, _ = _aggregate(CAGrad(c=c))
    mean = jacobian.mean(0)
    assert (update - mean).norm() <= c * mean.norm() * 1.001
    assert (jacobian @ update).min() > (jacobian @ mean).min()


def test_gradient_aggregation_needs_a_torchjd_aggregator():
    with pytest.raises(TypeError, match="Aggregator"):
        GradientAggregation(aggregator="upgrad")


# --- the module's delegation -----------------------------------------------------------------

class _Backbone(nn.Module):
    out_features = 8

    def __init__(self) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Flatten(), nn.Linear(3 * 4 * 4, 8), nn.ReLU())

    def forward(self, x):
        return self.net(x)


class _GradCapture(pl.Callback):
    def on_after_backward(self, trainer, module):
        self.backbone_grad = torch.cat([p.grad.flatten().clone()
                                        for p in module.backbone.parameters()])


def _train_steps(weighting, smile_labelled: bool, steps: int = 2):
    torch.manual_seed(0)
    tasks = {n: BinaryTask(n, in_features=8) for n in ("gender", "smile")}
    module = MTLFaceModule(_Backbone(), tasks, functools.partial(torch.optim.SGD, lr=0.1),
                           weighting=weighting)
    labels = torch.randint(0, 2, (16,))
    batch = {"image": torch.randn(16, 3, 4, 4),
             "targets": {"gender": labels, "smile": labels if smile_labelled
                         else torch.full((16,), -1)}}
    capture = _GradCapture()
    trainer = pl.Trainer(max_steps=steps, limit_val_batches=0, accelerator="cpu", logger=False,
                         enable_checkpointing=False, enable_progress_bar=False,
                         enable_model_summary=False, callbacks=[capture], log_every_n_steps=1)
    trainer.fit(module, torch.utils.data.DataLoader([batch] * steps, batch_size=None))
    return module, trainer, capture


@pytest.mark.parametrize("weighting", [
    FixedWeighting(), UncertaintyWeighting(), DynamicWeightAveraging(), GradNorm(),
    GradientAggregation(UPGrad()),
], ids=lambda w: type(w).__name__)
def test_each_task_weight_is_logged_for_labelled_tasks_only(weighting):
    _, trainer, capture = _train_steps(weighting, smile_labelled=False)
    assert "train/weight/gender" in trainer.callback_metrics
    assert "train/weight/smile" not in trainer.callback_metrics
    assert capture.backbone_grad.norm() > 0


def test_unlabelled_task_is_left_out_of_gradient_aggregation():
    # With the exact-zero gradient of the unlabelled task in the Jacobian, MGDA's min-norm
    # point of the convex hull would be 0 and the trunk would never learn.
    module, trainer, capture = _train_steps(GradientAggregation(MGDA()), smile_labelled=False)
    assert trainer.callback_metrics["train/weight/gender"] == pytest.approx(1.0)
    assert capture.backbone_grad.norm() > 0
    assert module.tasks["smile"].head[-1].weight.grad is None


def test_unlabelled_task_log_variance_is_not_trained():
    module, _, _ = _train_steps(UncertaintyWeighting(), smile_labelled=False)
    assert module.weighting.log_vars["smile"].item() == 0.0  # s/2 alone would push it down
    assert module.weighting.log_vars["gender"].item() != 0.0


def test_module_rejects_a_weighting_that_is_not_a_loss_weighting():
    tasks = {"gender": BinaryTask("gender", in_features=8)}
    with pytest.raises(TypeError, match="LossWeighting"):
        MTLFaceModule(_Backbone(), tasks, torch.optim.SGD, weighting=nn.Identity())


# --- every option end to end -----------------------------------------------------------------

WEIGHTINGS = sorted(p.stem for p in (CONF_DIR / "weighting").glob("*.yaml"))


@pytest.mark.parametrize("name", WEIGHTINGS)
def test_every_weighting_option_trains_end_to_end(data_dir, tmp_path, name):
    cfg = compose_train([*TINY_SOURCES, *SMALL_BKNET, "debug=fast", f"weighting={name}"],
                        output_dir=tmp_path)
    results = run(cfg)
    assert math.isfinite(results["test/loss"])
    assert 0 <= results["test/score"] <= 1


def test_weights_are_logged_only_on_the_steps_that_reach_the_loggers(tmp_path):
    """Step values cost a self.log each: with log_every_n_steps=2 over 4 steps the weights
    reach the logger twice, at the same steps as Lightning's own step logs."""
    from pytorch_lightning.loggers import CSVLogger

    torch.manual_seed(0)
    tasks = {n: BinaryTask(n, in_features=8) for n in ("gender", "smile")}
    module = MTLFaceModule(_Backbone(), tasks, functools.partial(torch.optim.SGD, lr=0.1),
                           weighting=UncertaintyWeighting())
    labels = torch.randint(0, 2, (16,))
    batch = {"image": torch.randn(16, 3, 4, 4), "targets": {"gender": labels, "smile": labels}}
    trainer = pl.Trainer(max_steps=4, limit_val_batches=0, accelerator="cpu",
                         logger=CSVLogger(tmp_path, name="", version=""), log_every_n_steps=2,
                         enable_checkpointing=False, enable_progress_bar=False,
                         enable_model_summary=False)
    trainer.fit(module, torch.utils.data.DataLoader([batch] * 4, batch_size=None))
    rows = pd.read_csv(tmp_path / "metrics.csv")
    weights = rows.dropna(subset=["train/weight/gender"])
    assert list(weights["step"]) == [1, 3]
    assert list(rows.dropna(subset=["train/loss_step"])["step"]) == [1, 3]
