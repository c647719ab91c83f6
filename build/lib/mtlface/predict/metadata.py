"""``ModelInfo``: what inference needs besides the weights (the tasks and how to decode them,
the backbone's input, the face settings), as JSON next to an exported model, so an ONNX or
TorchScript file can be used without the run's config or Lightning."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from torch import nn

from mtlface.backbones.spec import InputSpec
from mtlface.predict.errors import RunFolderError
from mtlface.predict.faces import FaceSettings
from mtlface.tasks import AgeBins, AgeTask, ClassificationTask, Task

METADATA_VERSION = 1


def _no_head(in_features: int, out_features: int) -> nn.Module:
    return nn.Identity()  # rebuilt tasks only decode: their heads never run


def describe_task(task: Task) -> dict[str, Any]:
    if isinstance(task, AgeTask):
        return {"name": task.name, "kind": "age", "classes": task.bins.names,
                "edges": task.bins.edges, "centres": task.bins.centres,
                "readout": task.readout.value}
    if isinstance(task, ClassificationTask):
        return {"name": task.name, "kind": "class", "classes": list(task.class_names)}
    raise TypeError(f"cannot describe task type {type(task).__name__}")


def task_from_description(desc: Mapping[str, Any]) -> Task:
    """A task whose ``decode`` reads the exported head's outputs exactly as the trained one."""
    if desc["kind"] == "age":
        bins = AgeBins(desc["edges"], desc["centres"])
        return AgeTask(1, bins, readout=desc["readout"], head=_no_head, name=desc["name"])
    task = ClassificationTask(desc["name"], 1, head=_no_head)
    if list(task.class_names) != list(desc["classes"]):
        raise RunFolderError(f"task {desc['name']}: the exported classes {desc['classes']} differ "
                             f"from this version's {list(task.class_names)}: re-export the model")
    return task


@dataclass(frozen=True)
class ModelInfo:
    tasks: list[dict[str, Any]]  # describe_task() of each task, in output order
    input_spec: InputSpec
    faces: FaceSettings = field(default_factory=FaceSettings)
    extra: dict[str, Any] = field(default_factory=dict)  # provenance: run, checkpoint, parity

    @property
    def task_names(self) -> list[str]:
        return [t["name"] for t in self.tasks]

    @classmethod
    def from_model(cls, tasks: Mapping[str, Task], input_spec: InputSpec,
                   faces: FaceSettings, **extra: Any) -> ModelInfo:
        return cls([describe_task(t) for t in tasks.values()], input_spec, faces, extra)

    def build_tasks(self) -> dict[str, Task]:
        return {t["name"]: task_from_description(t) for t in self.tasks}

    def to_json(self) -> str:
        return json.dumps({"version": METADATA_VERSION, "tasks": self.tasks,
                           "input_spec": asdict(self.input_spec), "faces": self.faces.to_dict(),
                           **self.extra}, indent=2) + "\n"

    @classmethod
    def load(cls, path: str | Path) -> ModelInfo:
        path = Path(path)
        if not path.is_file():
            raise RunFolderError(f"{path} not found: it is written next to the model by "
                                 f"`python -m mtlface.export`")
        data = json.loads(path.read_text())
        if data.get("version") != METADATA_VERSION:
            raise RunFolderError(f"{path}: metadata version {data.get('version')} is not "
                                 f"{METADATA_VERSION}: re-export the model")
        spec = data["input_spec"]
        spec = InputSpec(spec["size"], spec["channels"], tuple(spec["mean"]), tuple(spec["std"]),
                         spec.get("resize"))
        extra = {k: v for k, v in data.items()
                 if k not in ("version", "tasks", "input_spec", "faces")}
        return cls(data["tasks"], spec, FaceSettings.from_dict(data.get("faces") or {}), extra)


def metadata_path(model_path: str | Path) -> Path:
    """``model.onnx`` -> ``model.onnx.json``: the sidecar of an exported model (one per file,
    so an ONNX and a TorchScript export can share a folder)."""
    path = Path(model_path)
    return path.with_name(path.name + ".json")


EXPORT_FILES = {"onnx": "model.onnx", "torchscript": "model.pt"}


def exported_path(run_dir: str | Path, fmt: str) -> Path:
    """Where ``python -m mtlface.export run=<run_dir> format=<fmt>`` writes by default."""
    if fmt not in EXPORT_FILES:
        raise ValueError(f"unknown export format {fmt!r}; valid: {list(EXPORT_FILES)}")
    return Path(run_dir) / "export" / EXPORT_FILES[fmt]
