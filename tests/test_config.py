import subprocess
import sys

import pytest
import torch

from conftest import ROOT, compose_train
from mtlface.config import group_options, unknown_group_choices
from mtlface.train import build_model

TASK_SETS = ["[age,gender]", "[smile]", "[emotion]", "[age,gender,smile,emotion,race]"]


@pytest.mark.parametrize("tasks", TASK_SETS)
@pytest.mark.parametrize("backbone", group_options("backbone"))
def test_every_backbone_and_task_set_composes_and_runs_forward(backbone, tasks):
    cfg = compose_train([f"backbone={backbone}", f"tasks={tasks}"])
    model, spec = build_model(cfg)
    model.eval()
    with torch.no_grad():
        out = model(torch.randn(2, spec.channels, spec.size, spec.size))
    assert set(out) == set(tasks.strip("[]").split(","))
    for name, task in model.tasks.items():
        assert out[name].shape[0] == 2 and torch.isfinite(out[name]).all()


@pytest.mark.parametrize("num_bins", [3, 5, 10])
def test_age_bins_override_sets_the_head_size(num_bins):
    model, _ = build_model(compose_train([f"age_bins.num_bins={num_bins}", "tasks=[age]"]))
    assert model.tasks["age"].head[-1].out_features == num_bins


def test_age_regression_override_gives_one_output():
    model, _ = build_model(compose_train(["tasks.age.regression=true", "tasks=[age]"]))
    assert model.tasks["age"].head[-1].out_features == 1


@pytest.mark.parametrize("experiment", group_options("experiment"))
def test_every_experiment_composes(experiment):
    cfg = compose_train([f"experiment={experiment}"])
    assert cfg.tasks and cfg.backbone._target_


@pytest.mark.parametrize(
    "overrides, message",
    [
        (["tasks=[age,foo]"], "unknown tasks 'foo'; valid tasks: age, age_group, arousal, celeba40, emotion, eyeglasses"),
        (["backbone=resnet"], "unknown backbone 'resnet'; valid backbone: bknet"),
        (["-m", "data=nope,synthetic"], "unknown data 'nope'; valid data: adience, adience_fold"),
    ],
)
def test_unknown_group_options_are_listed(overrides, message):
    assert any(m.startswith(message) for m in unknown_group_choices(overrides))


def test_train_py_exits_with_the_list_of_valid_names():
    proc = subprocess.run([sys.executable, "train.py", "tasks=[age,hat]"], cwd=ROOT,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode != 0
    assert "unknown tasks 'hat'; valid tasks: age, age_group, arousal, celeba40, emotion" in proc.stderr


def test_a_wrong_config_value_is_a_clear_error():
    with pytest.raises(Exception, match="num_bins must be >= 2"):
        build_model(compose_train(["age_bins.num_bins=1"]))


def test_group_options_of_a_users_config_folder_are_known(tmp_path):
    """A task declared in a config folder of one's own (hydra.searchpath) is a valid choice."""
    (tmp_path / "tasks").mkdir()
    (tmp_path / "tasks" / "wears_hat.yaml").write_text("wears_hat: {}\n")
    overrides = ["tasks=[gender,wears_hat]"]
    assert unknown_group_choices(overrides)  # not without the folder
    assert unknown_group_choices([f"hydra.searchpath=[file://{tmp_path}]", *overrides]) == []
