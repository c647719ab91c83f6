"""The base of readers for benchmarks that ship a train and a test set but no val set: the val
set is carved from train, seeded and reproducible, group-aware where identities are known."""

from __future__ import annotations

import os
from collections.abc import Sequence

import numpy as np
import pandas as pd

from mtlface.data.readers.base import DatasetReader
from mtlface.data.readers.splits import seeded_split


class CarvedValReader(DatasetReader):
    """The dataset's own test set stays test; ``val_fraction`` of the train rows (a seeded,
    reproducible choice, see ``splits.seeded_split``) become val, the rest stay train."""

    def __init__(
        self,
        root: str | os.PathLike,
        source: str | None = None,
        val_fraction: float = 0.1,
        seed: int = 0,
    ) -> None:
        super().__init__(root, source)
        if not 0 <= val_fraction < 1:
            raise ValueError(f"need 0 <= val_fraction < 1, got {val_fraction}")
        self.val_fraction = val_fraction
        self.seed = seed

    def carve_val(self, split: Sequence[str] | pd.Series,
                  keys: Sequence[object] | pd.Series) -> np.ndarray:
        """``split`` (``"train"``/``"test"`` per row) with a seeded part of the train rows
        turned into ``"val"``; ``keys`` are the rows' group keys (rows sharing one stay
        together), or anything unique per row where there is no identity."""
        split = np.asarray(split, dtype=object).copy()
        keys = pd.Series(keys, dtype=object).reset_index(drop=True)
        train = split == "train"
        if train.any():
            split[train] = seeded_split(keys[train], self.val_fraction, 0.0, self.seed)
        return split
