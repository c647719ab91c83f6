"""``ManifestDataset``: the rows of one source and split, as samples of the sample contract

``{"image": Tensor[C, H, W], "targets": {task: scalar tensor}}`` with a target for every
active task: the label, or the sentinel (-1 for classes, NaN for ages) where it is missing, so
default collate and cross-source concatenation work.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import torch
from torch.utils.data import Dataset

from mtlface.data.skips import SkipReport
from mtlface.data.transforms import reseed
from mtlface.labels import MISSING_CLASS, LabelSpec, resolve_labels

log = logging.getLogger(__name__)


class CorruptImageError(RuntimeError):
    """An image listed in a manifest that cannot be decoded."""


def load_image(path: str | Path, channels: int) -> np.ndarray:
    """Decode an image file to uint8 HxWx``channels`` (RGB or grey), whatever it is stored as
    (grey, RGB, RGBA, 16-bit)."""
    image = cv2.imread(str(path), cv2.IMREAD_GRAYSCALE if channels == 1 else cv2.IMREAD_COLOR_RGB)
    if image is None:
        what = "missing" if not Path(path).exists() else "unreadable or corrupt"
        raise CorruptImageError(f"image {path} is {what}; re-run preprocessing or drop the row "
                                f"from the manifest")
    return image[:, :, None] if image.ndim == 2 else image


class SampleKey(int):
    """A dataset index that carries the seed of that sample's augmentation, as the training
    sampler (``EpochSampler``) yields it. Any dataset takes it as the plain index it is;
    ``ManifestDataset`` also seeds its transform with it, so a sample's augmentation does not
    depend on the worker, process or restart that loads it."""

    seed: int

    def __new__(cls, index: int, seed: int) -> SampleKey:
        key = super().__new__(cls, index)
        key.seed = seed
        return key

    def __reduce__(self) -> tuple:  # to worker processes with its seed
        return type(self), (int(self), self.seed)


class ManifestDataset(Dataset):
    """Rows of a manifest (``path`` relative to ``root``). Rows whose image file is missing
    are dropped at construction, counted and logged."""

    def __init__(
        self,
        frame: pd.DataFrame,
        root: str | Path,
        tasks: Sequence[str] | Mapping[str, LabelSpec],
        channels: int,
        transform: Callable[..., dict] | None = None,
        name: str = "dataset",
    ) -> None:
        self.labels = resolve_labels(tasks)
        root = Path(root)
        paths = [root / p for p in frame["path"]]
        exists = np.fromiter((p.is_file() for p in paths), bool, len(paths))
        self.skipped = SkipReport()
        self.skipped.skip("image file missing", int((~exists).sum()))
        self.skipped.log(name)
        self.name = name
        self.paths = [p for p, ok in zip(paths, exists) if ok]
        frame = frame[exists]
        # Plain numpy arrays: cheap to index in workers, no pandas per sample.
        self.targets = {
            t: frame[t].to_numpy(dtype=np.int64, na_value=MISSING_CLASS)
            if spec.is_categorical
            else frame[t].to_numpy(dtype=np.float32, na_value=np.nan)
            for t, spec in self.labels.items()
        }
        self.channels = channels
        self.transform = transform

    def __len__(self) -> int:
        return len(self.paths)

    def load(self, index: int) -> np.ndarray:
        """The pixels of sample ``index`` (H x W x C uint8): the one step a faster image cache
        replaces (``benchmarks.packed``)."""
        return load_image(self.paths[index], self.channels)

    def __getitem__(self, index: int) -> dict:
        image = self.load(index)
        if self.transform is not None:
            if isinstance(index, SampleKey):
                reseed(self.transform, index.seed)
            image = self.transform(image=image)["image"]
        else:
            image = torch.from_numpy(image).permute(2, 0, 1).float().div_(255)
        return {
            "image": image,
            "targets": {t: torch.as_tensor(v[index]) for t, v in self.targets.items()},
        }

    def label_counts(self) -> dict[str, int]:
        """Number of labelled samples per task."""
        return {
            t: int((v != MISSING_CLASS).sum() if self.labels[t].is_categorical
                   else (~np.isnan(v)).sum())
            for t, v in self.targets.items()
        }
