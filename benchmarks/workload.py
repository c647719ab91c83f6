"""The model and the data the parts measure, built from the same configs as ``train.py``, and
the plain PyTorch training step that the framework is compared with."""

from __future__ import annotations

import itertools
from collections.abc import Iterator, Sequence
from pathlib import Path

import torch
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from hydra.utils import instantiate
from omegaconf import DictConfig

from mtlface.config import CONF_DIR
from mtlface.module import Batch, MTLFaceModule, merge_source_batches
from mtlface.train import build_model

ROOT = Path(__file__).resolve().parent.parent  # the repository: benchmarks run from a checkout
SourceBatches = dict[str, Batch]  # what CombinedLoader yields: {source: batch}

# Small synthetic sources for --quick, generated in seconds: the test suite's TINY_SOURCES
# (tests/conftest.py), so a test session generates them once for all its tests.
QUICK_DATA = (
    "data.manifests.synthetic.sources.imdb_like.splits={train:480,val:160,test:160}",
    "data.manifests.synthetic.sources.utk_like.splits={train:320,val:160,test:160}",
    "data.manifests.synthetic.sources.genki_like.splits={train:320,val:160,test:160}",
    "data.manifests.synthetic.sources.fer_like.splits={train:480,val:160,test:160}",
)


def train_config(overrides: Sequence[str] = (), output_dir: str | Path = ROOT / "outputs" / "bench"
                 ) -> DictConfig:
    """The config ``python train.py <overrides>`` composes, outside ``@hydra.main`` (the
    paths that would come from Hydra's runtime are set explicitly)."""
    if GlobalHydra.instance().is_initialized():
        GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        return compose("train", overrides=[f"paths.root_dir={ROOT}",
                                           f"paths.output_dir={output_dir}", *overrides])


def build(cfg: DictConfig) -> MTLFaceModule:
    torch.manual_seed(cfg.seed)
    model, _ = build_model(cfg)
    return model


def datamodule(cfg: DictConfig, **overrides):
    """``cfg.data``'s MultiSourceDataModule for the config's tasks and backbone, set up."""
    spec = instantiate(cfg.backbone).input_spec
    dm = instantiate(cfg.data, tasks=list(cfg.tasks), input_spec=spec, **overrides)
    dm.prepare_data()
    dm.setup("fit")
    return dm


def memory_batches(cfg: DictConfig, steps: int) -> list[SourceBatches]:
    """``steps`` training batches of ``cfg.data`` (decoded and augmented once, in this
    process), as the train loader yields them."""
    loader = datamodule(cfg, num_workers=0).train_dataloader()  # yields (batch, idx, loader idx)
    return [batch for batch, *_ in itertools.islice(itertools.cycle(loader), steps)]


def n_images(batches: Sequence[SourceBatches]) -> int:
    return sum(len(b["image"]) for step in batches for b in step.values())


class Replay:
    """Batches held in memory, served as a sized iterable (what Lightning's fit takes)."""

    def __init__(self, batches: Sequence[SourceBatches]) -> None:
        self.batches = batches

    def __iter__(self) -> Iterator[SourceBatches]:
        return iter(self.batches)

    def __len__(self) -> int:
        return len(self.batches)


def bare_step(model: MTLFaceModule, batch: SourceBatches, optimizer: torch.optim.Optimizer
              ) -> None:
    """One training step in plain PyTorch, the same maths as ``MTLFaceModule.training_step``
    plus Lightning's backward and optimiser step: forward, masked losses, weighting (losses of
    labelled tasks only, exact zeros for the others), backward, step. No metrics, no logging."""
    merged = merge_source_batches(batch)
    targets = merged["targets"]
    features = model.backbone(merged["image"])
    total = features.new_zeros(())
    losses = {}
    for name, task in model.tasks.items():
        out = task(features)
        loss = task.loss_weight * task.loss(out, targets[name])
        if task.labelled(targets[name]).any():
            losses[name] = loss
        else:
            total = total + loss
    if losses:
        total = total + model.weighting(losses, features).total
    optimizer.zero_grad()
    total.backward()
    optimizer.step()


def bare_epoch(model: MTLFaceModule, batches: Sequence[SourceBatches]) -> None:
    """An epoch of :func:`bare_step` with a fresh optimiser, as each ``Trainer.fit`` builds."""
    model.train()
    optimizer = model.configure_optimizers()
    if isinstance(optimizer, dict):
        optimizer = optimizer["optimizer"]
    for batch in batches:
        bare_step(model, batch, optimizer)
