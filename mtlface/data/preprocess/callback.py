"""Hydra callback: merge a sharded preprocessing sweep when its last job is done, e.g.
``python preprocess.py -m shard=0/4,1/4,2/4,3/4 hydra/launcher=slurm`` (conf/preprocess.yaml)."""

from __future__ import annotations

import logging
from typing import Any

from hydra.core.hydra_config import HydraConfig
from hydra.experimental.callback import Callback
from omegaconf import DictConfig

log = logging.getLogger(__name__)


class MergeShards(Callback):
    """After a multirun over ``shard=i/N``, merge the finished shards into the cache's
    ``manifest.csv`` (a job that finishes last on the machine holding every shard merges on
    its own; jobs on other machines leave it to this). A merge that cannot be done is
    logged with the command that retries it: the jobs' work is kept either way."""

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        from mtlface.data.preprocess.cli import build_stage, merge

        if not any(o.startswith("shard=") for o in config.hydra.overrides.task):
            return
        if not HydraConfig.initialized():  # ${hydra:runtime.cwd} in the paths resolves now
            HydraConfig.instance().set_config(config)
        try:
            layout = build_stage(config).layout
            if layout.manifest.is_file():
                log.info("shards merged: %s", layout.manifest)
                return
            summary = merge(layout)
        except (OSError, ValueError) as error:
            log.error("shards not merged (%s); when every shard is done: python preprocess.py "
                      "<the same settings> merge=true", error)
            return
        log.info("merged the shards: %d crops in %s", summary.cropped, summary.folder)
