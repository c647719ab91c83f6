"""``cfg -> instantiate -> Trainer.fit/test -> results.json``: the body of ``python train.py``."""

from __future__ import annotations

import json
import logging
import math
import shutil
import sys
import traceback
import warnings
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
import torch
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from mtlface.config import check_override_types, is_group_override
from mtlface.errors import ConfigError, UserError, report
from mtlface.factory import build_datamodule, build_model
from mtlface.memory import check_fits
from mtlface.resume import BatchSeed, keep_csv_history, resume_config
from mtlface.runs import RunFolder, best_checkpoint
from mtlface.staged import init_from_checkpoint, staged_callbacks

log = logging.getLogger(__name__)
# Warnings a training run silences, inside the run only (no import-time filters): Lightning 2.6
# trips over its own torch.utils._pytree deprecation on every fit; and it advises sync_dist=True
# for epoch values that torchmetrics has already reduced over the processes (identical on
# every rank), where the advice does not apply.
QUIET = (r".*isinstance\(treespec, LeafSpec\)",
         r"It is recommended to use `self.log\('(train|val|test)/")


def hydra_job(cfg: DictConfig) -> float | None:
    """The body of ``python train.py``'s Hydra task: the objective for a sweeper. A single run
    stops on a user mistake with one ``error:`` line (exit 2 for config, 1 otherwise); a sweep
    job records its failure in ``failed.json`` and returns None so the sweep goes on."""
    try:
        _check_overrides(cfg)
        value = objective(run(cfg), cfg.objective.metric)
    except Exception as error:
        if HydraConfig.get().mode != RunMode.MULTIRUN:
            sys.exit(report(error))  # re-raises a bug, with its traceback
        _record_failure(error)
        return None
    # None, not NaN: optuna 2.10 rejects a NaN value and hydra-optuna-sweeper 1.3 then re-tells
    # the trial as FAIL *with* that value, which raises and ends the sweep; for None its
    # float() check fails first, so the trial is marked FAIL and the sweep goes on.
    return None if math.isnan(value) else value


def _check_overrides(cfg: DictConfig) -> None:
    """Values of the wrong type on the command line, checked against the same config composed
    without them (the same group choices), before any work."""
    from hydra import compose

    overrides = list(HydraConfig.get().overrides.task)
    values = [o for o in overrides if not is_group_override(o.split("=", 1)[0].lstrip("+~"))]
    if not values:
        return
    groups = [o for o in overrides if o not in values]
    check_override_types(values, compose(config_name=HydraConfig.get().job.config_name,
                                         overrides=groups))


def _record_failure(error: Exception) -> None:
    """Log the job's error and write ``<job dir>/failed.json`` (type, message, traceback),
    which mtlface.analysis reads."""
    job = RunFolder(HydraConfig.get().runtime.output_dir)
    job.path.mkdir(parents=True, exist_ok=True)
    cause = error
    while cause.__cause__ is not None:  # e.g. the ValueError inside Hydra's InstantiationException
        cause = cause.__cause__
    record = {
        "error": type(error).__name__,
        "message": str(error),
        "cause": f"{type(cause).__name__}: {cause}",
        "traceback": traceback.format_exc(),
        "overrides": list(HydraConfig.get().overrides.task),
    }
    job.failed.write_text(json.dumps(record, indent=2) + "\n")
    log.error("job %s failed (%s); traceback in %s, the sweep goes on",
              HydraConfig.get().job.num, record["cause"], job.failed)


def build_trainer(cfg: DictConfig) -> pl.Trainer:
    # A callback set to null (debug=fast's model_checkpoint) is switched off.
    callbacks = [instantiate(c) for c in (cfg.get("callbacks") or {}).values() if c is not None]
    callbacks += staged_callbacks(cfg.get("freeze_trunk_epochs"))
    callbacks.append(BatchSeed(cfg.seed))
    loggers = [instantiate(c) for c in (cfg.get("logger") or {}).values() if c is not None]
    if str(cfg.trainer.get("accelerator")) in ("gpu", "cuda") and not torch.cuda.is_available():
        raise ConfigError(f"trainer.accelerator={cfg.trainer.accelerator}, but this machine has "
                          f"no CUDA GPU: pass trainer.accelerator=cpu (or auto)")
    return instantiate(cfg.trainer, callbacks=callbacks, logger=loggers or False)


def _plain(metrics: dict[str, Any]) -> dict[str, float]:
    return {k: float(v) for k, v in sorted(metrics.items())}


def run(cfg: DictConfig) -> dict[str, float]:
    """Train, then validate and test the best checkpoint; write ``results.json`` (keys
    ``<stage>/<task>/<metric>``) into the run folder and return its contents.

    ``resume=<run folder>`` continues that run from its ``last.ckpt`` with its saved
    config (see :func:`resume_config`), writing into the same folder."""
    with warnings.catch_warnings():
        for message in QUIET:
            warnings.filterwarnings("ignore", message=message)
        return _run(cfg)


def _run(cfg: DictConfig) -> dict[str, float]:
    ckpt_path = None
    if cfg.get("resume"):
        overrides = HydraConfig.get().overrides.task if HydraConfig.initialized() else []
        cfg, ckpt_path = resume_config(cfg, overrides)
    _check_required(cfg)
    if cfg.get("calibrate"):  # a bad conformal.* value stops the run now, not after training
        from mtlface.calibration.fit import check_conformal_config
        check_conformal_config(cfg)
    pl.seed_everything(cfg.seed, workers=True)
    output_dir = Path(cfg.paths.output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    model, input_spec = build_model(cfg)
    if cfg.get("init_from") and ckpt_path is None:  # staged training: trunk + shared heads
        try:
            start = best_checkpoint(cfg.init_from)
        except (FileNotFoundError, ValueError) as exc:
            raise UserError(f"init_from={cfg.init_from}: {exc}; pass a run folder "
                            f"(outputs/runs/<date>_<time>) or a .ckpt file") from None
        init_from_checkpoint(model, start)
    datamodule = build_datamodule(cfg, input_spec)
    trainer = build_trainer(cfg)
    _check_launch(trainer)
    if cfg.get("memory_check", True) and ckpt_path is None:
        check_fits(model, (input_spec.channels, input_spec.size, input_spec.size),
                   cfg.data.batch_size,
                   cfg.trainer.get("accumulate_grad_batches") or 1, trainer.strategy.root_device)
    with warnings.catch_warnings():
        if ckpt_path is not None:  # resuming into the run's own folders is the point
            warnings.filterwarnings("ignore", message="Checkpoint directory .* is not empty")
            keep_csv_history(trainer, ckpt_path)
        log_config(trainer, cfg)  # after the history: a CSV logger's first use empties its file
        trainer.fit(model, datamodule=datamodule, ckpt_path=ckpt_path)

    best = trainer.checkpoint_callback.best_model_path if trainer.checkpoint_callback else ""
    best = best or None  # none under fast_dev_run: evaluate the weights in memory
    results = _plain(trainer.validate(model, datamodule=datamodule, ckpt_path=best,
                                      verbose=False)[0]) if trainer.num_val_batches else {}
    if cfg.get("test", True):
        results |= _plain(trainer.test(model, datamodule=datamodule, ckpt_path=best,
                                       verbose=False)[0])
    # "<stage>/<task>/labelled": 0 for a task that stage never evaluated (a run table shows it)
    results = _plain(results | model.unseen_task_results())
    if trainer.is_global_zero and cfg.get("calibrate"):
        from mtlface.calibration.fit import calibrate_after_training
        calibrate_after_training(cfg, model, input_spec, best, output_dir)
    if trainer.is_global_zero:  # under DDP every process holds the same (reduced) results
        log.info("results written to %s", RunFolder(output_dir).write_results(results))
        _print_table(results)
    if not cfg.get("keep_output", True):
        _discard(output_dir)
    return results


def log_config(trainer: pl.Trainer, cfg: DictConfig) -> None:
    """The resolved run config reaches every logger's hyper-parameters (TensorBoard's hparams
    tab, the CSV logger's hparams.yaml), flattened by the loggers. Not the checkpoint's
    hparams: weights_only loading reads no objects, and the run folder holds the config."""
    if not trainer.loggers:
        return
    config = {key: _resolved(cfg, key) for key in cfg if key != "hydra"}
    for logger in trainer.loggers:
        logger.log_hyperparams(config)


def _resolved(cfg: DictConfig, key: str) -> Any:
    """``cfg[key]`` as plain values, resolved where it can be (an interpolation that cannot be
    resolved outside a Hydra job is kept as written)."""
    try:
        node = OmegaConf.select(cfg, key, throw_on_missing=False)
        return OmegaConf.to_container(node, resolve=True) if OmegaConf.is_config(node) else node
    except Exception:  # noqa: BLE001
        return OmegaConf.to_container(cfg, resolve=False)[key]


def _discard(output_dir: Path) -> None:
    """``keep_output=false`` (debug=fast): a single run leaves no folder; a sweep job keeps its
    (checkpoint-free) folder for the sweep summary."""
    if HydraConfig.initialized() and HydraConfig.get().mode == RunMode.MULTIRUN:
        return
    shutil.rmtree(output_dir, ignore_errors=True)
    log.info("debug run: %s removed (keep_output=false)", output_dir)


def _check_required(cfg: DictConfig) -> None:
    """Stop before any work when a ``???`` value is unset, or a key a recipe lists under
    ``required`` (e.g. stage 2's ``init_from``) is null: ``cfg.get`` would read it as None and
    the run would silently train something else."""
    missing = _missing_keys(cfg)
    missing += [k for k in cfg.get("required") or () if OmegaConf.select(cfg, k) is None]
    if missing:
        raise ValueError(f"required value(s) not set: {', '.join(sorted(missing))} (pass e.g. "
                         f"{sorted(missing)[0]}=<value> on the command line)")


def _missing_keys(node: Any, prefix: str = "") -> list[str]:
    """Dotted keys holding a literal ``???``, from the unresolved container (so the hydra
    node's own unset run-time values are never resolved). Not ``OmegaConf.missing_keys``: it
    raises on an interpolation to a ``???`` (stage 2's ``init_from: ${required.init_from}``)
    before the clear message below can be given."""
    if isinstance(node, DictConfig):
        node = OmegaConf.to_container(node, resolve=False)
    if not isinstance(node, dict):
        return []
    found = []
    for key, value in node.items():
        if value == "???":
            found.append(f"{prefix}{key}")
        elif key != "hydra" or prefix:
            found += _missing_keys(value, f"{prefix}{key}.")
    return found


def _check_launch(trainer: pl.Trainer) -> None:
    """Lightning starts the other DDP processes by re-running the command line, which inside a
    multirun job would start the whole sweep again: refuse that one combination clearly."""
    environment = getattr(trainer.strategy, "cluster_environment", None)
    if (trainer.world_size > 1 and environment is not None
            and not environment.creates_processes_externally and HydraConfig.initialized()
            and HydraConfig.get().mode == RunMode.MULTIRUN):
        raise ValueError(f"a sweep (-m) job cannot start its own {trainer.world_size} DDP "
                         f"processes: sweep with hydra/launcher=slurm (srun starts them), or "
                         f"run DDP jobs one at a time without -m")


def objective(results: dict[str, float], key: str) -> float:
    """The value a sweeper optimises; NaN when the run produced none (e.g. no val data)."""
    return results.get(key, math.nan)


def _print_table(results: dict[str, float]) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title="results")
    for col in ("key", "value"):
        table.add_column(col)
    for key, value in results.items():
        table.add_row(key, f"{value:.4f}")
    Console().print(table)
