"""Readers for the real datasets, each mapping one dataset as distributed (known defects
included) to a labels table in the manifest's columns and label conventions.

Hydra builds a reader from ``conf/source/<name>.yaml`` (``_target_`` = a class below, options
as keys) and calls ``read()``; ``read_source`` is the same in one call, for scripts and tests.
"""

from __future__ import annotations

import os
from typing import Any

import pandas as pd

from mtlface.data.readers.adience import AdienceReader
from mtlface.data.readers.affectnet import AffectNetReader
from mtlface.data.readers.agedb import AgeDBReader
from mtlface.data.readers.base import DatasetReader, SeededSplitReader
from mtlface.data.readers.carved import CarvedValReader
from mtlface.data.readers.celeba import CelebAReader
from mtlface.data.readers.ckplus import CKPlusReader
from mtlface.data.readers.csv_manifest import CSVManifestReader
from mtlface.data.readers.fairface import FairFaceReader
from mtlface.data.readers.fer2013 import FER2013Reader
from mtlface.data.readers.genki4k import Genki4KReader
from mtlface.data.readers.imdb_wiki import IMDBWikiReader
from mtlface.data.readers.rafdb import RAFDBReader
from mtlface.data.readers.splits import seeded_split
from mtlface.data.readers.utkface import UTKFaceReader

READERS: dict[str, type[DatasetReader]] = {
    cls.name: cls
    for cls in (UTKFaceReader, IMDBWikiReader, Genki4KReader, AdienceReader, FER2013Reader,
                CKPlusReader, CSVManifestReader, CelebAReader, FairFaceReader, RAFDBReader,
                AffectNetReader, AgeDBReader)
}


def read_source(name: str, root: str | os.PathLike, **options: Any) -> pd.DataFrame:
    """``READERS[name](root, **options).read()``, e.g. ``read_source("adience", path,
    test_fold=2)``."""
    if name not in READERS:
        raise KeyError(f"unknown source {name!r}; known: {sorted(READERS)}")
    return READERS[name](root, **options).read()


__all__ = [
    "READERS",
    "AdienceReader",
    "AffectNetReader",
    "AgeDBReader",
    "CKPlusReader",
    "CSVManifestReader",
    "CarvedValReader",
    "CelebAReader",
    "DatasetReader",
    "FER2013Reader",
    "FairFaceReader",
    "Genki4KReader",
    "IMDBWikiReader",
    "RAFDBReader",
    "SeededSplitReader",
    "UTKFaceReader",
    "read_source",
    "seeded_split",
]
