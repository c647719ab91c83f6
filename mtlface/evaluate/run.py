"""Evaluate a trained run: rebuild its model, one forward pass over a split into the
predictions table, then metrics, group accuracy, plots and the report, all from that table."""

from __future__ import annotations

import json
import logging
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

import pandas as pd
import torch
from omegaconf import MISSING, DictConfig

from mtlface.calibration.store import load_run_calibration
from mtlface.data.manifest import SPLITS
from mtlface.errors import ConfigError, check_writable_dir
from mtlface.evaluate.coverage import add_intervals, coverage_metrics, coverage_table, worst
from mtlface.evaluate.data import data_config, eval_datamodule
from mtlface.evaluate.groups import group_gaps, group_table
from mtlface.evaluate.metrics import compute_metrics
from mtlface.evaluate.plots import save_plots
from mtlface.evaluate.predictions import GROUP_ATTRIBUTES, collect_predictions
from mtlface.evaluate.report import calibration_lines, coverage_lines, headline, render
from mtlface.predict.backends import check_device
from mtlface.predict.runs import best_checkpoint, build_trained_model, load_config
from mtlface.runs import RunFolder

log = logging.getLogger(__name__)


@dataclass
class EvalConfig:
    """Command-line options (``key=value``); see ``python -m mtlface.evaluate --help``."""

    run: str = MISSING
    data: Optional[str] = None      # noqa: UP007 (OmegaConf reads typing's Optional)
    manifest: Optional[str] = None  # noqa: UP007
    split: str = "test"
    sources: Optional[list[str]] = None  # noqa: UP007
    out: Optional[str] = None       # noqa: UP007
    name: Optional[str] = None      # noqa: UP007
    batch_size: int = 256
    num_workers: int = 0
    device: str = "cpu"
    ece_bins: int = 15
    min_group: int = 10   # groups with fewer rows are listed but left out of the gap
    plots: bool = True
    # data.<key>=<value> overrides of the data config (kept apart: `data` is also a name).
    data_overrides: list[str] = field(default_factory=list)


@dataclass
class EvalResult:
    folder: Path
    metrics: dict[str, float]
    not_evaluated: dict[str, str]
    groups: pd.DataFrame
    table: pd.DataFrame
    plots: list[Path]
    report: str
    coverage: pd.DataFrame = field(default_factory=pd.DataFrame)  # coverage.csv: by group


def check_options(cfg: EvalConfig | DictConfig) -> None:
    """The options that need no model: checked before one is loaded."""
    if cfg.split not in SPLITS:
        raise ConfigError(f"unknown split {cfg.split!r}; valid: {', '.join(SPLITS)}")
    if not re.fullmatch(r"cpu|auto|cuda(:\d+)?", str(cfg.device)):
        raise ConfigError(f"device must be cpu, cuda[:N] or auto, got {cfg.device!r}")
    small = {k: cfg[k] for k in ("ece_bins", "min_group", "batch_size") if cfg[k] < 1}
    if small or cfg.num_workers < 0:
        raise ConfigError(f"ece_bins, min_group, batch_size must be >= 1 and num_workers >= 0, "
                          f"got {small or {'num_workers': cfg.num_workers}}")
    check_device(_device(cfg.device), "device={}")


def check_output(cfg: EvalConfig | DictConfig, run_dir: Path) -> None:
    """The output folder (``out=``, else the run's ``eval/``) can be written: checked before
    the model is loaded, not after the forward pass."""
    if cfg.out:
        check_writable_dir(cfg.out, "evaluation output", "out=")
    else:
        check_writable_dir(RunFolder(run_dir).eval_dir, "evaluation output", "out=")


def resolve_run(path: str | os.PathLike) -> tuple[Path, Path]:
    """``(run folder, checkpoint)``: a run folder and its best checkpoint (the shared rule), or
    a ``.ckpt`` file and the run folder it belongs to."""
    run, ckpt = RunFolder.containing(path)
    load_config(run.path)  # a clear error for a folder that is not a run before anything else
    return run.path, best_checkpoint(ckpt or run.path)


def _data_name(cfg: EvalConfig, run_dir: Path, evaluated: list[str]) -> str:
    """``<source or data>``: the sources asked for or evaluated when one, else the data
    option (``data=``, the manifest's folder, or the run's own ``data`` choice)."""
    if cfg.sources or len(evaluated) == 1:
        return "+".join(cfg.sources or evaluated)
    if cfg.data:
        return cfg.data
    if cfg.manifest:
        return Path(cfg.manifest).expanduser().resolve().with_suffix("").name
    return RunFolder(run_dir).group_choice("data") or "data"


def _device(name: str) -> str:
    return ("cuda" if torch.cuda.is_available() else "cpu") if name == "auto" else name


def evaluate(cfg: EvalConfig | DictConfig) -> EvalResult:
    """Everything ``python -m mtlface.evaluate`` does; files in the returned folder."""
    check_options(cfg)
    run_dir, ckpt = resolve_run(cfg.run)
    check_output(cfg, run_dir)
    run_cfg = load_config(run_dir)
    device = _device(cfg.device)
    model, input_spec = build_trained_model(run_cfg, ckpt, device)
    tasks = dict(model.tasks)
    data_cfg = data_config(run_cfg, cfg.data, cfg.manifest, list(cfg.data_overrides))
    datamodule = eval_datamodule(data_cfg, tasks, input_spec, cfg.split, cfg.sources,
                                 extra=GROUP_ATTRIBUTES)
    datasets = datamodule.split_datasets()
    log.info("evaluating %s on %s rows of %s", ckpt, cfg.split,
             {s: len(d) for s, d in datasets.items()})
    calibration = load_run_calibration(run_dir, ckpt)
    # The one forward pass; everything below is computed from this table.
    table = collect_predictions(model, datasets, tasks, cfg.batch_size, cfg.num_workers, device,
                                calibration=calibration)
    interval = calibration.interval if calibration is not None else None
    if interval is not None and interval.task in tasks:
        add_intervals(table, interval, tasks)

    split = cfg.split
    metrics, not_evaluated = compute_metrics(table, tasks, split, cfg.ece_bins)
    groups = group_table(table, tasks, split)
    gaps = group_gaps(groups, cfg.min_group)
    metrics |= gaps
    first_lines, sections, coverage = [], [], pd.DataFrame()
    if calibration is not None:
        sections += calibration_lines(metrics, [t for t in tasks if t not in not_evaluated],
                                      sorted(datasets), split, calibration.temperatures)
    age = next((t for t, task in tasks.items() if task.conformal_interval
                and t not in not_evaluated), None)
    if age is not None:
        level = interval.level if interval is not None and interval.task == age else None
        coverage = coverage_table(table, age, level)
        metrics |= coverage_metrics(coverage, age, split)
        first_lines = headline(*worst(coverage, cfg.min_group), level)
        note = (f"The interval was fitted on this {split} split: its coverage here is not a "
                f"test of it; evaluate split=test for that." if split == "val" and level
                else None)
        sections += coverage_lines(coverage, age, level, cfg.min_group, note)
    name = cfg.name or f"{_data_name(cfg, run_dir, sorted(datasets))}-{split}"
    folder = Path(cfg.out).expanduser() if cfg.out else RunFolder(run_dir).evaluation(name)
    folder.mkdir(parents=True, exist_ok=True)
    plots = save_plots(table, tasks, metrics, split, folder, cfg.ece_bins) if cfg.plots else []

    notes = [f"{source}: {n} {split} rows labelled for none of the run's tasks (not evaluated)"
             for source, n in datamodule.unused.items()]
    notes += [f"{ds.name}: skipped {n} ({reason})" for ds in datasets.values()
              for reason, n in ds.skipped.items()]
    notes += [f"{t}: no class probabilities (its read-out gives none): no ECE or reliability "
              f"diagram" for t, task in tasks.items()
              if not task.has_probs and task.classes and t not in not_evaluated]
    for message in [*not_evaluated.values(), *notes]:
        log.info(message)
    by_source = table["source"].value_counts(sort=False)
    facts = {"run": str(run_dir), "checkpoint": str(ckpt), "data": _data_description(cfg),
             "split": split, "rows": len(table),
             "rows_by_source": {str(s): int(n) for s, n in by_source.items()}}
    report = render(title=f"Evaluation: {name}", facts=_report_facts(facts, tasks),
                    metrics=metrics, tasks=list(tasks), sources=sorted(datasets), split=split,
                    not_evaluated=not_evaluated, notes=notes, groups=groups, gaps=gaps,
                    min_count=cfg.min_group, plots=plots, first_lines=first_lines,
                    sections=sections)
    _write(folder, {**facts, "metrics": metrics, "not_evaluated": not_evaluated, "notes": notes,
                    "calibration": calibration.to_dict() if calibration is not None else None},
           groups, table, report)
    if not coverage.empty:
        coverage.to_csv(folder / "coverage.csv", index=False)
    return EvalResult(folder, metrics, not_evaluated, groups, table, plots, report, coverage)


def _data_description(cfg: EvalConfig | DictConfig) -> str:
    what = (f"data={cfg.data}" if cfg.data else f"manifest={cfg.manifest}" if cfg.manifest
            else "the run's data config")
    return " ".join([what, *cfg.data_overrides])


def _report_facts(facts: dict, tasks: dict) -> list[tuple[str, str]]:
    by_source = ", ".join(f"{s} {n}" for s, n in facts["rows_by_source"].items())
    return [("run", f"`{facts['run']}`"), ("checkpoint", f"`{facts['checkpoint']}`"),
            ("data", facts["data"]), ("split", facts["split"]),
            ("rows", f"{facts['rows']} ({by_source})"), ("tasks", ", ".join(tasks))]


def _write(folder: Path, summary: dict, groups: pd.DataFrame, table: pd.DataFrame,
           report: str) -> None:
    """metrics.json (with what was evaluated), metrics.csv (long: key, value), groups.csv,
    predictions.csv and report.md."""
    metrics = summary["metrics"]
    (folder / "metrics.json").write_text(json.dumps(summary, indent=2) + "\n")
    pd.DataFrame({"key": list(metrics), "value": list(metrics.values())}).to_csv(
        folder / "metrics.csv", index=False)
    groups.to_csv(folder / "groups.csv", index=False)
    table.to_csv(folder / "predictions.csv", index=False)
    (folder / "report.md").write_text(report)
