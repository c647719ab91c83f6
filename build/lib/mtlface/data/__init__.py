"""Data: manifests, the synthetic source, real-dataset readers, datasets and the DataModule."""

from mtlface.data.readers import read_source

__all__ = ["read_source"]
