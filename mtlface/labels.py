"""What a label column holds, as the data side needs it: its classes (a class index per row)
or its valid range (a number per row). The label conventions themselves are the task
declarations in ``conf/tasks/`` (class names and their order, value ranges); this module
reads them, so readers, the manifest and the datasets agree with the models by construction.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from functools import cache
from importlib.resources import files
from typing import Any

from omegaconf import DictConfig, OmegaConf

from mtlface.errors import ConfigError


@dataclass(frozen=True)
class LabelSpec:
    """One label column. ``classes`` is None for a numeric label (age in years, valence);
    ``value_range`` is its valid closed range (None: any finite number)."""

    name: str
    classes: tuple[str, ...] | None = None
    value_range: tuple[float, float] | None = None

    @property
    def is_categorical(self) -> bool:
        return self.classes is not None

    @property
    def num_classes(self) -> int:
        if self.classes is None:
            raise ValueError(f"label {self.name!r} is numeric: it has no classes")
        return len(self.classes)

    def to_dict(self) -> dict[str, Any]:
        return {"classes": list(self.classes) if self.classes is not None else None,
                "value_range": list(self.value_range) if self.value_range else None}

    @classmethod
    def from_mapping(cls, name: str, data: Mapping[str, Any]) -> LabelSpec:
        classes, value_range = data.get("classes"), data.get("value_range")
        return cls(name, tuple(str(c) for c in classes) if classes is not None else None,
                   (float(value_range[0]), float(value_range[1])) if value_range else None)


# Sentinels for a missing label, chosen so a batch still collates into one tensor per task.
MISSING_CLASS = -1
MISSING_VALUE = float("nan")


def task_label(name: str, task_cfg: Any) -> LabelSpec:
    """The label a declared task (its config node: ``_target_`` names its kind) learns from;
    the kind's ``label_spec`` decides what its declaration must give (classes or a range)."""
    from mtlface.tasks.base import Task, kind_class

    target = task_cfg.get("_target_") if isinstance(task_cfg, Mapping | DictConfig) else None
    kind = kind_class(target)
    if kind is None:
        raise ConfigError(f"tasks.{name}: unknown task kind {target!r}; set _target_ in its "
                          f"conf/tasks/ file to one of {', '.join(Task.kinds())}")
    options = OmegaConf.to_container(task_cfg, resolve=False) if isinstance(
        task_cfg, DictConfig) else dict(task_cfg)
    return kind.label_spec(options.get("name", name), options)


def declared_labels(tasks_cfg: Mapping[str, Any]) -> dict[str, LabelSpec]:
    """``{task: LabelSpec}`` of a composed ``tasks`` config."""
    return {name: task_label(name, node) for name, node in tasks_cfg.items()}


@cache
def shipped_labels() -> dict[str, LabelSpec]:
    """The labels of every task declared in the shipped ``conf/tasks/`` files: the
    conventions a reader converts a dataset to (e.g. the emotion classes' order)."""
    folder = files("mtlface.conf") / "tasks"
    labels: dict[str, LabelSpec] = {}
    for entry in sorted(folder.iterdir(), key=lambda e: e.name):
        if entry.name.endswith(".yaml") and not entry.name.startswith("_"):
            node = OmegaConf.create(entry.read_text())
            labels |= declared_labels({k: n for k, n in node.items()
                                       if not str(k).startswith("_")})
    return labels


def label(name: str) -> LabelSpec:
    """The shipped convention of one label (``label("emotion").classes``)."""
    try:
        return shipped_labels()[name]
    except KeyError:
        raise KeyError(f"no task {name!r} is declared in conf/tasks/") from None


def resolve_labels(tasks: Iterable[str] | Mapping[str, Any]) -> dict[str, LabelSpec]:
    """Task names (their shipped declarations), or ``{name: LabelSpec or {classes,
    value_range}}`` (declared by a run's config) -> ``{name: LabelSpec}``."""
    if isinstance(tasks, Mapping | DictConfig):
        return {name: spec if isinstance(spec, LabelSpec) else LabelSpec.from_mapping(name, spec)
                for name, spec in tasks.items()}
    shipped = shipped_labels()
    unknown = [t for t in tasks if t not in shipped]
    if unknown:
        raise ConfigError(f"unknown task(s) {unknown}: declare them in conf/tasks/ (shipped: "
                          f"{', '.join(shipped)})")
    return {t: shipped[t] for t in tasks}
