"""The seeded, reproducible, group-aware train/val/test split shared by all readers."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd


def seeded_split(
    keys: Sequence[object] | pd.Series, val_fraction: float, test_fraction: float, seed: int
) -> np.ndarray:
    """Assign ``"train"``/``"val"``/``"test"`` to each row so that rows sharing a key (an
    identity) always land in the same split.

    Groups are shuffled by ``seed`` and filled into test, then val, then train until each has
    its fraction of the *rows*. The shuffle runs over the sorted distinct keys, so the result
    depends only on the set of rows, not on the order a folder listing returned them in.
    A missing key (None/NaN/"") makes the row its own group.
    """
    keys = pd.Series(keys, dtype=object).reset_index(drop=True)
    missing = keys.isna() | (keys.astype(str) == "")
    # A prefix no real key has, so a row's own group never merges with a named one.
    keys = keys.astype(str).where(~missing, "\0row" + keys.index.astype(str))
    groups, inverse, counts = np.unique(keys.to_numpy(dtype=str), return_inverse=True,
                                        return_counts=True)
    order = np.random.default_rng(seed).permutation(len(groups))
    rows_before = np.cumsum(counts[order]) - counts[order]  # rows placed ahead of each group
    n = len(keys)
    names = np.where(rows_before < n * test_fraction, "test",
                     np.where(rows_before < n * (test_fraction + val_fraction), "val", "train"))
    split_of_group = np.empty(len(groups), dtype=object)
    split_of_group[order] = names
    return split_of_group[inverse]
