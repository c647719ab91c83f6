"""Part 1, training-loop overhead: images/s of a Lightning training epoch of ``MTLFaceModule``
(the real module, its metrics and logging, and the loggers and LR monitor of ``train.py``) vs a
plain PyTorch loop doing the same maths over the same batches, held in memory, in the same
process and thread count.

Rows: the default BKNet (what ``train.py`` trains), then a tiny BKNet whose compute is small
enough to expose the framework's fixed cost per step. (What this part found, and
``MTLFaceModule`` now does: Lightning's ``self.log`` costs ~0.3-0.5 ms of CPU per call, so the
per-task losses are torchmetrics means logged once per epoch and the per-task weights are
logged only on the steps that reach the loggers.)"""

from __future__ import annotations

import copy
import logging
import tempfile
import warnings
from collections.abc import Sequence
from dataclasses import dataclass

from benchmarks.table import Row
from benchmarks.timing import Timing, interleaved, now
from benchmarks.workload import (Replay, SourceBatches, bare_epoch, build, memory_batches,
                                    n_images, train_config)
from mtlface.module import MTLFaceModule
from mtlface.train import build_trainer

TARGET = 0.95
# What a benchmark epoch leaves out of train.py's run: checkpoint files, the progress bar,
# the model summary and validation. Training, metrics, self.log, the CSV and TensorBoard
# loggers and the LR monitor stay.
TRAINER = ("trainer.max_epochs=1", "trainer.limit_val_batches=0", "trainer.accelerator=cpu",
           "~callbacks.model_checkpoint", "~callbacks.progress_bar",
           "+trainer.enable_checkpointing=false", "+trainer.enable_progress_bar=false",
           "+trainer.enable_model_summary=false")
# A BKNet with almost no compute: what is left of a step is the framework's own cost.
TINY = ("backbone.widths=[4,4,4,4]", "backbone.input_size=16", "head.hidden=[8]")


def lightning_epoch(cfg, model: MTLFaceModule, batches: Sequence[SourceBatches]) -> float:
    """Seconds of one ``Trainer.fit`` epoch over ``batches``: the Trainer's construction is
    left out; its set-up and the epoch-end metric computation are counted."""
    trainer = build_trainer(cfg)
    start = now()
    trainer.fit(model, train_dataloaders=Replay(batches))
    return now() - start


@dataclass(frozen=True)
class Settings:
    steps: int = 50
    batch_size: int = 64
    repeats: int = 3
    warmup: int = 1
    tiny_steps: int = 200  # the tiny model's epoch (its steps take milliseconds)
    overrides: tuple[str, ...] = ()


QUICK = Settings(steps=3, batch_size=16, repeats=1, warmup=0, tiny_steps=6)


def measure(overrides: Sequence[str], steps: int, settings: Settings) -> dict[str, Timing]:
    """Images/s of the plain loop and the Lightning epoch, in alternating repeats."""
    with tempfile.TemporaryDirectory() as tmp:
        cfg = train_config([*TRAINER, *overrides], output_dir=tmp)
        batches = memory_batches(cfg, steps)
        model = build(cfg)
        bare, lightning = copy.deepcopy(model), copy.deepcopy(model)
        timings = interleaved(
            {"bare": lambda: bare_epoch(bare, batches),
             "lightning": lambda: lightning_epoch(cfg, lightning, batches)},
            repeats=settings.repeats, warmup=settings.warmup, items=n_images(batches))
    return timings


def run(settings: Settings = Settings()) -> list[Row]:
    logging.getLogger("pytorch_lightning").setLevel(logging.ERROR)
    warnings.filterwarnings("ignore", ".*(does not have many workers|validation_step|smaller "
                                      "than the logging interval|exists and is not empty).*")
    rows = []
    cases = [("BKNet 48 px (default)", settings.steps, settings.overrides, TARGET),
             ("tiny BKNet 16 px, widths 4 (framework cost)", settings.tiny_steps,
              (*settings.overrides, *TINY), None)]
    for label, steps, extra, target in cases:
        bs = settings.batch_size
        t = measure([f"data.batch_size={bs}", *extra], steps, settings)
        case = f"{label}, 5 tasks, batch {bs}, {steps} steps"
        bare = "plain PyTorch loop, images/s"
        rows.append(Row.rates("overhead", case, "Lightning epoch, images/s", t["lightning"],
                              bare, t["bare"], at_least=target))
    return rows
