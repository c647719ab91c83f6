"""One markdown table for every part: each row compares a measured figure with its reference,
measured side by side in the same run, and states the target the ratio must meet."""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from benchmarks.timing import Timing, rate_ratios

COLUMNS = ("part", "case", "measured", "value", "reference", "reference value", "ratio",
           "ratio range over repeats", "target", "meets")


@dataclass(frozen=True)
class Row:
    """``ratio = value / ref_value``; ``ratio_range``: the lowest and highest ratio of single
    repeats run side by side; ``at_least``: the target the ratio must reach, if the part has
    one."""

    part: str
    case: str
    measured: str
    value: float
    reference: str
    ref_value: float
    ratio_range: tuple[float, float] | None = None
    at_least: float | None = None

    @classmethod
    def rates(cls, part: str, case: str, measured: str, value: Timing, reference: str,
              ref: Timing, at_least: float | None = None) -> Row:
        """A row comparing the rates (items/s at the median repeat) of two timings."""
        ratios = rate_ratios(value, ref)
        return cls(part, case, measured, value.per_s, reference, ref.per_s,
                   (min(ratios), max(ratios)), at_least)

    @property
    def ratio(self) -> float:
        return self.value / self.ref_value

    @property
    def target(self) -> str:
        return f">= {self.at_least:g}" if self.at_least is not None else ""

    @property
    def meets(self) -> bool | None:
        return None if self.at_least is None else self.ratio >= self.at_least

    def cells(self) -> list[str]:
        meets = {True: "yes", False: "**no**", None: ""}[self.meets]
        spread = "..".join(number(r) for r in self.ratio_range) if self.ratio_range else ""
        return [self.part, self.case, self.measured, number(self.value), self.reference,
                number(self.ref_value), number(self.ratio), spread, self.target, meets]


def number(x: float) -> str:
    """Three significant figures; scientific notation for the very small or large."""
    if not math.isfinite(x):
        return str(x)
    if x != 0 and not 1e-3 <= abs(x) < 1e6:
        return f"{x:.2e}"
    return f"{x:.3g}" if abs(x) < 100 else f"{x:.0f}"


def markdown(rows: Iterable[Row], header: Mapping[str, str] | None = None) -> str:
    lines = [f"- {k}: {v}" for k, v in (header or {}).items()]
    if lines:
        lines.append("")
    lines.append("| " + " | ".join(COLUMNS) + " |")
    lines.append("|" + "---|" * len(COLUMNS))
    lines += ["| " + " | ".join(r.cells()) + " |" for r in rows]
    return "\n".join(lines) + "\n"
