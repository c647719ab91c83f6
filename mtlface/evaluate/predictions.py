"""The one forward pass: every evaluated image's predictions, probabilities, targets, source
and group labels as one row of a table, from which every metric, group breakdown and plot is
computed (a new metric needs no new pass).

Columns of the table, per task ``t``, as its kind writes them (``Task.table_targets``,
``Task.table_predictions``; classes of an age task are its bins):

- ``t_true``: the labelled class (nullable ``Int64``; NA where the row has no label for ``t``),
  or for a numeric (regression) task the labelled value (NaN where unlabelled);
- ``t_pred``: the predicted class (or value); ``t_conf``: its probability (NaN when the task
  gives none, e.g. age regression); ``t_p0 .. t_p{K-1}``: the class probabilities; ``t_nll``:
  minus the log-probability of the labelled class (NaN where unlabelled);
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

import numpy as np
import pandas as pd
import torch
from torch import Tensor
from torch.utils.data import DataLoader

from mtlface.calibration.store import Calibration
from mtlface.calibration.store import decode as calibrated_decode
from mtlface.data.dataset import ManifestDataset
from mtlface.labels import MISSING_CLASS
from mtlface.tasks import Task
from mtlface.tasks.base import nullable_classes

GROUP_ATTRIBUTES = ("gender", "race")


def nll_columns(name: str, true: pd.Series, decoded: Mapping[str, Tensor]
                ) -> dict[str, np.ndarray]:
    """Per row, minus the log-probability of the labelled class (NaN where unlabelled), after
    (``t_nll``) and, with a calibration, before it (``t_nll_raw``)."""
    labelled = true.notna().to_numpy()
    index = torch.from_numpy(true.fillna(0).to_numpy(np.int64))
    columns = {}
    for key, column in (("probs", f"{name}_nll"), ("probs_raw", f"{name}_nll_raw")):
        if key in decoded:
            p = decoded[key].double().gather(1, index[:, None])[:, 0].clamp_min(1e-12)
            columns[column] = np.where(labelled, -p.log().numpy(), np.nan)
    return columns


def _group_labels(values: np.ndarray | None, size: int) -> pd.Series:
    if values is None:
        return pd.Series(pd.array([None] * size, dtype="Int64"))
    return nullable_classes(values, MISSING_CLASS)  # group labels are classes, -1 missing


@torch.inference_mode()
def collect_predictions(model: torch.nn.Module, datasets: Mapping[str, ManifestDataset],
                        tasks: Mapping[str, Task], batch_size: int = 256,
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
        decoded: dict[str, list[dict[str, Tensor]]] = {t: [] for t in tasks}
        loader = DataLoader(dataset, batch_size=batch_size, num_workers=num_workers)
        for batch in loader:
            outputs = model(batch["image"].to(device))
            for name, task in tasks.items():
                raw = outputs[name]
                out = calibrated_decode(task, raw, temperatures.get(name))
                if name in temperatures and task.has_probs:
                    out["probs_raw"] = task.decode(raw)["probs"]
                decoded[name].append({k: v.float().cpu() if v.is_floating_point() else v.cpu()
                                      for k, v in out.items()})
        columns: dict[str, object] = {"path": [str(p) for p in dataset.paths],
                                      "source": [source] * len(dataset)}
        for group in groups:
            columns[group] = _group_labels(dataset.targets.get(group), len(dataset))
        for name, task in tasks.items():
            columns |= task.table_targets(dataset.targets[name])
            parts = decoded[name]
            joined = {k: torch.cat([p[k] for p in parts]) for k in parts[0]}
            columns |= task.table_predictions(joined)
            if task.has_probs:
                columns |= nll_columns(name, columns[f"{name}_true"], joined)
        frames.append(pd.DataFrame(columns))
    if not frames:
        raise ValueError("nothing to evaluate: no dataset")
    return pd.concat(frames, ignore_index=True)
