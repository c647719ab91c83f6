"""MultiSourceDataModule: one Dataset per source, interleaved so each step sees every source."""

from __future__ import annotations

import logging
import math
import os
from collections import Counter
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Protocol

import numpy as np
import pandas as pd
import pytorch_lightning as pl
import torch
from pytorch_lightning.overrides.distributed import UnrepeatedDistributedSampler
from pytorch_lightning.utilities import CombinedLoader
from scipy.optimize import nnls
from torch.utils.data import ConcatDataset, DataLoader, Dataset, DistributedSampler, Subset

from mtlface.backbones import InputSpec
from mtlface.data.dataset import ManifestDataset, SampleKey
from mtlface.data.manifest import SPLITS, ManifestError, manifest_file, read_manifest
from mtlface.data.transforms import build_transform
from mtlface.labels import LabelSpec, resolve_labels

log = logging.getLogger(__name__)

# balance_tasks: the least share a source keeps, so no source is silently dropped.
MIN_BALANCED_SHARE = 0.05


class ManifestProvider(Protocol):
    """Anything that can produce a manifest: the synthetic generator, a preprocessing cache,
    or a plain file. ``prepare`` may do work the first time; it is cheap afterwards."""

    def prepare(self) -> Path: ...


class ManifestFile:
    """A manifest that already exists on disk."""

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = Path(path)

    def prepare(self) -> Path:
        path = manifest_file(self.path)
        if not path.is_file():
            raise ManifestError(f"no manifest at {self.path}: run preprocess.py for this source "
                                f"first, or point data.manifests at an existing manifest.csv")
        return path


class EpochSampler(DistributedSampler):
    """Shuffles ``dataset`` as a function of ``(seed, epoch, pass)`` only, and gives every
    index the seed of that sample's augmentation (a :class:`SampleKey`). A run resumed from an
    epoch-end checkpoint therefore sees the same samples in the same order with the same
    augmentation as an uninterrupted one, whatever the global RNG state (which Lightning's
    checkpoints do not hold) or the number of workers.

    Lightning calls :meth:`set_epoch`; ``pass`` counts the iterations since, because
    ``max_size_cycle`` restarts a shorter source within an epoch and each restart should
    reshuffle. With ``num_replicas`` > 1 each process takes its share of one permutation,
    padded by repetition to equal shares as ``DistributedSampler`` does (DDP needs the same
    number of steps everywhere); being a ``DistributedSampler``, Lightning leaves it in place."""

    def __init__(self, dataset: Dataset, seed: int = 0, num_replicas: int = 1,
                 rank: int = 0) -> None:
        super().__init__(dataset, num_replicas=num_replicas, rank=rank, shuffle=True,
                         seed=seed)
        self.passes = 0

    def set_epoch(self, epoch: int) -> None:
        super().set_epoch(epoch)
        self.passes = 0

    def __iter__(self) -> Iterator[SampleKey]:
        high, low = np.random.SeedSequence([self.seed, self.epoch, self.passes]).generate_state(2)
        self.passes += 1
        generator = torch.Generator().manual_seed(int(high) << 32 | int(low))
        order = torch.randperm(len(self.dataset), generator=generator)
        order = order.repeat(math.ceil(self.total_size / len(order)))[:self.total_size]
        seeds = torch.randint(0, 2**62, (self.total_size,), generator=generator)
        mine = slice(self.rank, self.total_size, self.num_replicas)
        return map(SampleKey, order[mine].tolist(), seeds[mine].tolist())


def interleaved_order(sizes: Sequence[int]) -> list[int]:
    """Indices into the concatenation of sources of ``sizes``, ordered so that every prefix
    holds each source in proportion to its size: the k-th of a source's n samples sits at
    (k + 0.5) / n, all sources merged by that key (ties in source order). Shortened
    evaluation (``limit_val_batches``, ``debug=fast``) then still sees every source."""
    keys = np.concatenate([(np.arange(n) + 0.5) / n for n in sizes])
    sources = np.repeat(np.arange(len(sizes)), sizes)
    return np.lexsort((sources, keys)).tolist()  # the last key sorts first


class MultiSourceDataModule(pl.LightningDataModule):
    """Sources come from one or more manifests, each named in ``manifests`` (a provider such as
    the synthetic generator, or a path); one manifest may hold several sources.

    Training interleaves the sources with ``CombinedLoader(mode="max_size_cycle")``: every
    step draws from every source, each source's part of the batch set by ``shares`` (default:
    equal), and an epoch lasts until the longest source is exhausted. Validation and test
    concatenate the sources' splits in :func:`interleaved_order`, so any first batches hold
    every source in proportion to its size. Rows labelled for none of the active ``tasks``
    are not used (counted and logged); a source left empty is left out.

    The loaders bring their own samplers, which Lightning leaves in place: training draws
    through :class:`EpochSampler` (order and augmentation a function of ``seed`` and the
    epoch, so a resumed run repeats an uninterrupted one); under DDP each process takes its
    share of it, and evaluation splits the data without padding
    (``UnrepeatedDistributedSampler``), so every sample is evaluated exactly once and
    val/test metrics equal a one-process evaluation.

    ``balance_tasks``: set the sources' batch parts so every active task gets about the same
    number of labelled samples per step (each task's equal part is split between the sources
    labelling it, by their labelled counts), as BKNet sampled equally per task; ``shares``
    then multiply these parts. ``split_map``: per source, rename splits (``null`` drops
    one), e.g. ``{utkface: {train: test, val: test}}`` tests on a source that is not trained
    on. ``fold``: for sources with a ``fold`` column (Adience), fold k is test, fold k+1 val
    and the other folds train (cross-validation without re-preprocessing).
    """

    def __init__(
        self,
        manifests: Mapping[str, ManifestProvider | str | os.PathLike],
        tasks: Sequence[str] | Mapping[str, LabelSpec | Mapping],
        input_spec: InputSpec,
        batch_size: int = 64,
        eval_batch_size: int | None = None,
        shares: Mapping[str, float] | None = None,
        sources: Sequence[str] | None = None,
        augment: Sequence = (),
        num_workers: int = 0,
        pin_memory: bool = False,
        seed: int | None = None,
        balance_tasks: bool = False,
        split_map: Mapping[str, Mapping[str, str | None]] | None = None,
        fold: int | None = None,
    ) -> None:
        super().__init__()
        if not manifests:
            raise ValueError("data.manifests is empty: nothing to train on")
        if not tasks:
            raise ValueError("no tasks selected: pass e.g. tasks=[age,gender]")
        self.labels = resolve_labels(tasks)
        if batch_size < 1:
            raise ValueError(f"data.batch_size must be >= 1, got {batch_size}")
        if num_workers < 0:
            raise ValueError(f"data.num_workers must be >= 0, got {num_workers}")
        bad_shares = {s: v for s, v in (shares or {}).items() if v is None or v < 0}
        if bad_shares:
            raise ValueError(f"data.shares must be >= 0, got {bad_shares}")
        self.providers = {name: ManifestFile(m) if isinstance(m, str | os.PathLike) else m
                          for name, m in manifests.items()}
        self.tasks = list(tasks)
        self.input_spec = input_spec
        self.batch_size = batch_size
        self.eval_batch_size = eval_batch_size or batch_size
        self.shares = dict(shares or {})
        self.sources = list(sources) if sources is not None else None
        self.augment = list(augment)
        self.num_workers = num_workers
        self.pin_memory = pin_memory
        self.seed = seed
        self.balance_tasks = balance_tasks
        self.split_map = {s: dict(m) for s, m in (split_map or {}).items()}
        bad = {f"{s}.{k}": v for s, m in self.split_map.items() for k, v in m.items()
               if k not in SPLITS or v not in (*SPLITS, None)}
        if bad:
            raise ValueError(f"data.split_map maps splits to splits ({'/'.join(SPLITS)} or "
                             f"null), got {bad}")
        self.fold = fold
        self.datasets: dict[str, dict[str, ManifestDataset]] = {}  # split -> source -> dataset

    def prepare_data(self) -> None:
        for provider in self.providers.values():  # generation/caching happens here, once per node
            provider.prepare()

    def _read_sources(self) -> dict[str, tuple[pd.DataFrame, Path]]:
        """``{source: (rows, image root)}`` over every manifest."""
        found: dict[str, tuple[pd.DataFrame, Path]] = {}
        self._folded: list[str] = []  # sources that data.fold re-split
        self._absent: dict[str, Path] = {}  # task -> a manifest without its column
        for provider in self.providers.values():
            path = provider.prepare()
            frame = read_manifest(path, self.labels)
            self._absent.update({t: path for t in frame.attrs.get("absent_labels", [])})
            for source, rows in frame.groupby("source", sort=True):
                if source in found:
                    raise ManifestError(f"source {source!r} appears in two manifests "
                                        f"({found[source][1]} and {path.parent})")
                found[source] = (self._resplit(source, rows), path.parent)
        unknown = sorted(set(self.split_map) - set(found))
        if unknown:
            raise ValueError(f"data.split_map names unknown source(s) {unknown}; available: "
                             f"{sorted(found)}")
        if self.sources is not None:
            missing = sorted(set(self.sources) - set(found))
            if missing:
                raise ValueError(f"data.sources names unknown source(s) {missing}; "
                                 f"available: {sorted(found)}")
            found = {s: found[s] for s in self.sources}
        if self.fold is not None and not set(self._folded) & set(found):
            raise ValueError(f"data.fold={self.fold}, but no source has a fold column "
                             f"({sorted(found)}): Adience caches have one; a synthetic source "
                             f"gets one with data.manifests.synthetic.sources.<name>.folds=K")
        return found

    def _resplit(self, source: str, rows: pd.DataFrame) -> pd.DataFrame:
        """Apply ``fold`` (sources with a ``fold`` column) then ``split_map``."""
        rows = rows.copy()
        fold = pd.to_numeric(rows.get("fold", pd.Series(dtype=float)), errors="coerce")
        if self.fold is not None and fold.notna().any():  # other sources keep their splits
            self._folded.append(source)
            count = int(fold.max()) + 1
            if not 0 <= self.fold < count:
                raise ValueError(f"data.fold={self.fold}, but source {source} has folds "
                                 f"0..{count - 1}")
            rows["split"] = np.select([fold == self.fold, fold == (self.fold + 1) % count],
                                      ["test", "val"], "train")
        mapping = self.split_map.get(source)
        if mapping:
            rows["split"] = rows["split"].map(lambda s: mapping.get(s, s))
            rows = rows[rows["split"].notna()]
        return rows

    def setup(self, stage: str | None = None) -> None:
        if self.datasets:
            return
        train_tf = build_transform(self.input_spec, self.augment, seed=self.seed, train=True)
        eval_tf = build_transform(self.input_spec, train=False)
        self.datasets = {split: {} for split in SPLITS}
        for source, (rows, root) in self._read_sources().items():
            useful = rows[list(self.tasks)].notna().any(axis=1)
            if not useful.all():
                log.info("source %s: %d of %d rows have no label for tasks %s and are not used",
                         source, int((~useful).sum()), len(rows), self.tasks)
            for split in SPLITS:
                part = rows[useful & (rows["split"] == split)]
                if len(part):
                    self.datasets[split][source] = ManifestDataset(
                        part, root, self.labels, self.input_spec.channels,
                        train_tf if split == "train" else eval_tf, name=f"{source}/{split}")
        train = self.datasets["train"]
        labelled = Counter()
        for ds in train.values():
            labelled.update(ds.label_counts())
        for task in self.tasks:
            if not labelled[task]:
                why = (f": {self._absent[task]} has no {task!r} column, declare the task's "
                       f"column in the source's reader or pick a data config that labels it"
                       if task in self._absent else "")
                raise ValueError(f"task {task!r} has no labelled training sample in the "
                                 f"selected sources {sorted(train) or '(none)'}{why}")
        log.info("train sources and batch shares: %s", self.train_batch_sizes())

    def task_balanced_weights(self) -> dict[str, float]:
        """Source weights (sum 1) that make every task's expected number of labelled samples
        per step as equal as possible: least squares ``P.T @ w = 1`` with ``w >= 0``, where
        ``P[s, t]`` is the fraction of source s's rows labelled for task t. A source whose
        labels are redundant for that balance keeps a small floor rather than vanishing."""
        sources = sorted(self.datasets["train"])
        fraction = np.array([[self.datasets["train"][s].label_counts()[t] /
                              len(self.datasets["train"][s]) for t in self.tasks]
                             for s in sources])
        weights, _ = nnls(fraction.T, np.ones(len(self.tasks)))
        weights = np.maximum(weights / weights.sum(), MIN_BALANCED_SHARE)
        return dict(zip(sources, (weights / weights.sum()).tolist()))

    def train_batch_sizes(self) -> dict[str, int]:
        """Each source's part of a training batch, from ``shares`` (default 1 each), times the
        task-balanced weights when ``balance_tasks``."""
        sources = sorted(self.datasets["train"])
        base = self.task_balanced_weights() if self.balance_tasks else dict.fromkeys(sources, 1.0)
        weights = {s: base[s] * float(self.shares.get(s, 1.0)) for s in sources}
        total = sum(weights.values())
        if total <= 0:
            raise ValueError(f"data.shares give every training source zero weight: {weights}")
        return {s: max(1, round(self.batch_size * w / total)) for s, w in weights.items() if w > 0}

    def _replicas(self) -> dict[str, int]:
        """``num_replicas`` and ``rank`` of this process (1 and 0 outside a distributed run)."""
        trainer = self.trainer
        kwargs = trainer.distributed_sampler_kwargs if trainer is not None else None
        return dict(kwargs) if kwargs else {"num_replicas": 1, "rank": 0}

    def _loader(self, dataset, batch_size: int, sampler, drop_last: bool) -> DataLoader:
        return DataLoader(
            dataset,
            batch_size=batch_size,
            sampler=sampler,
            drop_last=drop_last,
            num_workers=self.num_workers,
            persistent_workers=self.num_workers > 0,
            pin_memory=self.pin_memory,
        )

    def train_dataloader(self) -> CombinedLoader:
        seed = self.seed if self.seed is not None else int(os.environ.get("PL_GLOBAL_SEED", 0))
        loaders = {}
        for source, size in self.train_batch_sizes().items():
            sampler = EpochSampler(self.datasets["train"][source], seed=seed, **self._replicas())
            # drop_last: no 1-sample batch for BatchNorm
            loaders[source] = self._loader(sampler.dataset, size, sampler,
                                           drop_last=len(sampler) > size)
        return CombinedLoader(loaders, mode="max_size_cycle")

    def _eval_loader(self, split: str) -> DataLoader | list:
        parts = list(self.datasets[split].values())
        if not parts:
            log.warning("no %s data for tasks %s: %s is skipped", split, self.tasks, split)
            return []
        dataset = Subset(ConcatDataset(parts), interleaved_order([len(p) for p in parts]))
        replicas = self._replicas()
        sampler = None  # in interleaved order
        if replicas["num_replicas"] > 1:
            if len(dataset) < replicas["num_replicas"]:  # DDP needs >= 1 batch per process
                raise ValueError(f"the {split} split has {len(dataset)} samples for "
                                 f"{replicas['num_replicas']} processes: every process needs "
                                 f"one at least; train on fewer devices")
            sampler = UnrepeatedDistributedSampler(dataset, shuffle=False, **replicas)
        return self._loader(dataset, self.eval_batch_size, sampler, drop_last=False)

    def val_dataloader(self) -> DataLoader | list:
        return self._eval_loader("val")

    def test_dataloader(self) -> DataLoader | list:
        return self._eval_loader("test")
