"""Data: manifests, the synthetic source, datasets and the multi-source DataModule."""
