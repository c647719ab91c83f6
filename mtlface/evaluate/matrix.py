"""Cross-dataset evaluation matrix: runs (one per training mix) against test sources.

    python -m mtlface.evaluate.matrix runs=<run or sweep folder>[,<run>...] [data=<conf/data
        option>] [sources=a,b] [split=test] [out=<folder>] [batch_size=256] [device=cpu]

Every run is evaluated (:func:`mtlface.evaluate.run.evaluate`) on every source of ``data``
(default: each run's own data config) that is labelled for one of its tasks; a cell holds each
shared task's main metric on that source (``Task.main_metric``: accuracy for class tasks, the
MAE in years for age, the concordance ``ccc`` for a number). A sweep folder (``-m`` over
training mixes) stands for its runs, so

    python train.py -m data=utkface,adience_utk,imdb_utk tasks=[age,gender]
    python -m mtlface.evaluate.matrix runs=outputs/multiruns/<date>_<time> data=adience_utk_fer_ck

gives the table of how each training mix transfers to each test set. Writes ``matrix.csv``
(one row per run, source, task), ``matrix.md`` (the matrix) and ``matrix.png`` (a heatmap per
task) into ``out`` (default ``outputs/matrix/<date>_<time>``).
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path

import numpy as np
import pandas as pd

from mtlface.config import parse_key_values
from mtlface.errors import ConfigError, UserError, check_writable_dir, reports_errors
from mtlface.runs import RunFolder

log = logging.getLogger(__name__)

OPTIONS = ("runs", "data", "sources", "split", "out", "batch_size", "device")
USAGE = "see python -m mtlface.evaluate.matrix --help"
COLUMNS = ["run", "mix", "source", "task", "metric", "value", "count"]


def run_folders(paths: Sequence[str | Path]) -> list[Path]:
    """Run folders (those holding ``.hydra/config.yaml``), a sweep folder standing for the
    runs in it, in order."""
    runs: list[Path] = []
    for given in paths:
        path = Path(given).expanduser()
        if RunFolder(path).is_run():
            runs.append(path)
            continue
        found = sorted(p for p in path.glob("*/") if RunFolder(p).is_run())
        if not found:
            raise UserError(f"{path} is neither a run folder nor a sweep folder of runs (no "
                            f".hydra/config.yaml in it or its sub-folders): pass runs=<folder>")
        runs += found
    return runs


def mix_name(run: Path) -> str:
    """The training mix a run was made with: its ``data`` choice when Hydra recorded it."""
    return RunFolder(run).group_choice("data") or run.name


def cells(run: Path, data: str | None, sources: Sequence[str] | None, split: str,
          batch_size: int, device: str, out: Path) -> pd.DataFrame:
    """One row per (source, task) of a run's evaluation: the task's main metric there."""
    from mtlface.evaluate.cli import parse_args
    from mtlface.evaluate.run import evaluate
    from mtlface.tasks.base import kind_class

    argv = [f"run={run}", f"split={split}", f"batch_size={batch_size}", f"device={device}",
            "plots=false", f"out={out / 'runs' / run.name}"]
    argv += [f"data={data}"] if data else []
    argv += [f"sources=[{','.join(sources)}]"] if sources else []
    result = evaluate(parse_args(argv))
    # The kind of each task (its class) names its main metric: no model needed.
    main = {name: kind_class(node._target_).main_metric
            for name, node in RunFolder(run).load_config().tasks.items()}
    rows = []
    for source in sorted(result.table["source"].unique()):
        for name, metric in main.items():
            key = f"{split}/{source}/{name}/{metric}"
            if key in result.metrics:
                rows.append({"run": run.name, "mix": mix_name(run), "source": source,
                             "task": name, "metric": metric,
                             "value": result.metrics[key],
                             "count": int(result.metrics[f"{split}/{source}/{name}/count"])})
    return pd.DataFrame(rows, columns=COLUMNS)


def to_markdown(frame: pd.DataFrame) -> str:
    """Rows: run (training mix); columns: test source; a cell: ``task metric value`` per
    shared task."""
    text = frame.assign(cell=[f"{t} {m} {v:.3f}" for t, m, v in
                              zip(frame["task"], frame["metric"], frame["value"])])
    table = text.groupby(["run", "mix", "source"], sort=False)["cell"].agg("<br>".join)
    table = table.unstack("source").fillna("")
    lines = ["| run (training mix) | " + " | ".join(table.columns) + " |",
             "|---|" + "---|" * len(table.columns)]
    for (run, mix), row in table.iterrows():
        lines.append(f"| {run} ({mix}) | " + " | ".join(row.tolist()) + " |")
    return "\n".join(lines) + "\n"


def heatmap(frame: pd.DataFrame, path: Path) -> Path:
    """One panel per task: runs x sources, coloured by the main metric."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    tasks = list(dict.fromkeys(frame["task"]))
    fig = Figure(figsize=(4.5 * len(tasks), 1.2 + 0.6 * frame["run"].nunique()),
                 layout="constrained")
    for ax, task in zip(np.atleast_1d(fig.subplots(1, len(tasks))), tasks):
        part = frame[frame["task"] == task]
        grid = part.pivot_table(index="run", columns="source", values="value", sort=False)
        metric = part["metric"].iloc[0]
        lower_is_better = metric in ("mae", "rmse")  # reversed colours: "good" looks the same
        image = ax.imshow(grid.to_numpy(), cmap="viridis_r" if lower_is_better else "viridis",
                          aspect="auto")
        ax.set_xticks(range(grid.shape[1]), grid.columns, rotation=45, ha="right")
        ax.set_yticks(range(grid.shape[0]), grid.index)
        for (i, j), value in np.ndenumerate(grid.to_numpy()):
            if np.isfinite(value):
                ax.text(j, i, f"{value:.3f}", ha="center", va="center", fontsize=8,
                        color="white")
        ax.set_title(f"{task}: {metric}")
        fig.colorbar(image, ax=ax, shrink=0.8)
    FigureCanvasAgg(fig)
    fig.savefig(path, dpi=110)
    return path


def build_matrix(runs: Sequence[str | Path], data: str | None = None,
                 sources: Sequence[str] | None = None, split: str = "test",
                 out: str | Path | None = None, batch_size: int = 256,
                 device: str = "cpu") -> tuple[pd.DataFrame, Path]:
    """Evaluate every run on every test source sharing a task; write the three files."""
    folders = run_folders(runs)
    out = Path(out) if out else Path("outputs") / "matrix" / datetime.now().strftime(
        "%Y-%m-%d_%H-%M-%S")
    check_writable_dir(out, "matrix", "out=")
    out.mkdir(parents=True, exist_ok=True)
    frame = pd.concat([cells(r, data, sources, split, batch_size, device, out) for r in folders],
                      ignore_index=True)
    if frame.empty:
        raise UserError(f"no run shares a task with any {split} source of "
                        f"{f'data={data}' if data else 'its own data'}: nothing to tabulate")
    frame.to_csv(out / "matrix.csv", index=False)
    (out / "matrix.md").write_text(to_markdown(frame))
    heatmap(frame, out / "matrix.png")
    return frame, out


def _split_list(value: str | None) -> list[str] | None:
    return [v for v in value.strip("[]").split(",") if v] if value else None


@reports_errors
def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if any(a in ("-h", "--help") for a in argv):
        print(__doc__)
        return 0
    args = parse_key_values([a for a in argv if a != "--debug"], OPTIONS, USAGE)
    if "runs" not in args:
        raise ConfigError(f"missing option runs=<run or sweep folder>[,...]; {USAGE}")
    try:
        batch_size = int(args.get("batch_size", 256))
    except ValueError:
        raise ConfigError(f"batch_size={args['batch_size']}: not an integer") from None
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    frame, out = build_matrix(_split_list(args["runs"]), args.get("data"),
                              _split_list(args.get("sources")), args.get("split", "test"),
                              args.get("out"), batch_size, args.get("device", "cpu"))
    print((out / "matrix.md").read_text(), end="")
    print(f"written: {out / 'matrix.csv'}, {out / 'matrix.md'}, {out / 'matrix.png'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
