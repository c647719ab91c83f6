"""What each synthetic face is: the five core attributes, drawn balanced per face, and for a
source that labels them the CelebA-like ``eyeglasses`` and ``no_beard``."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from mtlface.labels import label

HAPPY = label("emotion").classes.index("happy")
DISGUST = label("emotion").classes.index("disgust")
_NOT_HAPPY = [e for e in range(label("emotion").num_classes) if e != HAPPY]
CORE = ("age", "gender", "smile", "emotion", "race")
# Labels only a source that names them gets: drawn after the core ones, so the faces of the
# other sources (and the default run) stay exactly as they are.
OPTIONAL = ("eyeglasses", "no_beard")
TASKS = CORE + OPTIONAL
BEARD_SHARE = 0.6  # of adult men, in a source labelling no_beard


def sample_attributes(rng: np.random.Generator, tasks: Sequence[str]) -> dict[str, Any]:
    """All five attributes, balanced. smile follows emotion (happy smiles) except for a source
    that labels smile but not emotion: there smile is drawn 50/50 first and emotion follows."""
    age = float(rng.integers(1, 91))
    gender = int(rng.integers(2))
    race = int(rng.integers(label("race").num_classes))
    if "smile" in tasks and "emotion" not in tasks:
        smile = int(rng.integers(2))
        emotion = HAPPY if smile else _NOT_HAPPY[int(rng.integers(len(_NOT_HAPPY)))]
    else:
        emotion = int(rng.integers(label("emotion").num_classes))
        smile = int(emotion == HAPPY)
    attrs = {"age": age, "gender": gender, "smile": smile, "emotion": emotion, "race": race}
    if "eyeglasses" in tasks:
        attrs["eyeglasses"] = int(rng.integers(2))
    if "no_beard" in tasks:  # CelebA's convention: 1 = no beard; only adult men grow one
        adult_male = gender == 0 and age >= 16
        attrs["no_beard"] = int(not (adult_male and rng.random() < BEARD_SHARE))
    return attrs

