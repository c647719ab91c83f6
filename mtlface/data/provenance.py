"""What a run's training data was, as far as inference needs to say it: a model trained only on
synthetic sources (the embedded generator) knows nothing of real faces, and says so once when
it predicts on files."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

SYNTHETIC_NOTICE = ("this model was trained on synthetic faces only: its predictions on real "
                    "photos are not meaningful until it is trained on real data")


def trained_on_synthetic_only(cfg: Mapping[str, Any]) -> bool:
    """True when every manifest provider of the run's data config declares ``synthetic``
    (a manifest given by path, or a preprocessed dataset, counts as real)."""
    from hydra.utils import get_class

    manifests = ((cfg.get("data") or {}).get("manifests") or {}).values()
    if not manifests:
        return False
    for node in manifests:
        target = node.get("_target_") if hasattr(node, "get") else None
        try:
            provider = get_class(target) if target else None
        except Exception:  # noqa: BLE001 - an unknown provider is not known to be synthetic
            provider = None
        if not getattr(provider, "synthetic", False):
            return False
    return True
