"""``Predictor``: image -> faces -> one batch through the model -> typed predictions, with the
detector and crop settings the model was trained with."""

from __future__ import annotations

import dataclasses
import logging
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch
from omegaconf import DictConfig, OmegaConf

from mtlface.backbones.spec import InputSpec
from mtlface.calibration.store import Calibration, load_run_calibration
from mtlface.data.preprocess.crop import CropSpec
from mtlface.data.preprocess.detectors import Face
from mtlface.data.provenance import SYNTHETIC_NOTICE, trained_on_synthetic_only
from mtlface.data.transforms import build_transform
from mtlface.predict.backends import Backend, OnnxBackend, TorchBackend, TorchScriptBackend
from mtlface.predict.errors import RunFolderError
from mtlface.predict.faces import FaceFinder, FaceSettings, ImageInput, settings_from_config, to_rgb
from mtlface.predict.metadata import ModelInfo, metadata_path
from mtlface.predict.results import FacePrediction, TaskPrediction, decode_batch, with_intervals
from mtlface.predict.runs import best_checkpoint, build_trained_model, load_config
from mtlface.runs import RunFolder
from mtlface.tasks import Task

BACKENDS = ("torch", "onnx", "torchscript")


class Predictor:
    """Build one with :meth:`from_run` (a ``train.py`` run folder), :meth:`from_checkpoint` or
    :meth:`from_exported` (an ONNX / TorchScript file from ``python -m mtlface.export``).

    ``detector`` and ``crop`` override the run's face settings (``MTCNNDetector`` keywords,
    ``CropSpec`` fields), e.g. ``detector={"min_score": 0.8}``.

    ``calibration`` (the run's ``calibration.json``: :meth:`from_run` loads it, an export
    carries it in its metadata) gives each task the probabilities of its logits divided by its
    temperature, and the age its interval; predicted classes and ages are unchanged."""

    def __init__(self, backend: Backend, tasks: Mapping[str, Task], input_spec: InputSpec,
                 faces: FaceSettings | None = None, device: str = "cpu",
                 calibration: Calibration | None = None, notice: str | None = None) -> None:
        self.backend = backend
        self.calibration = calibration
        # What the model cannot know (trained on synthetic faces only), said once by the demo.
        self.notice = notice
        self.tasks = dict(tasks)
        self.input_spec = input_spec
        self.faces = faces or FaceSettings()
        self.device = device
        self.transform = build_transform(input_spec, train=False)
        self.finder = FaceFinder(self.faces, device)

    # -- construction -------------------------------------------------------------------------

    @classmethod
    def from_run(cls, run_dir: str | os.PathLike, device: str = "cpu", backend: str = "torch",
                 checkpoint: str | os.PathLike | None = None,
                 detector: Mapping[str, Any] | None = None,
                 crop: CropSpec | Mapping[str, Any] | None = None) -> Predictor:
        """``backend="torch"``: the run's best checkpoint (or ``checkpoint``); ``"onnx"`` /
        ``"torchscript"``: the model exported into ``<run_dir>/export/``."""
        if backend not in BACKENDS:
            raise ValueError(f"unknown backend {backend!r}; valid: {BACKENDS}")
        if backend != "torch":
            path = RunFolder(run_dir).exported(backend)
            if not path.is_file():
                load_config(run_dir)  # a clearer message when the run itself is missing
                raise RunFolderError(f"{path} not found: export it first with `python -m "
                                     f"mtlface.export run={run_dir} format={backend}`")
            predictor = cls.from_exported(path, device, detector=detector, crop=crop)
            if predictor.calibration is None and RunFolder(run_dir).calibration.is_file():
                logging.getLogger(__name__).warning(
                    "%s was exported before the run was calibrated: its probabilities are "
                    "uncalibrated; export it again to carry calibration.json", path)
            return predictor
        cfg = load_config(run_dir)
        checkpoint = checkpoint or best_checkpoint(run_dir)
        return cls.from_checkpoint(checkpoint, cfg, device, detector=detector, crop=crop,
                                   calibration=load_run_calibration(run_dir, checkpoint))

    @classmethod
    def from_checkpoint(cls, checkpoint: str | os.PathLike, config: str | os.PathLike | DictConfig,
                        device: str = "cpu", detector: Mapping[str, Any] | None = None,
                        crop: CropSpec | Mapping[str, Any] | None = None,
                        calibration: Calibration | str | os.PathLike | None = None
                        ) -> Predictor:
        """A Lightning checkpoint (or a plain ``state_dict`` file) and the run's config (a
        ``DictConfig`` or the path of its ``.hydra/config.yaml``); ``calibration``: a
        ``Calibration`` or the path of a ``calibration.json`` (none: uncalibrated)."""
        if not isinstance(config, DictConfig):
            if not Path(config).is_file():
                raise RunFolderError(f"config {config} does not exist")
            config = OmegaConf.load(config)
        model, spec = build_trained_model(config, checkpoint, device)
        faces = _override(settings_from_config(config), detector, crop)
        if calibration is not None and not isinstance(calibration, Calibration):
            calibration = Calibration.load(calibration)
        notice = SYNTHETIC_NOTICE if trained_on_synthetic_only(config) else None
        return cls(TorchBackend(model, device), model.tasks, spec, faces, device, calibration,
                   notice)

    @classmethod
    def from_exported(cls, path: str | os.PathLike, device: str = "cpu",
                      detector: Mapping[str, Any] | None = None,
                      crop: CropSpec | Mapping[str, Any] | None = None) -> Predictor:
        """An exported model and the ``.json`` written beside it (tasks, input, faces)."""
        info = ModelInfo.load(metadata_path(path))
        backend = OnnxBackend(path, device) if Path(path).suffix == ".onnx" \
            else TorchScriptBackend(path, device)
        stored = info.extra.get("calibration")
        calibration = Calibration.from_dict(stored, str(metadata_path(path))) if stored else None
        return cls(backend, info.build_tasks(), info.input_spec,
                   _override(info.faces, detector, crop), device, calibration,
                   info.extra.get("notice"))

    # -- prediction ---------------------------------------------------------------------------

    @property
    def task_names(self) -> list[str]:
        return list(self.tasks)

    def predict(self, image: ImageInput) -> list[FacePrediction]:
        """Every face of ``image`` (a path, PIL image or HxWx3 uint8 RGB array), left to right;
        ``[]`` when there is none."""
        return self.predict_many([image])[0]

    def predict_many(self, images: Sequence[ImageInput]) -> list[list[FacePrediction]]:
        """:meth:`predict` for several images (e.g. video frames) at once: one detection batch
        for images of equal size and one model batch for all their faces."""
        rgbs = [to_rgb(image) for image in images]
        return self.predict_at(rgbs, self.finder.find_all(rgbs))

    def predict_at(self, images: Sequence[np.ndarray], faces: Sequence[Sequence[Face]]
                   ) -> list[list[FacePrediction]]:
        """The faces given for each RGB uint8 image (detected earlier, or boxes a tracker
        carried), cut as in training: one model batch for all of them."""
        crops = [self.finder.crop(rgb, f) for rgb, found in zip(images, faces) for f in found]
        preds = iter(self._run(crops) if crops else [])
        return [[FacePrediction(tuple(f.box), f.score, next(preds)) for f in found]
                for found in faces]

    def predict_faces(self, crops: Sequence[ImageInput]) -> list[FacePrediction]:
        """Already-cropped faces (cut like the training crops), no detection: one batch."""
        arrays = [to_rgb(c) for c in crops]
        if not arrays:
            return []
        preds = self._run(arrays)
        return [FacePrediction((0.0, 0.0, float(a.shape[1]), float(a.shape[0])), float("nan"), p)
                for a, p in zip(arrays, preds)]

    def preprocess(self, crops: Sequence[np.ndarray]) -> torch.Tensor:
        """RGB uint8 crops -> the normalised batch the backbone takes (as in evaluation)."""
        grey = self.input_spec.channels == 1
        return torch.stack([
            self.transform(image=cv2.cvtColor(c, cv2.COLOR_RGB2GRAY)[..., None] if grey
                           else c)["image"] for c in crops])

    def _run(self, crops: Sequence[np.ndarray]) -> list[dict[str, TaskPrediction]]:
        raw = self.backend(self.preprocess(crops))
        if self.calibration is None:
            return decode_batch(self.tasks, raw)
        preds = decode_batch(self.tasks, raw, self.calibration.temperatures)
        if self.calibration.interval is not None:
            with_intervals(preds, self.calibration.interval)
        return preds

    def __repr__(self) -> str:
        return (f"Predictor(backend={self.backend.name}, tasks={self.task_names}, "
                f"input={self.input_spec.size}x{self.input_spec.size}x{self.input_spec.channels},"
                f" device={self.device}, calibrated={self.calibration is not None})")


def _override(faces: FaceSettings, detector: Mapping[str, Any] | None,
              crop: CropSpec | Mapping[str, Any] | None) -> FaceSettings:
    if detector:
        faces = FaceSettings({**faces.detector, **detector}, faces.crop)
    if isinstance(crop, CropSpec):
        faces = FaceSettings(faces.detector, crop)
    elif crop:
        faces = FaceSettings(faces.detector, dataclasses.replace(faces.crop, **crop))
    return faces
