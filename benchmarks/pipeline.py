"""Part 2, input pipeline headroom: images/s the ``MultiSourceDataModule`` train loader
delivers (decode, augment, collate in real worker processes; the ``CombinedLoader`` of one
``DataLoader`` per source, as training uses it) vs images/s the model consumes in training
(forward, backward, optimiser step on batches held in memory), and the same loader reading
packed uint8 arrays (``benchmarks.packed``) instead of JPEG files.

Cases: BKNet (48 px grey) and LMTCNN (227 crops of 256 RGB), each on the default synthetic
sources (64 px JPEGs) and on 224 px JPEGs, the size ``preprocess.py`` crops real faces to
(``crop.size``), where decoding costs what it would on real data. The loader runs with
``workers`` processes per source (the DataModule gives every source its own DataLoader), and
also in the training process (``data.num_workers=0``, the configs' default), where its time
adds to every step. Always timed on the wall clock: the work happens in other processes."""

from __future__ import annotations

import gc
import tempfile
import time
import warnings
from collections.abc import Sequence
from dataclasses import dataclass

from pytorch_lightning.utilities import CombinedLoader

from benchmarks.table import Row
from benchmarks.timing import Timing, interleaved, using_clock
from benchmarks.workload import (bare_epoch, build, datamodule, memory_batches, n_images,
                                    train_config)
from benchmarks.packed import PackedDataset

TARGET = 3.0
SOURCES = ("imdb_like", "utk_like", "genki_like", "fer_like")


def cases(settings: Settings) -> list[tuple[str, tuple[str, ...], bool]]:
    """(label, train.py overrides, also measure the packed loader)."""
    # Real crops: preprocess.py writes crop.size=224 JPEGs; FER2013 stays 48 px grey.
    crops = tuple(f"data.manifests.synthetic.sources.{s}.image_size=224" for s in SOURCES[:3])
    crops += tuple(f"data.manifests.synthetic.sources.{s}.splits={settings.crop_splits}"
                   for s in SOURCES)
    return [
        ("BKNet 48 px grey, synthetic 64 px JPEGs", ("backbone=bknet", *settings.data), False),
        ("BKNet 48 px grey, 224 px JPEG crops", ("backbone=bknet", *crops), True),
        ("LMTCNN 227 of 256 RGB, synthetic 64 px JPEGs", ("backbone=lmtcnn", *settings.data),
         False),
        ("LMTCNN 227 of 256 RGB, 224 px JPEG crops", ("backbone=lmtcnn", *crops), True),
    ]


@dataclass(frozen=True)
class Settings:
    workers: int = 2          # data.num_workers: per source loader, as the DataModule does
    batch_size: int = 64
    batches: int = 40         # timed batches per repeat
    warmup_batches: int = 4   # untimed at the start of each pass (workers filling the queue)
    consume_steps: int = 6    # training steps per model repeat
    repeats: int = 3
    warmup: int = 1           # untimed rounds (worker start-up, first training step)
    data: tuple[str, ...] = ()  # overrides of the 64 px sources (e.g. smaller splits)
    crop_splits: str = "{train:600,val:1,test:1}"  # of the 224 px sources, generated once


QUICK = Settings(workers=1, batch_size=16, batches=3, warmup_batches=1, consume_steps=1,
                 repeats=1, warmup=0, crop_splits="{train:48,val:1,test:1}")


def loader_pass(loader: CombinedLoader, warmup: int, batches: int) -> float:
    """Wall seconds for ``batches`` batches after ``warmup`` untimed ones (the epoch restarts
    if it runs out)."""
    it = _endless(loader)
    for _ in range(warmup):
        next(it)
    start = time.perf_counter()
    for _ in range(batches):
        next(it)
    return time.perf_counter() - start


def _endless(loader: CombinedLoader):
    while True:  # not itertools.cycle: that would keep every batch
        yield from loader


def packed_loader(dm, folder) -> CombinedLoader:
    """``dm``'s train loader with every source's dataset swapped for its packed copy: what
    ``MultiSourceDataModule.setup`` would build with packing integrated."""
    dm.datasets["train"] = {s: PackedDataset.pack(ds, dm.input_spec, folder)
                            for s, ds in dm.datasets["train"].items()}
    return dm.train_dataloader()


def measure_case(overrides: Sequence[str], packed: bool, settings: Settings
                 ) -> dict[str, Timing]:
    cfg = train_config([*overrides, f"data.batch_size={settings.batch_size}"])
    per_batch = sum(datamodule(cfg).train_batch_sizes().values())
    variants, items = {}, {}
    loaders = {"jpeg": datamodule(cfg, num_workers=settings.workers).train_dataloader(),
               "in-process": datamodule(cfg, num_workers=0).train_dataloader()}
    with tempfile.TemporaryDirectory() as tmp:
        if packed:
            loaders["packed"] = packed_loader(datamodule(cfg, num_workers=settings.workers), tmp)
        for name, loader in loaders.items():
            variants[name] = lambda loader=loader: loader_pass(loader, settings.warmup_batches,
                                                              settings.batches)
            items[name] = per_batch * settings.batches
        batches = memory_batches(cfg, settings.consume_steps)
        model = build(cfg)
        variants["model"] = lambda: bare_epoch(model, batches)
        items["model"] = n_images(batches)
        with using_clock("wall"):
            timings = interleaved(variants, repeats=settings.repeats, warmup=settings.warmup,
                                  items=items)
        del loaders, variants
        gc.collect()  # shuts the persistent workers down before their files go
    return timings


def run(settings: Settings = Settings()) -> list[Row]:
    warnings.filterwarnings("ignore", ".*does not have many workers.*")
    rows = []
    for label, overrides, packed in cases(settings):
        t = measure_case(overrides, packed, settings)
        case = f"{label}, batch {settings.batch_size}, {settings.workers} workers per source"
        consume = "training consumes, images/s"
        rows.append(Row.rates("pipeline", case, "train loader delivers, images/s", t["jpeg"],
                              consume, t["model"], at_least=TARGET))
        rows.append(Row.rates("pipeline", case, "train loader in the training process "
                              "(num_workers=0, the conf default), images/s", t["in-process"],
                              consume, t["model"]))
        if packed:
            packed_rate = "packed train loader delivers, images/s"
            rows.append(Row.rates("pipeline", case, packed_rate, t["packed"], consume,
                                  t["model"], at_least=TARGET))
            rows.append(Row.rates("pipeline", case, packed_rate, t["packed"],
                                  "JPEG train loader delivers, images/s", t["jpeg"]))
    return rows
