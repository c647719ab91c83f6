"""The objective is a metric and a direction: checkpointing, the sweeper and summaries agree."""

import pandas as pd
import pytest
import torch
from omegaconf import OmegaConf

from conftest import SMALL_BKNET, TINY_SOURCES, compose_train
from mtlface.config import optuna_direction, register_resolvers
from mtlface.errors import ConfigError
from mtlface.train import run


def test_a_min_objective_keeps_the_lowest_checkpoint(data_dir, tmp_path):
    cfg = compose_train([*TINY_SOURCES, *SMALL_BKNET, "tasks=[age]", "tasks.age.regression=true",
                         "objective.metric=val/age/mae", "objective.mode=min",
                         "trainer.max_epochs=4", "trainer.limit_train_batches=3",
                         "trainer.limit_val_batches=2", "test=false", "logger=csv",
                         "model.optimizer.lr=0.02"], output_dir=tmp_path)
    run(cfg)
    history = pd.read_csv(tmp_path / "csv" / "metrics.csv").dropna(subset=["val/age/mae"])
    maes = history.set_index("epoch")["val/age/mae"]
    (kept,) = [p for p in (tmp_path / "checkpoints").glob("*.ckpt") if p.name != "last.ckpt"]
    best_epoch = torch.load(kept, map_location="cpu", weights_only=True)["epoch"]
    assert maes.idxmin() == best_epoch, (maes.to_dict(), kept.name)
    assert f"score{maes.min():.4f}" in kept.name  # the file name carries the objective's value
    assert maes.nunique() > 1  # the epochs differ, so the choice is a real one


def test_the_optuna_direction_follows_the_mode():
    register_resolvers()
    cfg = compose_train(["hparams_search=optuna", "objective.mode=min"])
    assert OmegaConf.select(cfg, "hydra.sweeper.direction") == "minimize"
    cfg = compose_train(["hparams_search=optuna"])
    assert OmegaConf.select(cfg, "hydra.sweeper.direction") == "maximize"
    with pytest.raises(ConfigError, match="objective.mode=lowest"):
        optuna_direction("lowest")
