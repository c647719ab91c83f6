"""Timing shared by every benchmark part: warm-up, interleaved repeats, medians, and the
header that records where the numbers came from.

The machines these run on are noisy, so figures are compared only within one run: the variants
being compared take turns (A B, then B A, ...) so that a drifting background load hits each
alike, and each figure is the median over its repeats.

The clock is wall time by default; ``use_clock("cpu")`` switches to this process's CPU time
(all its threads), which other processes on a shared machine disturb far less. CPU time suits
comparisons within one process at ``torch.set_num_threads(1)``; it misses work done in other
processes (data loader workers), so the parts that use workers always time the wall."""

from __future__ import annotations

import os
import platform
import statistics
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime

import torch

# One timed unit of work. It returns None (the helper times the whole call) or the seconds it
# measured itself with `now()` (e.g. to leave a Trainer's construction out).
Work = Callable[[], float | None]

CLOCKS: dict[str, Callable[[], float]] = {"wall": time.perf_counter, "cpu": time.process_time}
_clock = "wall"


def use_clock(name: str) -> None:
    global _clock
    if name not in CLOCKS:
        raise ValueError(f"unknown clock {name!r}; valid: {', '.join(CLOCKS)}")
    _clock = name


@contextmanager
def using_clock(name: str) -> Iterator[None]:
    """Switch the clock for a block (e.g. wall time around work done in other processes)."""
    previous = _clock
    use_clock(name)
    try:
        yield
    finally:
        use_clock(previous)


def now() -> float:
    """The current reading of the selected clock, in seconds."""
    return CLOCKS[_clock]()


@dataclass(frozen=True)
class Timing:
    """The seconds of each timed repeat of one variant, and the items (images, faces) one
    repeat handles."""

    seconds: tuple[float, ...]
    items: int = 1

    @property
    def median(self) -> float:
        return statistics.median(self.seconds)

    @property
    def per_s(self) -> float:
        """Items per second at the median repeat."""
        return self.items / self.median


def rate_ratios(a: Timing, b: Timing) -> tuple[float, ...]:
    """The ratio of ``a``'s rate to ``b``'s in each repeat (the r-th repeats ran side by side):
    their spread shows how much the load moved the figures."""
    return tuple((a.items / sa) / (b.items / sb) for sa, sb in zip(a.seconds, b.seconds))


def time_once(work: Work) -> float:
    start = now()
    measured = work()
    if measured is None:
        return now() - start
    if not isinstance(measured, float):
        raise TypeError(f"timed work returns None or its own seconds, got {measured!r}")
    return measured


def interleaved(variants: Mapping[str, Work], repeats: int, warmup: int = 1,
                items: Mapping[str, int] | int = 1) -> dict[str, Timing]:
    """Run every variant ``warmup`` times untimed, then ``repeats`` timed rounds in which the
    variants take turns, the order reversed every other round (ABBA...)."""
    if repeats < 1:
        raise ValueError(f"repeats must be >= 1, got {repeats}")
    names = list(variants)
    for _ in range(warmup):
        for name in names:
            variants[name]()
    seconds: dict[str, list[float]] = {name: [] for name in names}
    for r in range(repeats):
        for name in names if r % 2 == 0 else reversed(names):
            seconds[name].append(time_once(variants[name]))
    count = items if isinstance(items, Mapping) else dict.fromkeys(names, items)
    return {name: Timing(tuple(s), count[name]) for name, s in seconds.items()}


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def load_average() -> str:
    try:
        return "/".join(f"{x:.2f}" for x in os.getloadavg())
    except OSError:  # not on this platform
        return "n/a"


def environment() -> dict[str, str]:
    """What the figures depend on, for the table's header."""
    return {
        "date": datetime.now().isoformat(timespec="seconds"),
        "cpu": f"{cpu_model()} ({os.cpu_count()} logical cores)",
        "torch": f"{torch.__version__}, torch.get_num_threads() = {torch.get_num_threads()}",
        "clock": {"wall": "wall time", "cpu": "process CPU time (parts with worker "
                  "processes: wall time)"}[_clock],
        "load average (1/5/15 min)": load_average(),
    }
