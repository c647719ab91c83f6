"""Finding and cutting out every face of an input image, with the detector and crop settings
the model was trained with (the run's preprocessing settings), reusing the preprocessing
stage's ``MTCNNDetector`` and ``crop_face``."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
from omegaconf import DictConfig, OmegaConf
from PIL import Image, ImageOps

from mtlface.data.preprocess.crop import CropSpec, crop_face
from mtlface.data.preprocess.detectors import Face, MTCNNDetector, as_rgb
from mtlface.data.preprocess.images import ImageError, load_rgb
from mtlface.predict.errors import ImageInputError

ImageInput = str | os.PathLike | Image.Image | np.ndarray


@dataclass(frozen=True)
class FaceSettings:
    """``detector``: ``MTCNNDetector`` keyword arguments (omitted ones take its defaults);
    ``crop``: how a detected face is cut out."""

    detector: dict[str, Any] = field(default_factory=dict)
    crop: CropSpec = field(default_factory=CropSpec)

    def to_dict(self) -> dict[str, Any]:
        return {"detector": dict(self.detector), "crop": asdict(self.crop)}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> FaceSettings:
        return cls(dict(data.get("detector") or {}), CropSpec(**(data.get("crop") or {})))


def settings_from_config(cfg: DictConfig) -> FaceSettings:
    """The detector and crop settings of the run's first preprocessed (``PreprocessedCache``)
    source: the crops the model saw were made with them. An MTCNN source wins over a
    pass-through one (already-cropped data gives only the crop settings); sources that were
    not preprocessed (the synthetic default, a manifest given by its path) leave the defaults."""
    found: FaceSettings | None = None
    manifests = (cfg.get("data") or {}).get("manifests") or {}
    for source in manifests.values():
        if not hasattr(source, "get") or not str(source.get("_target_", "")).endswith(
                "PreprocessedCache"):
            continue
        crop = CropSpec(**_plain(source.get("crop")))
        detector = _plain(source.get("detector"))
        if str(detector.pop("_target_", "")).endswith("MTCNNDetector"):
            return FaceSettings(detector, crop)
        found = found or FaceSettings({}, crop)
    return found or FaceSettings()


def _plain(node: Any) -> dict[str, Any]:
    if node is None:
        return {}
    if isinstance(node, DictConfig):
        return OmegaConf.to_container(node, resolve=True)  # type: ignore[return-value]
    return dict(node)


class FaceFinder(MTCNNDetector):
    """MTCNN that keeps every face scoring at least ``min_score`` (training's detector keeps
    one face per image and skips ambiguous ones; a photo to annotate has any number)."""

    def __init__(self, settings: FaceSettings, device: str = "cpu") -> None:
        known = {"min_face_size", "thresholds", "factor", "detect_size", "min_score", "backend"}
        # pick and max_second_score choose one face per labelled image: no meaning here.
        super().__init__(**{k: v for k, v in settings.detector.items() if k in known})
        self.crop_spec = settings.crop
        self.device = device

    def find(self, image: np.ndarray) -> list[Face]:
        """Faces of an RGB uint8 image, left to right."""
        return self.find_all([image])[0]

    def find_all(self, images: Sequence[np.ndarray]) -> list[list[Face]]:
        """Faces of each RGB uint8 image, left to right. Images whose detection canvases have
        the same shape (all of them with ``detect_size`` set; equal-sized video frames
        always) run through MTCNN as one batch."""
        if self._mtcnn is None:
            self.setup(self.device)
        found: list[list[Face]] = [[] for _ in images]
        groups: dict[tuple[int, ...], list[int]] = {}
        canvases, scales = {}, {}
        for i, image in enumerate(images):
            image = as_rgb(image)
            if min(image.shape[:2]) < 12:  # below MTCNN's smallest window
                continue
            canvases[i], scales[i] = self._canvas(image)
            if min(canvases[i].shape[:2]) >= self.min_face_size:  # else: no pyramid, no face
                groups.setdefault(canvases[i].shape, []).append(i)
        for members in groups.values():
            boxes, probs, points = self._mtcnn.detect(np.stack([canvases[i] for i in members]),
                                                      landmarks=True)
            for j, i in enumerate(members):
                found[i] = self._faces(boxes[j], probs[j], points[j], scales[i])
        return found

    def _faces(self, boxes, probs, points, scale: float) -> list[Face]:
        if boxes is None or len(boxes) == 0:
            return []
        boxes = np.asarray(boxes, dtype=float).reshape(-1, 4) / scale
        probs = np.asarray(probs, dtype=float).reshape(-1)
        points = np.asarray(points, dtype=float).reshape(-1, 5, 2) / scale
        keep = [i for i in np.argsort(boxes[:, 0], kind="stable") if probs[i] >= self.min_score]
        return [Face(tuple(boxes[i].tolist()), float(probs[i]), points[i], len(keep))
                for i in keep]

    def crop(self, image: np.ndarray, face: Face) -> np.ndarray:
        return crop_face(image, face, self.crop_spec)


def to_rgb(image: ImageInput) -> np.ndarray:
    """A path, PIL image or ``HxWx3`` / ``HxW`` uint8 array as an RGB uint8 array. Files and
    PIL images above ``PIL.Image.MAX_IMAGE_PIXELS`` are refused (decompression bombs)."""
    if isinstance(image, str | os.PathLike):
        try:
            return load_rgb(os.fspath(image)).image
        except ImageError as exc:
            raise ImageInputError(_explain(os.fspath(image), exc)) from None
    if isinstance(image, Image.Image):
        _check_pixels(image.width * image.height, "PIL image")
        return np.asarray(ImageOps.exif_transpose(image).convert("RGB"))
    if isinstance(image, np.ndarray):
        if image.dtype != np.uint8 or not (image.ndim == 2 or (image.ndim == 3 and
                                                                image.shape[2] in (1, 3))):
            raise ImageInputError(f"expected an HxWx3 (RGB) or HxW uint8 array, got "
                                  f"{image.dtype} of shape {image.shape}")
        if image.ndim == 2 or image.shape[2] == 1:
            image = np.repeat(image.reshape(image.shape[0], image.shape[1], 1), 3, axis=2)
        return np.ascontiguousarray(image)
    raise ImageInputError(f"expected an image path, PIL image or uint8 array, got "
                          f"{type(image).__name__}")


def _check_pixels(pixels: int, what: str) -> None:
    limit = Image.MAX_IMAGE_PIXELS
    if limit is not None and pixels > limit:
        raise ImageInputError(f"{what} has {pixels} pixels, more than PIL.Image.MAX_IMAGE_PIXELS "
                              f"({limit}): refused as a possible decompression bomb")


def _explain(path: str, exc: ImageError) -> str:
    if exc.reason == "image too large to decode":
        return (f"{path}: image too large (over PIL.Image.MAX_IMAGE_PIXELS = "
                f"{Image.MAX_IMAGE_PIXELS} pixels): refused as a possible decompression bomb")
    if exc.reason == "image file missing":
        return f"{path}: no such file"
    return f"{path}: cannot read the image ({exc.reason})"
