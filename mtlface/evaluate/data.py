"""What an evaluation looks at: one split of a data config (the run's own; a ``conf/data/``
option composed as ``train.py`` composes it; or a manifest file), as one ``ManifestDataset``
per source with the backbone's evaluation transform."""

from __future__ import annotations

import copy
import logging
import os
from collections.abc import Mapping, Sequence

from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from hydra.errors import InstantiationException
from hydra.utils import get_class, instantiate
from omegaconf import DictConfig, OmegaConf, open_dict

from mtlface.backbones import InputSpec
from mtlface.config import CONF_DIR, unknown_group_choices
from mtlface.data.datamodule import MultiSourceDataModule
from mtlface.data.dataset import ManifestDataset
from mtlface.data.manifest import SPLITS
from mtlface.data.transforms import build_transform
from mtlface.errors import ConfigError, UserError
from mtlface.labels import resolve_labels
from mtlface.tasks import Task

log = logging.getLogger(__name__)


class EvalDataModule(MultiSourceDataModule):
    """The rows of one ``split`` of the sources (after ``fold`` and ``split_map``), each source
    with the evaluation transform. Rows labelled for none of the tasks are left out and counted
    in ``unused``; ``extra`` label columns (group attributes) travel as targets too. Unlike
    training, no source needs a train split or a label for every task."""

    def __init__(self, *args, split: str = "test", extra: Sequence[str] = (), **kwargs) -> None:
        super().__init__(*args, **kwargs)
        if split not in SPLITS:
            raise ValueError(f"unknown split {split!r}; valid: {', '.join(SPLITS)}")
        self.split = split
        self.extra = [c for c in extra if c not in self.tasks]
        self.unused: dict[str, int] = {}
        self.found: list[str] = []

    def setup(self, stage: str | None = None) -> None:
        if self.datasets:
            return
        transform = build_transform(self.input_spec, train=False)
        self.datasets = {self.split: {}}
        sources = self._read_sources()
        self.found = sorted(sources)
        for source, (rows, root) in sources.items():
            part = rows[rows["split"] == self.split]
            useful = part[self.tasks].notna().any(axis=1)
            if (~useful).any():
                self.unused[source] = int((~useful).sum())
                log.info("%s/%s: %d of %d rows have no label for tasks %s: not evaluated",
                         source, self.split, self.unused[source], len(part), self.tasks)
            if useful.any():
                self.datasets[self.split][source] = ManifestDataset(
                    part[useful], root, {**self.labels, **resolve_labels(self.extra)},
                    self.input_spec.channels,
                    transform, name=f"{source}/{self.split}")

    def split_datasets(self) -> dict[str, ManifestDataset]:
        """``{source: dataset}`` of the split; an error when no row can be evaluated."""
        self.prepare_data()
        self.setup()
        datasets = self.datasets[self.split]
        if not datasets:  # the data chosen does not fit the run: an option to change
            raise ConfigError(f"nothing to evaluate: no {self.split} row of source(s) "
                              f"{', '.join(self.found)} is labelled for any of the run's tasks "
                              f"{self.tasks}; pick other data, split or sources")
        if not any(len(d) for d in datasets.values()):
            raise UserError(f"nothing to evaluate: every image of the {self.split} rows is "
                            f"missing (sources {', '.join(datasets)}); re-run preprocessing")
        return datasets


def data_config(run_cfg: DictConfig, data: str | None = None, manifest: str | None = None,
                overrides: Sequence[str] = ()) -> DictConfig:
    """A config whose ``data`` node says what to evaluate (with the ``paths`` and ``seed`` its
    interpolations need): ``data`` names a ``conf/data/`` option, composed with ``overrides``
    (``data.<key>=<value>``) as ``python train.py data=<name> ...`` would; ``manifest`` is one
    manifest file (or its folder); with neither, the run's own data config."""
    if data and manifest:
        raise ValueError("pass data=<name> or manifest=<path>, not both")
    if data:
        if errors := unknown_group_choices([f"data={data}"]):
            raise ValueError(errors[0])
        GlobalHydra.instance().clear()
        with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
            cfg = compose("train", overrides=[f"data={data}", *overrides])
        GlobalHydra.instance().clear()
    else:
        cfg = copy.deepcopy(run_cfg)
        with open_dict(cfg):
            if manifest:
                path = os.path.abspath(os.path.expanduser(manifest))
                cfg.data = {"_target_": f"{MultiSourceDataModule.__module__}."
                                        f"{MultiSourceDataModule.__name__}",
                            "manifests": {"manifest": path}}
            if overrides:
                cfg.merge_with(OmegaConf.from_dotlist(list(overrides)))
    _root_at_cwd(cfg)
    return cfg


def _root_at_cwd(cfg: DictConfig) -> None:
    """``paths.root_dir`` is ``${hydra:runtime.cwd}``, which resolves only inside a Hydra app:
    use the working directory, as ``train.py`` started here would."""
    paths = cfg.get("paths")
    if paths is not None and "hydra:" in str(OmegaConf.to_container(paths).get("root_dir")):
        with open_dict(cfg):
            cfg.paths.root_dir = os.getcwd()


def eval_datamodule(cfg: DictConfig, tasks: Mapping[str, Task], input_spec: InputSpec,
                    split: str,
                    sources: Sequence[str] | None = None,
                    extra: Sequence[str] = ()) -> EvalDataModule:
    """``cfg.data`` (a ``MultiSourceDataModule`` config) as an :class:`EvalDataModule` for the
    labels of a model's ``tasks``."""
    if "data" not in cfg:
        raise ValueError("the config has no data node to evaluate on")
    target = cfg.data.get("_target_")
    try:
        cls = get_class(target)
    except Exception:  # noqa: BLE001 (hydra raises several kinds): name it in one line
        cls = None
    if not (isinstance(cls, type) and issubclass(cls, MultiSourceDataModule)):
        raise ValueError(f"data._target_ {target!r} is not a MultiSourceDataModule: evaluation "
                         f"reads its sources")
    kwargs = {"sources": list(sources)} if sources else {}
    try:
        labels = {name: task.label.to_dict() for name, task in tasks.items()}
        return instantiate(cfg.data, _target_=f"{__name__}.EvalDataModule", tasks=labels,
                           input_spec=input_spec, split=split, extra=list(extra), **kwargs)
    except InstantiationException as exc:  # the cause is the message a user needs
        cause = exc.__cause__
        if isinstance(cause, ValueError | OSError | UserError):  # keeps its exit code
            raise cause from None
        raise ValueError(f"bad data config: {cause or exc}") from None
