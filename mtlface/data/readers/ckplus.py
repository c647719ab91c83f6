"""CK+: image sequences ``cohn-kanade-images/S005/001/S005_001_00000011.png`` and, for labelled
sequences, ``Emotion/S005/001/S005_001_00000011_emotion.txt`` holding the peak's code."""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any

import pandas as pd

from mtlface.data.readers.base import SeededSplitReader
from mtlface.data.skips import SkipReport
from mtlface.labels import label

EMOTIONS = label("emotion").classes
NEUTRAL = EMOTIONS.index("neutral")
CONTEMPT = 2  # CK+ code; FER2013 has no such class
# CK+ 0 neutral, 1 anger, 3 disgust, 4 fear, 5 happy, 6 sadness, 7 surprise -> FER2013 order
CK_TO_FER = {0: NEUTRAL, 1: 0, 3: 1, 4: 2, 5: 3, 6: 4, 7: 5}
CONTEMPT_POLICIES = ("unlabelled", "drop")


class CKPlusReader(SeededSplitReader):
    """Only labelled sequences give rows (unlabelled ones are counted): the last
    ``last_frames`` frames carry the sequence's emotion and, with ``first_frame_neutral``, the
    first frame is neutral (unless it is itself one of the last frames).

    ``contempt``: ``"unlabelled"`` keeps the peak frames with a blank emotion (counted),
    ``"drop"`` skips them (counted), or a FER2013 class name (e.g. ``"disgust"``) maps contempt
    to it. Columns ``subject``, ``sequence``, ``frame``; the split is by subject.
    """

    name = "ckplus"
    title = "CK+"
    download_hint = (
        "Download the Extended Cohn-Kanade dataset (CK+; request access from its "
        "authors) and unpack it so this folder holds cohn-kanade-images/<subject>/"
        "<sequence>/*.png and Emotion/<subject>/<sequence>/*_emotion.txt."
    )

    def __init__(
        self,
        root: str | os.PathLike,
        last_frames: int = 3,
        first_frame_neutral: bool = True,
        contempt: str = "unlabelled",
        **split_options: Any,
    ) -> None:
        super().__init__(root, **split_options)
        if last_frames < 1:
            raise ValueError(f"last_frames must be at least 1, got {last_frames}")
        if contempt not in (*CONTEMPT_POLICIES, *EMOTIONS):
            raise ValueError(f"contempt must be one of {CONTEMPT_POLICIES} or an emotion "
                             f"{EMOTIONS}, got {contempt!r}")
        self.last_frames = last_frames
        self.first_frame_neutral = first_frame_neutral
        self.contempt = contempt

    def _read(self, report: SkipReport) -> pd.DataFrame:
        images = self.require(self.root / "cohn-kanade-images", "folder")
        emotions = self.require(self.root / "Emotion", "folder")
        sequences = sorted(p for p in images.glob("*/*") if p.is_dir())
        if not sequences:
            raise self.missing_data("no sequences in cohn-kanade-images/<subject>/<sequence>/")
        labelled = {p.parent.relative_to(emotions) for p in emotions.glob("*/*/*_emotion.txt")}
        orphans = labelled - {p.relative_to(images) for p in sequences}
        report.skip("emotion file without an image sequence (sequence skipped)", len(orphans))
        records = []
        for seq in sequences:
            code = read_code(emotions / seq.relative_to(images), report)
            if code is None:
                continue
            frames = sorted(seq.glob("*.png"))
            if not frames:
                report.skip("labelled sequence without .png frames (sequence skipped)")
                continue
            peak = frames[-self.last_frames:]
            rows = [(f, self._emotion(code, report)) for f in peak]
            if self.first_frame_neutral and frames[0] not in peak:
                rows.insert(0, (frames[0], NEUTRAL))
            records += [{"path": str(f), "emotion": emotion, "subject": seq.parent.name,
                         "sequence": seq.name, "frame": frame_number(f)}
                        for f, emotion in rows if emotion is not None]
        df = pd.DataFrame.from_records(
            records, columns=["path", "emotion", "subject", "sequence", "frame"])
        df["frame"] = df["frame"].astype("Int64")
        df["split"] = self.split(df["subject"])
        return df

    def _emotion(self, code: int, report: SkipReport) -> float | None:
        """One peak frame's FER2013 emotion: NaN for unlabelled contempt, None to drop it."""
        if code != CONTEMPT:
            return CK_TO_FER[code]
        if self.contempt == "drop":
            report.skip("contempt has no FER2013 class (row dropped)")
            return None
        if self.contempt == "unlabelled":
            report.skip("contempt has no FER2013 class (label blanked)")
            return math.nan
        return EMOTIONS.index(self.contempt)


def read_code(folder: Path, report: SkipReport) -> int | None:
    """The CK+ emotion code of a sequence, or None (counted) when it has no valid one."""
    files = sorted(folder.glob("*_emotion.txt"))
    if len(files) != 1:
        report.skip("sequence without an emotion file (sequence skipped)" if not files
                    else "sequence with several emotion files (sequence skipped)")
        return None
    try:
        value = float(files[0].read_text().strip())
    except ValueError:
        value = math.nan
    if not (value.is_integer() and 0 <= value <= 7):
        report.skip("emotion file not a code 0..7 (sequence skipped)")
        return None
    return int(value)


def frame_number(path: Path) -> int | None:
    """11 for ``S005_001_00000011.png``."""
    tail = path.stem.rpartition("_")[2]
    return int(tail) if tail.isdecimal() else None
