"""``python preprocess.py``: config -> reader, detector, crop settings -> stage -> summary."""

from __future__ import annotations

import logging
import sys
from dataclasses import dataclass
from typing import Any

from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from mtlface.data.preprocess.cache import CacheLayout, Shard, merge_shards, remove_temps
from mtlface.data.preprocess.crop import CropSpec
from mtlface.data.preprocess.provider import cache_folder, plain
from mtlface.data.preprocess.stage import PreprocessStage, Summary, log_skips
from mtlface.errors import ConfigError, check_writable_dir, reports_errors

log = logging.getLogger(__name__)
PARTIAL_EXIT = 3  # a run stopped by `limit`: a script can tell it must run again


@dataclass(frozen=True)
class Option:
    """What a key of conf/preprocess.yaml accepts: a whole number (``int``), a number
    (``float``) or ``bool``, at least ``least``, null when ``nullable``."""

    kind: type
    example: str
    least: float | None = None
    nullable: bool = False

    def accepts(self, value: Any) -> bool:
        if value is None:
            return self.nullable
        if self.kind is bool or isinstance(value, bool):
            return self.kind is bool and isinstance(value, bool)
        numeric = (int, float) if self.kind is float else (int,)
        return isinstance(value, numeric) and (self.least is None or value >= self.least)

    def describe(self) -> str:
        text = {bool: "true or false", int: "a whole number", float: "a number"}[self.kind]
        if self.least is not None:
            text += f" >= {self.least:g}"
        return text + (" or null" if self.nullable else "")


# The keys the stage takes as they are. crop.* are CropSpec's, a structured config: Hydra
# checks their types when it composes, CropSpec's constructor their ranges; source.* and
# detector.* are checked by their classes' constructors.
OPTIONS = {
    "batch_size": Option(int, "32", least=1),
    "num_workers": Option(int, "2", least=0),
    "limit": Option(int, "1000", least=1, nullable=True),
    "flush_every": Option(int, "512", least=1),
    "flush_seconds": Option(float, "10", least=0, nullable=True),
    "merge": Option(bool, "true"),
    "progress": Option(bool, "false"),
}


def check_options(cfg: DictConfig) -> None:
    """A ConfigError naming the first key of ``OPTIONS`` with a value it does not accept."""
    for key, option in OPTIONS.items():
        value = OmegaConf.select(cfg, key)
        if not option.accepts(value):
            raise ConfigError(f"{key}={_shown(value)} is not {option.describe()} "
                              f"(conf/preprocess.yaml or the command line): pass e.g. "
                              f"{key}={option.example}")


def _shown(value: Any) -> str:
    """``value`` as typed on the command line."""
    if value is None:
        return "null"
    return str(value).lower() if isinstance(value, bool) else str(value)


@reports_errors  # here, not around Hydra's main: Hydra would catch the error first
def hydra_job(cfg: DictConfig) -> None:
    """The body of ``python preprocess.py``: a mistake ends it with one ``error:`` line."""
    summary = run(cfg)
    if not (summary.complete or summary.cached):
        sys.exit(PARTIAL_EXIT)


def build_stage(cfg: DictConfig) -> PreprocessStage:
    source, detector = plain(cfg.source), plain(cfg.detector)
    crop = CropSpec(**plain(cfg.crop))
    folder, settings = cache_folder(cfg.cache_dir, source, detector, crop)
    return PreprocessStage(
        instantiate(source), instantiate(detector), crop, folder, settings,
        shard=Shard.parse(cfg.get("shard")), num_workers=cfg.num_workers,
        batch_size=cfg.batch_size, device=cfg.device, limit=cfg.get("limit"),
        flush_every=cfg.flush_every, flush_seconds=cfg.flush_seconds,
        progress=cfg.progress)


def merge(layout: CacheLayout) -> Summary:
    """Merge the shards found in the cache (all must be of one count N and finished)."""
    counts = {int(p.name.rpartition("-of-")[2]) for p in (layout.folder / "shards").glob("*-of-*")}
    if len(counts) != 1:
        raise FileNotFoundError(f"merge: expected shards of one count under {layout.folder}/"
                                f"shards, found counts {sorted(counts) or 'none'}")
    try:
        merge_shards(layout, counts.pop())
    finally:
        remove_temps(layout)
    return Summary.load(layout.summary)


def run(cfg: DictConfig) -> Summary:
    check_options(cfg)
    stage = build_stage(cfg)
    if not (cfg.merge or stage.finished()):  # a finished cache may be read-only
        check_writable_dir(stage.layout.folder, "preprocessing cache", "cache_dir=<folder>")
    summary = merge(stage.layout) if cfg.merge else stage.run()
    log_skips(summary)
    print_summary(summary)
    return summary


def print_summary(summary: Summary) -> None:
    from rich.console import Console
    from rich.table import Table

    state = ("cached: nothing to do" if summary.cached else
             "complete" if summary.complete else "partial: run again to resume")
    table = Table(title=f"preprocess {summary.source} (shard {summary.shard}): {state}")
    table.add_column("what")
    table.add_column("count", justify="right")
    table.add_row("images found", str(summary.found))
    table.add_row("cropped", str(summary.cropped))
    for reason, n in {**summary.skipped, **{f"reader: {k}": v for k, v in
                                           summary.reader_skipped.items()}}.items():
        table.add_row(f"skipped: {reason}", str(n))
    for mode, n in summary.converted.items():
        table.add_row(f"converted {mode}", str(n))
    table.add_row("processed now", str(summary.processed))
    table.add_row("seconds", f"{summary.seconds:.1f}")
    table.add_row("images/s", f"{summary.images_per_s:.1f}")
    Console().print(table)
    print(f"cache: {summary.folder}")
