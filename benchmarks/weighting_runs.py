"""Every ``weighting=`` option on the default synthetic run, as one markdown table.

    .venv/bin/python -m benchmarks.weighting_runs [--out outputs/weighting] [--only fixed,upgrad] [-- overrides]

Each option is ``python train.py weighting=<option> [overrides]`` (the README's default run:
BKNet, all five tasks, 3 epochs, seed 42), one after the other. The table gives test accuracy;
what each option costs per step is ``python -m benchmarks --parts weighting`` (measured side
by side, which whole runs hours apart on a shared machine are not; their wall seconds are kept
in ``<out>/<option>/timing.json`` only as a record). A finished option (its ``results.json``
exists) is not re-run, so an interrupted table resumes. A failed option is reported in the
table with its exit code instead of stopping the others.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
OPTIONS = ["fixed", "uncertainty", "dwa", "gradnorm", "upgrad", "pcgrad", "mgda", "cagrad",
           "imtl_g", "aligned_mtl"]
TASK_METRICS = [("age", "acc"), ("age", "acc_1off"), ("age", "mae"), ("gender", "acc"),
                ("smile", "acc"), ("emotion", "acc"), ("race", "acc")]
TIMING = "timing.json"


def run_option(option: str, out: Path, overrides: list[str]) -> dict:
    run_dir = out / option
    results = run_dir / "results.json"
    if results.is_file():
        return {"results": json.loads(results.read_text()),
                **json.loads((run_dir / TIMING).read_text() if (run_dir / TIMING).is_file()
                             else "{}")}
    cmd = [sys.executable, str(ROOT / "train.py"), f"weighting={option}",
           f"hydra.run.dir={run_dir}", "~callbacks.progress_bar",
           "+trainer.enable_progress_bar=false", *overrides]
    print("[weighting]", " ".join(cmd), flush=True)
    start = time.perf_counter()
    proc = subprocess.run(cmd, cwd=ROOT)
    seconds = time.perf_counter() - start
    if proc.returncode != 0:
        return {"results": {}, "seconds": seconds, "returncode": proc.returncode}
    (run_dir / TIMING).write_text(json.dumps({"seconds": seconds}) + "\n")
    return {"results": json.loads(results.read_text()), "seconds": seconds}


def table(rows: dict[str, dict]) -> str:
    head = ["weighting", *(f"{t} {m}" for t, m in TASK_METRICS), "mean (score)"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for option, row in rows.items():
        res = row["results"]
        if not res:
            lines.append(f"| {option} | failed (exit {row.get('returncode')}) |")
            continue
        cells = [f"{res.get(f'test/{t}/{m}', float('nan')):.3f}" for t, m in TASK_METRICS]
        lines.append(f"| {option} | " + " | ".join(cells) +
                     f" | {res.get('test/score', float('nan')):.3f} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "outputs" / "weighting")
    parser.add_argument("--only", default=",".join(OPTIONS), help="comma-separated options")
    parser.add_argument("overrides", nargs="*", help="extra train.py overrides (after --)")
    args = parser.parse_args()
    options = [o for o in args.only.split(",") if o]
    unknown = sorted(set(options) - set(OPTIONS))
    if unknown:
        parser.error(f"unknown option(s) {unknown}; valid: {OPTIONS}")
    rows = {o: run_option(o, args.out, args.overrides) for o in options}
    text = table(rows)
    (args.out / "table.md").write_text(text + "\n")
    print(text)


if __name__ == "__main__":
    main()
