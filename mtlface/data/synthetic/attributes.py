"""What each synthetic face is: all five attributes, drawn balanced per face."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from mtlface.labels import LABELS

HAPPY = LABELS["emotion"].classes.index("happy")
DISGUST = LABELS["emotion"].classes.index("disgust")
_NOT_HAPPY = [e for e in range(LABELS["emotion"].num_classes) if e != HAPPY]


def sample_attributes(rng: np.random.Generator, tasks: Sequence[str]) -> dict[str, Any]:
    """All five attributes, balanced. smile follows emotion (happy smiles) except for a source
    that labels smile but not emotion: there smile is drawn 50/50 first and emotion follows."""
    age = float(rng.integers(1, 91))
    gender = int(rng.integers(2))
    race = int(rng.integers(LABELS["race"].num_classes))
    if "smile" in tasks and "emotion" not in tasks:
        smile = int(rng.integers(2))
        emotion = HAPPY if smile else _NOT_HAPPY[int(rng.integers(len(_NOT_HAPPY)))]
    else:
        emotion = int(rng.integers(LABELS["emotion"].num_classes))
        smile = int(emotion == HAPPY)
    return {"age": age, "gender": gender, "smile": smile, "emotion": emotion, "race": race}

