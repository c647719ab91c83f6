"""``InputSpec``: what a backbone expects from the data pipeline."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class InputSpec:
    """Square ``size`` pixels, ``channels`` (1 grey or 3 RGB), and the per-channel
    normalisation applied to [0, 1] pixel values.

    ``resize``: when set, images are first resized to ``resize`` pixels and a ``size`` crop is
    taken from them: a random crop for training, the centre crop for evaluation (the
    AlexNet-style "227 from 256" protocol of Levi & Hassner and LMTCNN). ``None``: resize
    straight to ``size``."""

    size: int
    channels: int
    mean: tuple[float, ...]
    std: tuple[float, ...]
    resize: int | None = None

    def __post_init__(self) -> None:
        if self.size < 8:
            raise ValueError(f"input size must be >= 8 pixels, got {self.size}")
        if self.channels not in (1, 3):
            raise ValueError(f"in_chans must be 1 (grey) or 3 (RGB), got {self.channels}")
        if len(self.mean) != self.channels or len(self.std) != self.channels:
            raise ValueError(f"mean/std need {self.channels} values, got {self.mean}/{self.std}")
        if self.resize is not None and self.resize < self.size:
            raise ValueError(f"resize ({self.resize}) must be >= the crop size ({self.size})")
