"""Part 6, loss-weighting cost: images/s of a Lightning training epoch of the default model
(BKNet, five tasks) under each ``weighting=`` option vs ``fixed``, over the same batches held in
memory, the options taking turns in alternating order. The accuracy each option reaches is
``python -m benchmarks.weighting_runs`` (full default runs); this is what each costs per step."""

from __future__ import annotations

import copy
import logging
import tempfile
import warnings
from dataclasses import dataclass

from benchmarks.overhead import TRAINER, lightning_epoch
from benchmarks.table import Row
from benchmarks.timing import interleaved
from benchmarks.workload import build, memory_batches, n_images, train_config

OPTIONS = ("fixed", "uncertainty", "dwa", "gradnorm", "upgrad", "pcgrad", "mgda", "cagrad",
           "imtl_g", "aligned_mtl")


@dataclass(frozen=True)
class Settings:
    steps: int = 10
    batch_size: int = 64
    repeats: int = 3
    warmup: int = 1
    options: tuple[str, ...] = OPTIONS
    overrides: tuple[str, ...] = ()


QUICK = Settings(steps=2, batch_size=16, repeats=1, warmup=0, options=("fixed", "upgrad"))


def run(settings: Settings = Settings()) -> list[Row]:
    logging.getLogger("pytorch_lightning").setLevel(logging.ERROR)
    warnings.filterwarnings("ignore", ".*(does not have many workers|validation_step|smaller "
                                      "than the logging interval|exists and is not empty).*")
    if "fixed" not in settings.options:
        raise ValueError("the weighting part compares with fixed: keep it in the options")
    base = [*TRAINER, f"data.batch_size={settings.batch_size}", *settings.overrides]
    with tempfile.TemporaryDirectory() as tmp:
        configs = {o: train_config([*base, f"weighting={o}"], output_dir=tmp)
                   for o in settings.options}
        batches = memory_batches(configs["fixed"], settings.steps)
        start = build(configs["fixed"])
        models = {}
        for option, cfg in configs.items():  # the same initial weights for every option
            model = build(cfg)
            model.load_state_dict(start.state_dict(), strict=False)
            models[option] = model
        work = {o: (lambda o=o: lightning_epoch(configs[o], copy.deepcopy(models[o]), batches))
                for o in settings.options}
        timings = interleaved(work, repeats=settings.repeats, warmup=settings.warmup,
                              items=n_images(batches))
    case = f"BKNet 48 px, 5 tasks, batch {settings.batch_size}, {settings.steps} steps"
    return [Row.rates("weighting", case, f"weighting={o}, images/s", timings[o],
                      "weighting=fixed, images/s", timings["fixed"])
            for o in settings.options if o != "fixed"]
