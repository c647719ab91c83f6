"""The one forward pass: every evaluated image's predictions, probabilities, targets, source
and group labels as one row of a table, from which every metric, group breakdown and plot is
computed (a new metric needs no new pass).

Columns of the table, per task ``t`` (classes of an age task are its bins):

- ``t_true``: the labelled class (nullable ``Int64``; NA where the row has no label for ``t``);
- ``t_pred``: the predicted class; ``t_conf``: its probability (NaN when the task gives none,
  e.g. age regression); ``t_p0 .. t_p{K-1}``: the class probabilities; ``t_nll``: minus the
  log-probability of the labelled class (NaN where unlabelled);
- with a calibration (the run's ``calibration.json``) the probabilities are the calibrated
  ones, and ``t_conf_raw``, ``t_nll_raw`` are the same before calibration (the predicted
  class and age never change);
- age also: ``age_true_years``, ``age_pred_years``; with an age interval ``age_lo``,
  ``age_hi`` (added by :func:`mtlface.evaluate.coverage.add_intervals`).

Plus ``path``, ``source`` and the group attributes (``gender``, ``race``: the manifest's labels,
NA where missing), whatever the model's tasks are.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch
from torch import Tensor
from torch.utils.data import DataLoader

from mtlface.calibration.store import Calibration
from mtlface.calibration.store import decode as calibrated_decode
from mtlface.data.dataset import ManifestDataset
from mtlface.labels import LABELS, MISSING_CLASS
from mtlface.tasks import AgeBins, AgeTask, Task

GROUP_ATTRIBUTES = ("gender", "race")


@dataclass(frozen=True)
class TaskInfo:
    """What evaluating one task needs to know: its class names (an age task's bins), its age
    bins (None for a classification task) and whether it gives class probabilities."""

    name: str
    classes: tuple[str, ...]
    bins: AgeBins | None = None
    has_probs: bool = True

    @classmethod
    def from_task(cls, task: Task) -> TaskInfo:
        if isinstance(task, AgeTask):
            return cls(task.name, tuple(task.bins.names), task.bins, not task.regression)
        return cls(task.name, tuple(LABELS[task.name].classes))

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    @property
    def is_age(self) -> bool:
        return self.bins is not None

    def prob_columns(self) -> list[str]:
        return [f"{self.name}_p{k}" for k in range(self.num_classes)] if self.has_probs else []


def target_columns(info: TaskInfo, values: np.ndarray) -> dict[str, pd.Series]:
    """Table columns of one task's targets as a dataset holds them (-1 / NaN = missing)."""
    if not info.is_age:
        return {f"{info.name}_true": _nullable(values)}
    years = np.asarray(values, dtype=np.float64)
    labelled = ~np.isnan(years)
    bins = np.full(len(years), MISSING_CLASS, dtype=np.int64)
    bins[labelled] = info.bins.bucketize(torch.from_numpy(years[labelled])).numpy()
    return {f"{info.name}_true": _nullable(bins), f"{info.name}_true_years": pd.Series(years)}


def prediction_columns(info: TaskInfo, decoded: Mapping[str, Tensor]) -> dict[str, np.ndarray]:
    """Table columns of one task's decoded outputs (``Task.decode``)."""
    pred = decoded["bin"] if info.is_age else decoded["label"]
    columns = {f"{info.name}_pred": pred.numpy().astype(np.int64)}
    probs = decoded.get("probs")
    if probs is None:
        columns[f"{info.name}_conf"] = np.full(len(pred), np.nan)
    else:
        columns[f"{info.name}_conf"] = probs.gather(1, pred[:, None])[:, 0].double().numpy()
        columns |= dict(zip(info.prob_columns(), probs.double().numpy().T))
    if "probs_raw" in decoded:
        columns[f"{info.name}_conf_raw"] = (
            decoded["probs_raw"].gather(1, pred[:, None])[:, 0].double().numpy())
    if info.is_age:
        columns[f"{info.name}_pred_years"] = decoded["years"].double().numpy()
    return columns


def nll_columns(info: TaskInfo, true: pd.Series, decoded: Mapping[str, Tensor]
                ) -> dict[str, np.ndarray]:
    """Per row, minus the log-probability of the labelled class (NaN where unlabelled), after
    (``t_nll``) and, with a calibration, before it (``t_nll_raw``)."""
    labelled = true.notna().to_numpy()
    index = torch.from_numpy(true.fillna(0).to_numpy(np.int64))
    columns = {}
    for key, column in (("probs", f"{info.name}_nll"), ("probs_raw", f"{info.name}_nll_raw")):
        if key in decoded:
            p = decoded[key].double().gather(1, index[:, None])[:, 0].clamp_min(1e-12)
            columns[column] = np.where(labelled, -p.log().numpy(), np.nan)
    return columns


def _nullable(values: np.ndarray) -> pd.Series:
    values = np.asarray(values, dtype=np.int64)
    return pd.Series(pd.array(np.where(values == MISSING_CLASS, None, values), dtype="Int64"))


@torch.inference_mode()
def collect_predictions(model: torch.nn.Module, datasets: Mapping[str, ManifestDataset],
                        infos: Mapping[str, TaskInfo], batch_size: int = 256,
                        num_workers: int = 0, device: str | torch.device = "cpu",
                        groups: Sequence[str] = GROUP_ATTRIBUTES,
                        calibration: Calibration | None = None) -> pd.DataFrame:
    """Run ``model`` over every dataset (one per source, images in order) and return the
    table described in the module docstring. Datasets carry targets for the tasks and, where
    they were built with them, for the group attributes. With ``calibration`` the
    probabilities are calibrated (and the uncalibrated ones kept, see the module docstring)."""
    model = model.eval().to(device)
    temperatures = calibration.temperatures if calibration is not None else {}
    frames = []
    for source, dataset in datasets.items():
        if not len(dataset):
            continue  # every image missing: counted when the dataset was built
        decoded: dict[str, list[dict[str, Tensor]]] = {t: [] for t in infos}
        loader = DataLoader(dataset, batch_size=batch_size, num_workers=num_workers)
        for batch in loader:
            outputs = model(batch["image"].to(device))
            for name in infos:
                task, raw = model.tasks[name], outputs[name]
                out = calibrated_decode(task, raw, temperatures.get(name))
                if name in temperatures and infos[name].has_probs:
                    out["probs_raw"] = task.decode(raw)["probs"]
                decoded[name].append({k: v.float().cpu() if v.is_floating_point() else v.cpu()
                                      for k, v in out.items()})
        columns: dict[str, object] = {"path": [str(p) for p in dataset.paths],
                                      "source": [source] * len(dataset)}
        for group in groups:
            values = dataset.targets.get(group)
            columns[group] = (_nullable(values) if values is not None
                              else pd.Series(pd.array([None] * len(dataset), dtype="Int64")))
        for name, info in infos.items():
            columns |= target_columns(info, dataset.targets[name])
            parts = decoded[name]
            joined = {k: torch.cat([p[k] for p in parts]) for k in parts[0]}
            columns |= prediction_columns(info, joined)
            columns |= nll_columns(info, columns[f"{name}_true"], joined)
        frames.append(pd.DataFrame(columns))
    if not frames:
        raise ValueError("nothing to evaluate: no dataset")
    return pd.concat(frames, ignore_index=True)
