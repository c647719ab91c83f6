"""Packed image caches, the candidate cache format the pipeline benchmark measures against
per-file JPEG decoding (``python -m benchmarks --parts pipeline``). Decoding is not the
training bottleneck (the loader delivers 20-80x what training consumes), so the DataModule
does not use it; it stays here, measured, for when a faster model makes decoding matter.

The images of one source split decoded once into a single uint8 array
``(N, S, S, C)`` in a ``.npy`` file that training memory-maps, so a sample costs a copy out of
the page cache instead of opening and decoding a JPEG.

The images are stored at the size the train and eval transforms resize to first
(``spec.resize``, else ``spec.size``), resized by that same transform, so a packed sample is
bit-identical to the one decoded from the file (the transforms' resize finds the size already
right) and the pack is as small as the backbone allows: 2.3 KB per 48 px grey face, 196 KB per
256 px RGB one. The file name carries a hash of the image paths, their sizes and modification
times, the channels and the size, so a changed source or backbone input writes a new pack and
an unchanged one is reused.

    dataset = ManifestDataset(frame, root, tasks, spec.channels, transform)
    packed = PackedDataset.pack(dataset, spec, cache_dir)     # packs once, then memory-maps
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from pathlib import Path

import albumentations as A
import numpy as np

from mtlface.backbones import InputSpec
from mtlface.data.dataset import ManifestDataset, load_image
from mtlface.data import transforms

log = logging.getLogger(__name__)


def stored_size(spec: InputSpec) -> int:
    """The side the pack stores: what the transforms resize to before anything else."""
    return spec.resize or spec.size


def pack_key(dataset: ManifestDataset, size: int) -> str:
    stats = []
    for path in dataset.paths:
        st = path.stat()
        stats.append((str(path), st.st_size, st.st_mtime_ns))
    blob = json.dumps({"images": stats, "channels": dataset.channels, "size": size})
    return hashlib.sha256(blob.encode()).hexdigest()[:12]


def pack_images(dataset: ManifestDataset, spec: InputSpec, out: Path) -> Path:
    """Decode and resize every image of ``dataset`` into ``out`` (``.npy``), written under a
    temporary name and renamed, so a pack on disk is always complete."""
    resize = transforms.geometry(spec, train=False)[0]
    if not isinstance(resize, A.Resize):  # geometry() always resizes first; a pack relies on it
        raise TypeError(f"expected the transforms to start with a Resize, got {resize!r}")
    size = stored_size(spec)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.{os.getpid()}.tmp")
    shape = (len(dataset.paths), size, size, dataset.channels)
    images = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.uint8, shape=shape)
    try:
        for i, path in enumerate(dataset.paths):
            image = resize(image=load_image(path, dataset.channels))["image"]
            images[i] = image.reshape(size, size, dataset.channels)
        images.flush()
        del images
        os.replace(tmp, out)
    finally:
        tmp.unlink(missing_ok=True)
    return out


class PackedDataset(ManifestDataset):
    """The samples of ``dataset`` (same order, targets and transform, and the same per-sample
    augmentation seed when the index carries one), pixels read from a packed array instead of
    decoded from the files. Each worker process maps the file itself, on first use."""

    def __init__(self, dataset: ManifestDataset, file: str | os.PathLike) -> None:
        self.file = Path(file)
        shape = np.load(self.file, mmap_mode="r").shape
        if shape[0] != len(dataset) or shape[3] != dataset.channels:
            raise ValueError(f"packed images {self.file} hold {shape[0]} x {shape[3]} channels, "
                             f"{dataset.name} has {len(dataset)} x {dataset.channels}: re-pack")
        self.__dict__.update(dataset.__dict__)  # the same rows, targets and transform
        self._images: np.ndarray | None = None

    @classmethod
    def pack(cls, dataset: ManifestDataset, spec: InputSpec, folder: str | os.PathLike
             ) -> PackedDataset:
        """The packed copy of ``dataset`` in ``folder``, packed first if it is not there."""
        size = stored_size(spec)
        name = dataset.name.replace("/", "-")
        file = Path(folder) / f"{name}-{size}px-{pack_key(dataset, size)}.npy"
        if not file.is_file():
            log.info("packing %d images of %s into %s", len(dataset), dataset.name, file)
            pack_images(dataset, spec, file)
        return cls(dataset, file)

    def load(self, index: int) -> np.ndarray:
        if self._images is None:
            self._images = np.load(self.file, mmap_mode="r")
        return np.array(self._images[index])  # a private copy: transforms may work in place
