"""``ModelInfo``: what inference needs besides the weights (the tasks and how to decode them,
the backbone's input, the face settings), as JSON next to an exported model, so an ONNX or
TorchScript file can be used without the run's config or Lightning."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from mtlface.backbones.spec import InputSpec
from mtlface.errors import UserError
from mtlface.predict.errors import RunFolderError
from mtlface.predict.faces import FaceSettings
from mtlface.tasks import Task, task_from_description

# 2: each task describes itself with its kind and class path (Task.describe).
METADATA_VERSION = 2


@dataclass(frozen=True)
class ModelInfo:
    tasks: list[dict[str, Any]]  # Task.describe() of each task, in output order
    input_spec: InputSpec
    faces: FaceSettings = field(default_factory=FaceSettings)
    extra: dict[str, Any] = field(default_factory=dict)  # provenance: run, checkpoint, parity

    @property
    def task_names(self) -> list[str]:
        return [t["name"] for t in self.tasks]

    @classmethod
    def from_model(cls, tasks: Mapping[str, Task], input_spec: InputSpec,
                   faces: FaceSettings, **extra: Any) -> ModelInfo:
        return cls([t.describe() for t in tasks.values()], input_spec, faces, extra)

    def build_tasks(self) -> dict[str, Task]:
        try:
            return {t["name"]: task_from_description(t) for t in self.tasks}
        except (KeyError, ValueError, UserError) as exc:
            raise RunFolderError(f"the export's task descriptions cannot be read ({exc}): "
                                 f"re-export the model") from None

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
