"""``python preprocess.py``: config -> reader, detector, crop settings -> stage -> summary."""

from __future__ import annotations

import logging

from hydra.utils import instantiate
from omegaconf import DictConfig

from mtlface.data.preprocess.cache import CacheLayout, Shard, merge_shards
from mtlface.data.preprocess.crop import CropSpec
from mtlface.data.preprocess.provider import cache_folder, plain
from mtlface.data.preprocess.stage import PreprocessStage, Summary, log_skips

log = logging.getLogger(__name__)


def build_stage(cfg: DictConfig) -> PreprocessStage:
    source, detector = plain(cfg.source), plain(cfg.detector)
    crop = CropSpec(**plain(cfg.crop))
    folder, settings = cache_folder(cfg.cache_dir, source, detector, crop)
    return PreprocessStage(
        instantiate(source), instantiate(detector), crop, folder, settings,
        shard=Shard.parse(cfg.get("shard")), num_workers=cfg.num_workers,
        batch_size=cfg.batch_size, device=cfg.device, limit=cfg.get("limit"),
        flush_every=cfg.flush_every, progress=cfg.progress)


def merge(layout: CacheLayout) -> Summary:
    """Merge the shards found in the cache (all must be of one count N and finished)."""
    counts = {int(p.name.rpartition("-of-")[2]) for p in (layout.folder / "shards").glob("*-of-*")}
    if len(counts) != 1:
        raise FileNotFoundError(f"merge: expected shards of one count under {layout.folder}/"
                                f"shards, found counts {sorted(counts) or 'none'}")
    merge_shards(layout, counts.pop())
    return Summary.load(layout.summary)


def run(cfg: DictConfig) -> Summary:
    stage = build_stage(cfg)
    summary = merge(stage.layout) if cfg.get("merge") else stage.run()
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
