"""Fitting a run's calibration on its validation split: one forward pass of the best
checkpoint, a temperature per task with class probabilities, then the age interval's ``q`` on
the calibrated ages. Used after training (``calibrate: true``) and by
``python -m mtlface.calibrate``."""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import Tensor, nn
from torch.utils.data import DataLoader

from mtlface.calibration.conformal import (check_level, conformal_quantile,
                                           groupwise_quantiles)
from mtlface.calibration.store import AgeInterval, Calibration, calibration_path
from mtlface.calibration.temperature import fit_temperature
from mtlface.errors import ConfigError, UserError
from mtlface.tasks import Task

log = logging.getLogger(__name__)

GROUPWISE = ("gender", "race")
DEFAULT_LEVEL = 0.9


@dataclass
class Outputs:
    """Raw head outputs of every row of a split, with its targets, source and group labels."""

    raw: dict[str, Tensor]          # task -> [N, ...]
    targets: dict[str, np.ndarray]  # task -> class (-1 missing) or years (NaN missing)
    sources: np.ndarray
    groups: dict[str, np.ndarray]   # gender / race labels as the manifest has them (-1 missing)

    def __len__(self) -> int:
        return len(self.sources)


def calibrated_tasks(tasks: Mapping[str, Task]) -> list[str]:
    """Tasks that give class probabilities (class tasks, age unless it regresses)."""
    return [n for n, t in tasks.items() if t.has_probs]


def age_task(tasks: Mapping[str, Task]) -> str | None:
    """The task whose number gets the conformal interval (the age task)."""
    return next((n for n, t in tasks.items() if t.conformal_interval), None)


@torch.no_grad()
def collect_outputs(model: nn.Module, datasets: Mapping[str, object], batch_size: int = 256,
                    device: str | torch.device = "cpu") -> Outputs:
    """One forward pass of ``model`` (outputs ``{task: Tensor}``) over every dataset."""
    model = model.eval()
    raw: dict[str, list[Tensor]] = {}
    targets: dict[str, list[np.ndarray]] = {}
    sources, groups = [], {g: [] for g in GROUPWISE}
    for source, dataset in datasets.items():
        if not len(dataset):
            continue
        for batch in DataLoader(dataset, batch_size=batch_size, num_workers=0):
            for name, out in model(batch["image"].to(device)).items():
                raw.setdefault(name, []).append(out.float().cpu())
        for name in raw:
            targets.setdefault(name, []).append(np.asarray(dataset.targets[name]))
        for g in GROUPWISE:
            values = dataset.targets.get(g)
            groups[g].append(np.full(len(dataset), -1) if values is None
                             else np.nan_to_num(np.asarray(values, dtype=np.float64),
                                                nan=-1).astype(np.int64))
        sources += [source] * len(dataset)
    if not sources:
        raise UserError("no image to calibrate on: every image of the validation split is "
                        "missing; re-run preprocessing")
    return Outputs({k: torch.cat(v) for k, v in raw.items()},
                   {k: np.concatenate(v) for k, v in targets.items()}, np.asarray(sources),
                   {g: np.concatenate(v) for g, v in groups.items()})


def predicted_groups(tasks: Mapping[str, Task], raw: Mapping[str, Tensor],
                     attribute: str) -> list[str]:
    """The model's own prediction of ``attribute`` for each row (a new face has no label)."""
    task = tasks[attribute]
    return [task.classes[i] for i in raw[attribute].argmax(dim=-1).tolist()]


def check_groupwise(groupwise: str | None, tasks: Mapping[str, Task],
                    option: str = "groupwise") -> str | None:
    if groupwise in (None, "", "none", "null"):
        return None
    if groupwise not in GROUPWISE:
        raise ConfigError(f"{option}={groupwise}: not a group attribute; use one of "
                          f"{', '.join(GROUPWISE)}, or leave it unset for one interval for all")
    if groupwise not in tasks:
        raise ConfigError(f"{option}={groupwise}: the run has no {groupwise} task to tell a new "
                          f"face's group; leave {option} unset, or train with that task")
    return groupwise


def fit_calibration(tasks: Mapping[str, Task], outputs: Outputs, level: float = DEFAULT_LEVEL,
                    groupwise: str | None = None, checkpoint: str | None = None,
                    strict: bool = True) -> Calibration:
    """Temperatures of the tasks with probabilities, and the age interval at ``level`` (on the
    predicted ages, which temperatures do not change). ``strict=False`` (after training) leaves the interval out, logged, when
    there are too few labelled age rows; the command raises."""
    level = check_level(level)
    groupwise = check_groupwise(groupwise, tasks)
    temperatures, nll_report = {}, {}
    for name in calibrated_tasks(tasks):
        mask, target = tasks[name].class_targets(outputs.targets[name])
        if not mask.any():
            log.info("calibration: no labelled validation row for %s: its temperature stays 1",
                     name)
            continue
        fit = fit_temperature(outputs.raw[name][torch.from_numpy(mask)], target,
                              tasks[name].log_probs)
        temperatures[name] = fit.temperature
        nll_report[name] = {"temperature": fit.temperature, "nll_before": fit.nll_before,
                            "nll_after": fit.nll_after, "count": fit.count}
        log.info("calibration: %s T=%.3f, val NLL %.4f -> %.4f (n=%d)", name, fit.temperature,
                 fit.nll_before, fit.nll_after, fit.count)
    calibration = Calibration(temperatures, checkpoint=checkpoint,
                              report={"split": "val", "rows": len(outputs), "fit": nll_report})
    interval = _fit_interval(tasks, outputs, calibration, level, groupwise, strict)
    return Calibration(temperatures, interval, checkpoint, calibration.report)


def _fit_interval(tasks, outputs: Outputs, calibration: Calibration, level: float,
                  groupwise: str | None, strict: bool) -> AgeInterval | None:
    name = age_task(tasks)
    if name is None:
        return None
    years = tasks[name].point(outputs.raw[name]).double().numpy()  # T never moves the age
    true = np.asarray(outputs.targets[name], dtype=np.float64)
    mask = ~np.isnan(true)
    scores = np.abs(years[mask] - true[mask])
    try:
        q = conformal_quantile(scores, level)
        q_by_group, counts = {}, {}
        if groupwise:
            groups = np.asarray(predicted_groups(tasks, outputs.raw, groupwise))[mask]
            q_by_group, counts = groupwise_quantiles(scores, groups, level)
    except UserError as exc:
        if strict:
            raise
        log.warning("calibration: no age interval: %s", exc)
        return None
    log.info("calibration: %s interval at level %g: +-%.2f years (n=%d)%s", name, level, q,
             len(scores), f", by predicted {groupwise}: {q_by_group}" if groupwise else "")
    return AgeInterval(name, level, q, int(len(scores)), groupwise, q_by_group, counts)


def val_datasets(cfg, tasks: Mapping[str, Task], input_spec) -> dict:
    """The validation split of the run's data config, with the evaluation transform."""
    from mtlface.evaluate.data import eval_datamodule
    from mtlface.evaluate.predictions import GROUP_ATTRIBUTES

    datamodule = eval_datamodule(cfg, tasks, input_spec, "val", extra=GROUP_ATTRIBUTES)
    try:
        return datamodule.split_datasets()
    except ConfigError:
        raise UserError("the run has no labelled validation rows to calibrate on: calibration "
                        "is fitted on the validation split; train with data that has a val "
                        "split (data.manifests.<m>.sources.<s>.splits.val > 0)") from None


def calibrate_run(run_dir: str | os.PathLike, level: float = DEFAULT_LEVEL,
                  groupwise: str | None = None, checkpoint: str | os.PathLike | None = None,
                  batch_size: int = 256, device: str = "cpu") -> tuple[Calibration, Path]:
    """Fit a finished run's calibration on its val split and write ``<run>/calibration.json``."""
    from mtlface.evaluate.data import data_config
    from mtlface.predict.runs import best_checkpoint, build_trained_model, load_config

    level = check_level(level)
    cfg = load_config(run_dir)
    checkpoint = Path(checkpoint or best_checkpoint(run_dir))
    model, input_spec = build_trained_model(cfg, checkpoint, device)
    check_groupwise(groupwise, model.tasks)
    datasets = val_datasets(data_config(cfg), model.tasks, input_spec)
    outputs = collect_outputs(model, datasets, batch_size, device)
    calibration = fit_calibration(model.tasks, outputs, level, groupwise, checkpoint.name)
    return calibration, calibration.save(calibration_path(run_dir))


def check_conformal_config(cfg) -> None:
    """``conformal.level`` and ``conformal.groupwise`` of a training config, checked before
    training starts."""
    conformal = cfg.get("conformal") or {}
    check_level(conformal.get("level", DEFAULT_LEVEL), "conformal.level")
    check_groupwise(conformal.get("groupwise"), dict.fromkeys(cfg.get("tasks") or {}),
                    "conformal.groupwise")


def calibrate_after_training(cfg, model: nn.Module, input_spec, best: str | None,
                             output_dir: Path) -> Path | None:
    """``calibrate: true``: fit on the best checkpoint's val outputs; skipped, with the reason
    logged, when there is no checkpoint (``debug=fast``) or no validation data. A failure is
    logged, never raised: the trained run stays whole and ``python -m mtlface.calibrate`` can
    fit it later."""
    try:
        return _calibrate_after_training(cfg, model, input_spec, best, output_dir)
    except Exception as exc:  # noqa: BLE001 - training is done; keep its results
        log.warning("calibration failed (%s: %s); the run is kept uncalibrated: fit it with "
                    "`python -m mtlface.calibrate run=%s`", type(exc).__name__, exc, output_dir,
                    exc_info=True)
        return None


def _calibrate_after_training(cfg, model: nn.Module, input_spec, best: str | None,
                              output_dir: Path) -> Path | None:
    if not best:
        log.info("calibration skipped: no best checkpoint (debug=fast or checkpointing off)")
        return None
    from mtlface.predict.runs import load_weights, read_state_dict

    conformal = cfg.get("conformal") or {}
    level, groupwise = conformal.get("level", DEFAULT_LEVEL), conformal.get("groupwise")
    try:
        datasets = val_datasets(cfg, model.tasks, input_spec)
    except UserError as exc:
        log.info("calibration skipped: %s", exc)
        return None
    load_weights(model, read_state_dict(best), best)
    device = next(model.parameters()).device
    outputs = collect_outputs(model, datasets, int(cfg.data.get("eval_batch_size") or 256),
                              device)
    calibration = fit_calibration(model.tasks, outputs, level, groupwise, Path(best).name,
                                  strict=False)
    path = calibration.save(calibration_path(output_dir))
    log.info("calibration written to %s", path)
    return path
