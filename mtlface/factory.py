"""Config -> model and data: the one place that builds them, for training and inference alike
(training, resume, evaluation, export, pseudo-labels and the Predictor all call it)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from hydra.utils import instantiate
from omegaconf import DictConfig

from mtlface.labels import declared_labels

if TYPE_CHECKING:
    from mtlface.backbones import InputSpec
    from mtlface.data.datamodule import MultiSourceDataModule
    from mtlface.module import MTLFaceModule


def build_model(cfg: DictConfig) -> tuple[MTLFaceModule, InputSpec]:
    """The module (backbone + one task per entry of ``cfg.tasks``) and its backbone's input."""
    if not cfg.get("tasks"):
        raise ValueError("no tasks selected: pass e.g. tasks=[age,gender]")
    declared_labels(cfg.tasks)  # an unknown kind or a bad class list: one line naming the task
    backbone = instantiate(cfg.backbone)
    tasks = {name: instantiate(task_cfg, in_features=backbone.out_features)
             for name, task_cfg in cfg.tasks.items()}
    for name, task in tasks.items():
        if task.name != name:
            raise ValueError(f"tasks.{name} builds a task named {task.name!r}: the key and the "
                             f"task name must match")
    model = instantiate(cfg.model, backbone=backbone, tasks=tasks,
                        weighting=instantiate(cfg.weighting))
    return model, backbone.input_spec


def build_datamodule(cfg: DictConfig, input_spec: InputSpec) -> MultiSourceDataModule:
    """The run's sources for its tasks (their declared labels validate the manifests), shaped
    for the backbone's input."""
    labels = {name: spec.to_dict() for name, spec in declared_labels(cfg.tasks).items()}
    return instantiate(cfg.data, tasks=labels, input_spec=input_spec)
