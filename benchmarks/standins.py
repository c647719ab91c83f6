"""Every seed recipe on its synthetic stand-in, as markdown tables.

    .venv/bin/python -m benchmarks.standins [--out outputs/standin] [--only bknet,keras_stage1]

The real datasets are not on this machine, so each ``experiment=`` recipe runs on the embedded
synthetic sources that stand in for its data mix (``data=synthetic data.sources=[...]``), with
a budget of a few CPU minutes: the check that each recipe trains, and how far it gets in that
budget, not a number comparable with the published one. Each stand-in is one ``train.py``
command (``STANDINS``; a sweep recipe runs with ``-m`` and is read from its summary), run one
after the other; its CPU time (user + system of the run's processes) is reported because wall
time on a shared machine is not comparable. A finished stand-in is not re-run, so an
interrupted table resumes; a failed one is reported with its exit code.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
from omegaconf import OmegaConf

ROOT = Path(__file__).resolve().parent.parent
QUIET = ("~callbacks.progress_bar", "+trainer.enable_progress_bar=false")
# A narrow BKNet at 32 px: what the study sweeps train in their budget (9 and 6 runs).
NARROW = ("backbone.widths=[16,32,64,128]", "backbone.input_size=32")


@dataclass(frozen=True)
class StandIn:
    name: str
    experiment: str
    overrides: tuple[str, ...]
    budget: str
    sweep: bool = False
    after: str | None = None  # the stand-in whose run this one starts from (init_from)


STANDINS = [
    StandIn("bknet", "bknet_smile_gender_age",
            ("data=synthetic", "data.sources=[imdb_like,genki_like]", "trainer.max_epochs=3"),
            "3 epochs at batch 256 (the recipe's task-balanced mix x the default shares)"),
    StandIn("keras_stage1", "keras_mtl_age_gender",
            ("data=synthetic", "data.sources=[imdb_like,utk_like]", "trainer.max_epochs=6"),
            "6 epochs at batch 256"),
    StandIn("keras_stage2", "keras_mtl_emotion",
            ("data=synthetic", "data.sources=[imdb_like,utk_like,fer_like]",
             "trainer.max_epochs=4"), "4 epochs at batch 256, from keras_stage1",
            after="keras_stage1"),
    StandIn("efficientnet_b4", "efficientnet_b4_age_gender",
            ("data=synthetic", "data.sources=[imdb_like,utk_like]",
             "+data.split_map={imdb_like:{test:null},utk_like:{train:test,val:test}}",
             "data.batch_size=32", "trainer.max_epochs=3"),
            "3 epochs at batch 32 (reduced from 256); train imdb_like, test all of utk_like"),
    StandIn("lmtcnn_5fold", "lmtcnn_adience",
            ("data=synthetic", "data.sources=[imdb_like]",
             "data.manifests.synthetic.sources.imdb_like.folds=5", "data.fold=0,1,2,3,4",
             "trainer.max_steps=54"),
            "5 folds of imdb_like x 54 steps at batch 128", sweep=True),
    StandIn("lmtcnn_2_1", "lmtcnn_2_1_adience",
            ("data=synthetic", "data.sources=[imdb_like]", "trainer.max_steps=54"),
            "54 steps at batch 128, imdb_like's own split"),
    StandIn("age_study", "utk_age_study",
            ("data=synthetic", "data.sources=[utk_like]", "backbone=bknet",
             "~backbone.global_pool", "~backbone.drop_rate", *NARROW, "trainer.max_epochs=6"),
            "9 runs x 6 epochs at batch 256, narrow BKNet 32 px instead of EfficientNet-B4",
            sweep=True),
    StandIn("mtl_vs_stl", "mtl_vs_stl", (*NARROW, "head.hidden=[64]", "trainer.max_steps=400"),
            "6 runs x 400 steps at batch 64, narrow BKNet 32 px", sweep=True),
]


def command(s: StandIn, out: Path) -> list[str]:
    where = f"hydra.sweep.dir={out / s.name}" if s.sweep else f"hydra.run.dir={out / s.name}"
    start = [f"init_from={out / s.after}"] if s.after else []
    return [sys.executable, str(ROOT / "train.py"), *(["-m"] if s.sweep else []),
            f"experiment={s.experiment}", *s.overrides, *start, *QUIET, where]


def results(s: StandIn, out: Path) -> pd.DataFrame | None:
    """One row per run (a sweep: per row of its summary, means), test and val metrics."""
    folder = out / s.name
    if s.sweep:
        summary = folder / "summary.csv"
        return pd.read_csv(summary) if summary.is_file() else None
    path = folder / "results.json"
    return pd.DataFrame([json.loads(path.read_text())]) if path.is_file() else None


def run(s: StandIn, out: Path) -> dict:
    record = out / s.name / "standin.json"
    if record.is_file() and results(s, out) is not None:
        return json.loads(record.read_text())
    cmd = command(s, out)
    print("[standin]", " ".join(cmd), flush=True)
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    proc = subprocess.run(cmd, cwd=ROOT)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    info = {"returncode": proc.returncode, "cpu_minutes": cpu / 60, "command": cmd[1:]}
    if proc.returncode == 0:
        record.write_text(json.dumps(info, indent=2) + "\n")
    return info


def metric_cells(row: pd.Series, sweep: bool) -> str:
    cells = []
    for task in ("age", "gender", "smile", "emotion", "race"):
        key = f"test/{task}/acc"
        mean = row.get(f"{key}_mean" if sweep else key)
        if mean is not None and pd.notna(mean):
            std = row.get(f"{key}_std") if sweep else None
            spread = f" ± {std:.3f}" if std is not None and pd.notna(std) and row.get("n", 1) > 1 \
                else ""
            cells.append(f"{task} {mean:.3f}{spread}")
    return ", ".join(cells)


def published_cell(experiment: str) -> str:
    """The recipe's ``published:`` target (real data), e.g. ``age 0.614, gender 0.936``."""
    recipe = OmegaConf.load(ROOT / "conf" / "experiment" / f"{experiment}.yaml")
    published = recipe.get("published") or {}
    if "metrics" in published:
        return ", ".join(f"{key.split('/')[1]} {value:.3f}"
                         for key, value in published.metrics.items())
    if "metrics_by_num_bins" in published:
        return "val age " + ", ".join(f"{value['val/age/acc']:.3f} ({bins} bins)"
                                      for bins, value in published.metrics_by_num_bins.items())
    return "(none)"


def table(done: dict[str, dict], out: Path) -> str:
    lines = ["| stand-in | recipe | published (real data) | budget | CPU min | stand-in test "
             "accuracy |", "|---|---|---|---|---|---|"]
    details = []
    for s in STANDINS:
        if s.name not in done:
            continue
        info, frame = done[s.name], results(s, out)
        recipe = f"`{s.experiment}` | {published_cell(s.experiment)}"
        if frame is None:
            lines.append(f"| {s.name} | {recipe} | {s.budget} | | failed (exit "
                         f"{info.get('returncode')}) |")
            continue
        cpu = f"{info['cpu_minutes']:.1f}"
        if not s.sweep:
            lines.append(f"| {s.name} | {recipe} | {s.budget} | {cpu} | "
                         f"{metric_cells(frame.iloc[0], False)} |")
            continue
        swept = [c for c in frame.columns if c not in ("n", "failed") and
                 not c.endswith(("_mean", "_std"))]
        if not swept:  # one row: mean ± std over the repeat axis (folds)
            lines.append(f"| {s.name} | {recipe} | {s.budget} | {cpu} | "
                         f"{metric_cells(frame.iloc[0], True)} (mean ± std over "
                         f"{int(frame.iloc[0]['n'])}) |")
            continue
        lines.append(f"| {s.name} | {recipe} | {s.budget} | {cpu} | below |")
        rows = [f"`{s.name}` (`{s.experiment}`), test accuracy per swept value:", "",
                "| " + " | ".join(swept) + " | test accuracy |",
                "|" + "---|" * (len(swept) + 1)]
        rows += ["| " + " | ".join(str(r[c]) for c in swept) + f" | {metric_cells(r, True)} |"
                 for _, r in frame.iterrows()]
        details.append("\n".join(rows))
    return "\n\n".join(["\n".join(lines), *details])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "outputs" / "standin")
    parser.add_argument("--only", default="", help="comma-separated stand-in names")
    args = parser.parse_args()
    names = [n for n in args.only.split(",") if n] or [s.name for s in STANDINS]
    unknown = sorted(set(names) - {s.name for s in STANDINS})
    if unknown:
        parser.error(f"unknown stand-in(s) {unknown}; valid: {[s.name for s in STANDINS]}")
    args.out.mkdir(parents=True, exist_ok=True)
    done = {s.name: run(s, args.out) for s in STANDINS if s.name in names}
    text = table(done, args.out)
    (args.out / "table.md").write_text(text + "\n")
    print(text)


if __name__ == "__main__":
    main()
