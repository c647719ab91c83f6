"""``Calibration``: what a run's ``calibration.json`` holds (one temperature per task with class
probabilities, the age interval's ``q``) and how it is applied to raw head outputs."""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from torch import Tensor

from mtlface.calibration.conformal import interval as conformal_interval
from mtlface.errors import UserError
from mtlface.runs import CALIBRATION as CALIBRATION_NAME  # noqa: F401 (exported)
from mtlface.runs import RunFolder

VERSION = 1


@dataclass(frozen=True)
class AgeInterval:
    """``[years - q, years + q]`` holds the true age with probability ``level`` (see
    :mod:`mtlface.calibration.conformal`); with ``groupwise`` (``gender`` or ``race``) a face
    gets the ``q`` of its predicted group, or the pooled ``q`` for a group too small to have
    its own."""

    task: str
    level: float
    q: float
    count: int
    groupwise: str | None = None
    q_by_group: dict[str, float] = field(default_factory=dict)
    count_by_group: dict[str, int] = field(default_factory=dict)

    def q_for(self, group: str | None = None) -> float:
        return self.q_by_group.get(group, self.q) if group is not None else self.q

    def bounds(self, years: float, group: str | None = None) -> tuple[float, float]:
        return conformal_interval(years, self.q_for(group))


@dataclass(frozen=True)
class Calibration:
    """``temperatures``: task -> T (raw outputs are divided by it); ``interval``: the age
    interval or None; ``checkpoint``: the file name it was fitted for; ``report``: what the
    fit measured (NLL before and after, rows)."""

    temperatures: dict[str, float] = field(default_factory=dict)
    interval: AgeInterval | None = None
    checkpoint: str | None = None
    report: dict[str, Any] = field(default_factory=dict)

    def apply(self, outputs: Mapping[str, Tensor]) -> dict[str, Tensor]:
        """Raw head outputs divided by each task's temperature (others unchanged)."""
        return {name: out / self.temperatures[name] if name in self.temperatures else out
                for name, out in outputs.items()}

    def to_dict(self) -> dict[str, Any]:
        return {"version": VERSION, "checkpoint": self.checkpoint,
                "temperatures": dict(self.temperatures),
                "interval": asdict(self.interval) if self.interval else None, **self.report}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], where: str = "calibration") -> Calibration:
        if data.get("version") != VERSION:
            raise UserError(f"{where}: calibration version {data.get('version')} is not "
                            f"{VERSION}: fit it again with `python -m mtlface.calibrate run=...`")
        known = ("version", "checkpoint", "temperatures", "interval")
        interval = data.get("interval")
        return cls({k: float(v) for k, v in (data.get("temperatures") or {}).items()},
                   AgeInterval(**interval) if interval else None, data.get("checkpoint"),
                   {k: v for k, v in data.items() if k not in known})

    def save(self, path: str | os.PathLike) -> Path:
        """Written atomically: a reader sees the old file or the new one, never half."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        try:
            with os.fdopen(fd, "w") as handle:
                handle.write(json.dumps(self.to_dict(), indent=2) + "\n")
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        return path

    @classmethod
    def load(cls, path: str | os.PathLike) -> Calibration:
        path = Path(path)
        try:
            data = json.loads(path.read_text())
        except (OSError, ValueError) as exc:
            raise UserError(f"cannot read {path} ({exc}): fit it again with `python -m "
                            f"mtlface.calibrate run={path.parent}`") from None
        return cls.from_dict(data, str(path))


def decode(task, raw: Tensor, temperature: float | None = None) -> dict[str, Tensor]:
    """``task.decode`` with the probabilities of ``raw / temperature``; the predicted class,
    age group and age in years stay those of ``raw``. Calibration changes how sure the model
    says it is, never what it predicts (a ``T > 0`` keeps every class, but an expected-age or
    CORAL read-out would move with it)."""
    if temperature is None or temperature == 1.0:
        return task.decode(raw)
    out = task.decode(raw / temperature)
    if "years" in out:
        plain = task.decode(raw)
        out["years"], out["bin"] = plain["years"], plain["bin"]
    return out


def calibration_path(run_dir: str | os.PathLike) -> Path:
    return RunFolder(run_dir).calibration


def load_run_calibration(run_dir: str | os.PathLike,
                         checkpoint: str | os.PathLike | None = None) -> Calibration | None:
    """The run's calibration, or None when it has none or it was fitted for another checkpoint
    than ``checkpoint`` (a calibration holds for the weights it was fitted on only)."""
    path = calibration_path(run_dir)
    if not path.is_file():
        return None
    calibration = Calibration.load(path)
    if checkpoint is not None and calibration.checkpoint not in (None, Path(checkpoint).name):
        import logging

        logging.getLogger(__name__).warning(
            "%s was fitted for %s, not %s: predictions are not calibrated", path,
            calibration.checkpoint, Path(checkpoint).name)
        return None
    return calibration
