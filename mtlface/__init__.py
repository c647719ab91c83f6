"""mtlface: multi-task face attribute learning with PyTorch Lightning and Hydra."""

__version__ = "0.1.0"
