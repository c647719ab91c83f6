"""``python -m benchmarks`` (``mtlface bench`` in a clone): every benchmark part, one markdown
table, written to the docs page ``docs/benchmark-results.md`` (``--quick``: to
``outputs/benchmarks/quick.md``, never the docs).

    .venv/bin/python -m benchmarks [--quick] [--parts overhead,pipeline,preprocess,detection,inference,scaling,weighting]
        [--out FILE] [--threads N] [--clock wall|cpu] [--repeats N] [--epoch-steps N]

Parts (each module's docstring says exactly what it measures):
  overhead    Lightning training epoch of MTLFaceModule vs a plain PyTorch loop (target >= 0.95)
  pipeline    train loader images/s vs training images/s, JPEG and packed (target >= 3)
  preprocess  MTCNN stage vs a per-image facenet-pytorch loop (target >= 3); cached re-run
  detection   MTCNN on onnxruntime vs facenet-pytorch's detect, same canvases (target >= 2.5)
  inference   faces/s per backbone, PyTorch vs ONNX Runtime, batch 1 and 32
  scaling     training images/s and inference faces/s vs batch size and input size
  weighting   training images/s under each weighting= option vs fixed (its cost per step)

Every ratio compares two figures measured side by side in this run: the compared variants take
turns in alternating order and each figure is a median over repeats. ``--quick`` runs every
part with tiny settings (a smoke test, not a measurement). On a shared machine use
``--threads 1`` (torch's multi-threaded kernels lose most of their time to waiting when the
cores are busy) and ``--clock cpu`` for the in-process parts.
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib
import sys
import time
from pathlib import Path

import torch

from benchmarks.table import Row, markdown
from benchmarks.timing import CLOCKS, environment, use_clock
from benchmarks.workload import QUICK_DATA, ROOT
from mtlface.config import key_values_as_flags

PAGE_TITLE = ("# Benchmark results\n\nWritten by the command below (`python -m benchmarks`); "
              "what each part measures and the other measured tables: "
              "[Benchmarks](benchmarks.md).\n\n")
PARTS = ("overhead", "pipeline", "preprocess", "detection", "inference", "scaling", "weighting")
# A measurement (re)writes its docs page; a --quick smoke test never does.
DEFAULT_OUT = ROOT / "docs" / "benchmark-results.md"
QUICK_OUT = ROOT / "outputs" / "benchmarks" / "quick.md"
# Settings fields that take the synthetic data overrides in --quick (small splits).
DATA_FIELDS = ("overrides", "data")


def settings_for(module, quick: bool, repeats: int | None, epoch_steps: int | None = None):
    settings = module.QUICK if quick else module.Settings()
    if quick:
        for field in DATA_FIELDS:
            if hasattr(settings, field):
                settings = dataclasses.replace(settings, **{field: (*getattr(settings, field),
                                                                    *QUICK_DATA)})
    if repeats is not None:
        settings = dataclasses.replace(settings, repeats=repeats)
    if epoch_steps is not None and module.__name__.endswith(".overhead"):
        settings = dataclasses.replace(settings, steps=epoch_steps)
    return settings


def parse_parts(value: str) -> list[str]:
    parts = [p.strip() for p in value.split(",") if p.strip()]
    unknown = [p for p in parts if p not in PARTS]
    if unknown or not parts:
        raise argparse.ArgumentTypeError(f"unknown part(s) {unknown or value!r}; valid: "
                                         f"{','.join(PARTS)}")
    return parts


def run_parts(parts: list[str], quick: bool, repeats: int | None = None,
              epoch_steps: int | None = None) -> tuple[list[Row], dict]:
    rows: list[Row] = []
    seconds = {}
    for part in parts:
        module = importlib.import_module(f"benchmarks.{part}")
        start = time.perf_counter()
        part_rows = module.run(settings_for(module, quick, repeats, epoch_steps))
        seconds[part] = time.perf_counter() - start
        print(f"[bench] {part}: {seconds[part]:.0f} s\n{markdown(part_rows)}", file=sys.stderr,
              flush=True)  # progress: a full run takes many minutes
        rows += part_rows
    return rows, seconds


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter,
                                     epilog=__doc__.split("\n\n", 2)[2])
    parser.add_argument("--parts", type=parse_parts, default=list(PARTS),
                        help=f"comma-separated subset of {','.join(PARTS)} (default: all)")
    parser.add_argument("--quick", action="store_true", help="tiny settings: a smoke test")
    parser.add_argument("--out", type=Path, default=None,
                        help="markdown file to write (default: docs/benchmark-results.md, "
                             "the docs page; with --quick outputs/benchmarks/quick.md)")
    parser.add_argument("--threads", type=int, default=None,
                        help="torch.set_num_threads (default: torch's own)")
    parser.add_argument("--clock", choices=list(CLOCKS), default="wall",
                        help="wall time, or this process's CPU time for in-process parts")
    parser.add_argument("--repeats", type=int, default=None,
                        help="timed repeats of every part (default: each part's own)")
    parser.add_argument("--epoch-steps", type=int, default=None,
                        help="steps of the overhead part's BKNet epoch (default: 50)")
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parser.parse_args(key_values_as_flags(argv, parser))
    if args.threads is not None:
        if args.threads < 1:
            parser.error(f"--threads must be >= 1, got {args.threads}")
        torch.set_num_threads(args.threads)
    for flag in ("repeats", "epoch_steps"):
        if getattr(args, flag) is not None and getattr(args, flag) < 1:
            parser.error(f"--{flag.replace('_', '-')} must be >= 1, got {getattr(args, flag)}")
    use_clock(args.clock)

    header = environment()
    command = " ".join(["python -m benchmarks", *(argv if argv is not None else sys.argv[1:])])
    rows, seconds = run_parts(args.parts, args.quick, args.repeats, args.epoch_steps)
    header = {"command": f"`{command}`", **header,
              "load average at the end": environment()["load average (1/5/15 min)"],
              "seconds per part": ", ".join(f"{p} {s:.0f}" for p, s in seconds.items())}
    if args.quick:
        header["settings"] = "--quick: tiny smoke-test settings, not a measurement"
    table = markdown(rows, header)
    print(table)
    out = args.out or (QUICK_OUT if args.quick else DEFAULT_OUT)
    if out == DEFAULT_OUT:
        table = PAGE_TITLE + table
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(table)
    print(f"[bench] written to {out}", file=sys.stderr)
    return 0
