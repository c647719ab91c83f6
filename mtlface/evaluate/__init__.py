"""Evaluation of a trained run (``python -m mtlface.evaluate``, see :mod:`.cli`): one forward
pass into a predictions table (:mod:`.predictions`), then metrics (:mod:`.metrics`), accuracy
by group (:mod:`.groups`), plots (:mod:`.plots`) and a markdown report (:mod:`.report`), all
computed from that table; :mod:`.run` ties them together."""

from __future__ import annotations

from importlib import import_module
from typing import Any

_EXPORTS = {"collect_predictions": "predictions",
            "compute_metrics": "metrics", "task_metrics": "metrics", "reliability": "metrics",
            "group_table": "groups", "group_gaps": "groups", "evaluate": "run",
            "EvalConfig": "run", "EvalResult": "run"}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    # Lazy: `python -m mtlface.evaluate --help` must not wait for torch.
    if name in _EXPORTS:
        return getattr(import_module(f"{__name__}.{_EXPORTS[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
