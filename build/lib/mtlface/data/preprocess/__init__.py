"""Preprocessing: detect, crop and cache faces of a real dataset, written as a manifest.

``python preprocess.py source=<name> detector=<mtcnn|none>`` runs ``run(cfg)``; training reads
the cache through ``PreprocessedCache`` (conf/data/<source>.yaml).
"""

from mtlface.data.preprocess.cache import CacheLayout, Shard, merge_shards
from mtlface.data.preprocess.crop import CropSpec, crop_face
from mtlface.data.preprocess.detectors import Face, MTCNNDetector, PassThrough, Skipped
from mtlface.data.preprocess.provider import MissingCacheError, PreprocessedCache, cache_folder
from mtlface.data.preprocess.stage import PreprocessStage, Summary
from mtlface.data.preprocess.cli import run

__all__ = [
    "CacheLayout", "CropSpec", "Face", "MTCNNDetector", "MissingCacheError", "PassThrough",
    "PreprocessStage", "PreprocessedCache", "Shard", "Skipped", "Summary", "cache_folder",
    "crop_face", "merge_shards", "run",
]
