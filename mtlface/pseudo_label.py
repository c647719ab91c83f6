"""Pseudo-labels: a trained run labels the tasks a source lacks, where it is confident.

    python -m mtlface.pseudo_label run=<run folder> source_manifest=<manifest.csv or its folder>
        [tasks=[emotion]] [threshold=0.9] [splits=[train]] [output=<path>] [checkpoint=<.ckpt>]
        [batch_size=256] [num_workers=0] [device=cpu|cuda|auto] [--debug]

For each task (default: every task of the run) and each source of the manifest that has no label
for it, the run's model (rebuilt from ``<run>/.hydra/config.yaml``, weights from its best
checkpoint) looks at the source's images of ``splits`` (default ``train`` only: a pseudo-label
on val/test would grade the model against itself). Where its most probable class has
probability >= ``threshold`` the label is filled in; the row gets ``pseudo_<task>=True`` and
every scored row its ``pseudo_<task>_prob``. Existing labels are never changed. The result is a
new manifest (default ``<manifest folder>/<stem>.pseudo-<tasks>.csv``; the source manifest is
never overwritten) plus ``<output stem>.summary.json``. Train on it with
``~data.manifests.synthetic +data.manifests.pseudo=<new manifest>`` (any manifest path works as
a ``data.manifests`` entry).

A mistake ends with one ``error:`` line: exit 2 for an option, 1 for anything else (a missing
run, checkpoint, manifest or GPU, an unwritable output); the options, the device and the
output are checked before the model is loaded. ``--debug`` shows the traceback.
"""

from __future__ import annotations

import json
import logging
import os
import sys
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Optional

import numpy as np
import pandas as pd
import torch
from omegaconf import MISSING, DictConfig
from torch import Tensor
from torch.utils.data import DataLoader

from mtlface.backbones import InputSpec
from mtlface.data.dataset import ManifestDataset
from mtlface.data.manifest import SPLITS, manifest_file, read_manifest, write_manifest
from mtlface.data.transforms import build_transform
from mtlface.config import parse_key_values, structured_options
from mtlface.errors import ConfigError, check_writable, check_writable_dir
from mtlface.errors import debug_requested
from mtlface.predict.backends import check_device
from mtlface.predict.errors import exit_code_of
from mtlface.predict.runs import build_trained_model, load_config
from mtlface.runs import CONFIG, RunFolder, best_checkpoint

log = logging.getLogger(__name__)


@dataclass
class PseudoLabelConfig:
    """Command-line options (``key=value``); see the module docstring."""

    run: str = MISSING
    source_manifest: str = MISSING
    tasks: Optional[list[str]] = None  # noqa: UP007 (OmegaConf reads typing's Optional)
    threshold: float = 0.9
    splits: list[str] = field(default_factory=lambda: ["train"])
    output: Optional[str] = None  # noqa: UP007
    checkpoint: Optional[str] = None  # noqa: UP007
    batch_size: int = 256
    num_workers: int = 0
    device: str = "cpu"


@dataclass
class TaskSummary:
    """One task: which sources were pseudo-labelled, how many rows scored, kept, discarded."""

    sources: list[str]                 # sources without any label for the task: pseudo-labelled
    labelled_sources: list[str]        # sources that label it: left alone
    scored: int = 0
    kept: int = 0                      # probability >= threshold: label filled in
    discarded: int = 0                 # below the threshold: left blank
    kept_by_source: dict[str, int] = field(default_factory=dict)


@dataclass
class PseudoLabelSummary:
    rows: int
    threshold: float
    splits: list[str]
    missing_images: int
    tasks: dict[str, TaskSummary]
    source_manifest: str = ""
    output: str = ""
    checkpoint: str = ""


def load_run(run: str | os.PathLike, checkpoint: str | os.PathLike | None = None
             ) -> tuple[torch.nn.Module, InputSpec, Path]:
    """The model of a ``train.py`` run with the weights of ``checkpoint`` (default: the run's
    best), its input spec and the checkpoint path: the Predictor's loader
    (:func:`mtlface.predict.runs.build_trained_model`). ``run`` may also be a checkpoint inside
    ``<run>/checkpoints/``."""
    folder, given = RunFolder.containing(run)
    checkpoint = checkpoint or given
    if given is None and not folder.path.is_dir():
        raise FileNotFoundError(f"no run folder at {folder.path}: pass the folder of a train.py "
                                f"run (or one of its checkpoints) with run=")
    if not folder.is_run():
        raise FileNotFoundError(f"{folder.path} has no {CONFIG}: pass the folder of a "
                                f"train.py run (the model is rebuilt from its config)")
    ckpt = best_checkpoint(checkpoint or folder.path)
    model, input_spec = build_trained_model(load_config(folder.path), ckpt)
    return model, input_spec, ckpt


def decode_confident(task: torch.nn.Module, pred: Tensor) -> tuple[Tensor, Tensor]:
    """``(label, confidence)`` per sample: the task's decoded label (class index, or age in
    years) and the probability of its most probable class (age: bin)."""
    if not task.has_probs:
        raise ValueError(f"task {task.name} gives no class probabilities (its read-out has "
                         f"none): it cannot be pseudo-labelled by confidence")
    out = task.decode(pred)
    return task.label_values(out), out["probs"].max(dim=-1).values


def check_options(threshold: float, splits: Sequence[str]) -> None:
    """The options that need no model: checked before one is loaded."""
    if not 0 < threshold <= 1:
        raise ConfigError(f"threshold must be in (0, 1], got {threshold}")
    bad = [s for s in splits if s not in SPLITS]
    if bad or not splits:
        raise ConfigError(f"splits must be some of {list(SPLITS)}, got {list(splits)}")


def _check_tasks(model: torch.nn.Module, tasks: Sequence[str]) -> None:
    if not tasks:
        raise ConfigError("no tasks to pseudo-label; name some with tasks=[...]")
    absent = [t for t in tasks if t not in model.tasks]
    if absent:
        raise ConfigError(f"the run has no head for task(s) {absent} (its tasks: "
                          f"{list(model.tasks)}); pick some of them with tasks=[...]")


def pseudo_label(model: torch.nn.Module, input_spec: InputSpec, frame: pd.DataFrame, root: Path,
                 tasks: Sequence[str], threshold: float, splits: Sequence[str] = ("train",),
                 batch_size: int = 256, num_workers: int = 0, device: str = "cpu",
                 ) -> tuple[pd.DataFrame, PseudoLabelSummary]:
    """A copy of the manifest ``frame`` (images under ``root``) with pseudo-labels filled in
    for ``tasks``, and what was done. Only blank cells of sources with no label for a task are
    candidates; ``frame`` itself is not modified."""
    tasks = list(tasks)
    check_options(threshold, splits)
    _check_tasks(model, tasks)
    out = frame.copy()
    summary = PseudoLabelSummary(len(frame), threshold, list(splits), 0, {})
    candidates: dict[str, np.ndarray] = {}
    for task in tasks:
        has_label = frame.groupby("source")[task].apply(lambda s: bool(s.notna().any()))
        lacking = sorted(has_label.index[~has_label])
        summary.tasks[task] = TaskSummary(lacking, sorted(has_label.index[has_label]))
        candidates[task] = (frame["source"].isin(lacking) & frame["split"].isin(splits)
                            & frame[task].isna()).to_numpy()
    needed = np.logical_or.reduce(list(candidates.values()))
    exists = np.zeros(len(frame), dtype=bool)  # looked up for the needed rows only
    exists[needed] = [(root / p).is_file() for p in frame["path"][needed]]
    summary.missing_images = int((needed & ~exists).sum())
    scored = np.flatnonzero(needed & exists)  # positions of the rows the model looks at

    labels, probs = _predict(model, input_spec, frame.iloc[scored], root, tasks, batch_size,
                             num_workers, device)
    for task in tasks:
        info, flag, prob = summary.tasks[task], f"pseudo_{task}", f"pseudo_{task}_prob"
        mine = candidates[task][scored]  # rows of `scored` that this task labels
        rows, p, value = scored[mine], probs[task][mine], labels[task][mine]
        keep = p >= threshold
        previous = out[flag].fillna(False).astype(bool) if flag in out else False
        out[flag] = previous  # keeps flags of an earlier pseudo-labelling pass
        out[prob] = out[prob] if prob in out else np.nan
        out.iloc[rows, out.columns.get_loc(prob)] = p
        out.iloc[rows[keep], out.columns.get_loc(task)] = (
            value[keep].astype(np.int64) if model.tasks[task].label.is_categorical
            else value[keep])
        out.iloc[rows[keep], out.columns.get_loc(flag)] = True
        info.scored, info.kept = len(rows), int(keep.sum())
        info.discarded = info.scored - info.kept
        info.kept_by_source = {str(k): int(v) for k, v in
                               frame["source"].iloc[rows[keep]].value_counts().sort_index().items()}
    return out, summary


@torch.inference_mode()
def _predict(model: torch.nn.Module, input_spec: InputSpec, rows: pd.DataFrame, root: Path,
             tasks: Sequence[str], batch_size: int, num_workers: int, device: str
             ) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """Decoded labels and confidences per task for ``rows``, in order, with the evaluation
    transform of the model's backbone (as the DataModule evaluates)."""
    labels = {t: np.empty(0) for t in tasks}
    probs = {t: np.empty(0, dtype=np.float32) for t in tasks}
    if not len(rows):
        return labels, probs
    device = _device(device)
    dataset = ManifestDataset(rows, root, [], input_spec.channels,
                              build_transform(input_spec, train=False), name="pseudo-label")
    loader = DataLoader(dataset, batch_size=batch_size, num_workers=num_workers)
    model = model.eval().to(device)
    parts: dict[str, list[tuple[Tensor, Tensor]]] = {t: [] for t in tasks}
    for batch in loader:
        outputs = model(batch["image"].to(device))
        for task in tasks:
            label, conf = decode_confident(model.tasks[task], outputs[task])
            parts[task].append((label.cpu(), conf.float().cpu()))
    for task in tasks:
        labels[task] = torch.cat([lab for lab, _ in parts[task]]).numpy()
        probs[task] = torch.cat([c for _, c in parts[task]]).numpy()
    return labels, probs


def default_output(source: Path, tasks: Sequence[str]) -> Path:
    return source.with_name(f"{source.stem}.pseudo-{'-'.join(tasks)}.csv")


def output_path(output: str | None, source: Path, tasks: Sequence[str]) -> Path:
    """Where the new manifest goes: ``output`` (a folder gets the source's file name), else
    :func:`default_output`."""
    path = Path(output) if output else default_output(source, tasks)
    return path / source.name if path.is_dir() or not path.suffix else path


def _device(device: str) -> str:
    return ("cuda" if torch.cuda.is_available() else "cpu") if device == "auto" else device


def check_output(output: str | None, source: Path) -> None:
    """The new manifest can be written and is not the source: checked before the model is
    loaded. Without ``output`` the default name depends on the run's tasks: its folder (the
    source's) is checked."""
    if not output:
        check_writable_dir(source.parent, "pseudo-labelled manifest", "output=")
        return
    path = output_path(output, source, [])
    if path.resolve() == source.resolve():
        raise ConfigError(f"output {path} is the source manifest: pseudo-labels go to a new "
                          f"manifest; pass another output=")
    check_writable(path, "pseudo-labelled manifest", "output=")


def run(cfg: PseudoLabelConfig | DictConfig) -> PseudoLabelSummary:
    """Pseudo-label ``cfg.source_manifest`` with run ``cfg.run``; write the new manifest and
    its summary; return the summary."""
    source = manifest_file(cfg.source_manifest)
    if not source.is_file():
        raise FileNotFoundError(f"no manifest at {cfg.source_manifest}: pass a manifest.csv "
                                f"(or its folder) with source_manifest=")
    check_options(cfg.threshold, list(cfg.splits))
    check_device(_device(cfg.device), "device={}")
    check_output(cfg.output, source)
    model, input_spec, ckpt = load_run(cfg.run, cfg.checkpoint)
    tasks = list(cfg.tasks) if cfg.tasks else list(model.tasks)
    frame = read_manifest(source, {n: t.label for n, t in model.tasks.items()})
    output = output_path(cfg.output, source, tasks)
    out, summary = pseudo_label(model, input_spec, frame, source.parent, tasks, cfg.threshold,
                                list(cfg.splits), cfg.batch_size, cfg.num_workers, cfg.device)
    if output.parent.resolve() != source.parent.resolve():  # paths are relative to the manifest
        out["path"] = [os.path.relpath((source.parent / p).resolve(), output.parent.resolve())
                       for p in out["path"]]
    summary.source_manifest, summary.checkpoint = str(source), str(ckpt)
    summary.output = str(write_manifest(out, output))
    output.with_name(f"{output.stem}.summary.json").write_text(
        json.dumps(asdict(summary), indent=2) + "\n")
    print_summary(summary)
    return summary


def print_summary(summary: PseudoLabelSummary) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"pseudo-labels (threshold {summary.threshold}, splits "
                        f"{'/'.join(summary.splits)}, {summary.rows} rows)")
    for col in ("task", "sources labelled", "scored", "kept", "discarded"):
        table.add_column(col, justify="left" if col in ("task", "sources labelled") else "right")
    for task, info in summary.tasks.items():
        table.add_row(task, ", ".join(info.sources) or "(none lacks it)", str(info.scored),
                      str(info.kept), str(info.discarded))
    Console().print(table)
    if summary.missing_images:
        print(f"images missing (skipped): {summary.missing_images}")
    print(f"new manifest: {summary.output}\ntrain on it in place of the source's "
          f"data.manifests entry, e.g. for the synthetic data: python train.py "
          f"'~data.manifests.synthetic' +data.manifests.pseudo={summary.output} tasks=[...]")


def parse_args(argv: Sequence[str]) -> DictConfig:
    """``key=value`` arguments over the defaults (:func:`mtlface.config.parse_key_values`;
    YAML values for lists and numbers: ``tasks=[emotion]``)."""
    keys = [f.name for f in fields(PseudoLabelConfig)]
    return structured_options(PseudoLabelConfig, parse_key_values(argv, keys, "see --help"))


def main(argv: Sequence[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    debug_requested(argv)  # removes --debug
    if {"-h", "--help"} & set(argv):
        print(__doc__)
        return 0
    logging.basicConfig(level=logging.INFO, format="[%(levelname)s] %(message)s")

    def command() -> int:
        run(parse_args(argv))
        return 0

    return exit_code_of(command)


if __name__ == "__main__":
    sys.exit(main())
