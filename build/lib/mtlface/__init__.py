"""mtlface: multi-task face attribute learning with PyTorch Lightning and Hydra."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

if TYPE_CHECKING:
    from mtlface.predict import Predictor

__all__ = ["Predictor"]


def __getattr__(name: str) -> Any:
    # Lazy: `import mtlface` stays cheap (no torch) for code that only needs a submodule.
    if name == "Predictor":
        from mtlface.predict import Predictor

        return Predictor
    raise AttributeError(f"module 'mtlface' has no attribute {name!r}")
