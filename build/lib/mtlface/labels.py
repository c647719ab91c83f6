"""The unified label conventions every source is mapped to (see DESIGN.md).

This is the one place that says what a label value means. Readers convert to it, the manifest
validates against it, tasks decode with it.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class LabelSpec:
    """One label column. ``classes`` is None for a continuous label (age in years)."""

    name: str
    classes: tuple[str, ...] | None = None
    value_range: tuple[float, float] | None = None  # valid closed range for continuous labels

    @property
    def is_categorical(self) -> bool:
        return self.classes is not None

    @property
    def num_classes(self) -> int:
        if self.classes is None:
            raise ValueError(f"label {self.name!r} is continuous: it has no classes")
        return len(self.classes)


LABELS: dict[str, LabelSpec] = {
    "age": LabelSpec("age", value_range=(0.0, 120.0)),
    "gender": LabelSpec("gender", ("male", "female")),
    "smile": LabelSpec("smile", ("no", "yes")),
    "emotion": LabelSpec(
        "emotion", ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")
    ),
    "race": LabelSpec("race", ("white", "black", "asian", "indian", "others")),
}

# Sentinels for a missing label, chosen so a batch still collates into one tensor per task.
MISSING_CLASS = -1
MISSING_VALUE = float("nan")
