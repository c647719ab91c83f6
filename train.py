"""Train a multi-task face model: ``python train.py [overrides]`` (see README / --help)."""

import json
import logging
import math
import sys
import traceback
from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig

from mtlface.config import unknown_group_choices

log = logging.getLogger("train")
FAILED_NAME = "failed.json"  # mtlface.analysis reads it: a sweep job that raised


@hydra.main(version_base="1.3", config_path="conf", config_name="train")
def main(cfg: DictConfig) -> float | None:
    from mtlface.train import objective, run  # imported late: --help stays fast

    if HydraConfig.get().mode != RunMode.MULTIRUN:
        return objective(run(cfg), cfg.objective)  # a single run fails loudly, exit code 1
    try:
        value = objective(run(cfg), cfg.objective)
    except Exception as error:  # one failed trial must not end the sweep
        _record_failure(error)
        return None
    # None, not NaN: optuna 2.10 rejects a NaN value and hydra-optuna-sweeper 1.3 then re-tells
    # the trial as FAIL *with* that value, which raises and ends the sweep; for None its
    # float() check fails first, so the trial is marked FAIL and the sweep goes on.
    return None if math.isnan(value) else value


def _record_failure(error: Exception) -> None:
    """Log the job's error and write ``<job dir>/failed.json`` (type, message, traceback)."""
    job_dir = Path(HydraConfig.get().runtime.output_dir)
    job_dir.mkdir(parents=True, exist_ok=True)
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
    (job_dir / FAILED_NAME).write_text(json.dumps(record, indent=2) + "\n")
    log.error("job %s failed (%s); traceback in %s, the sweep goes on",
              HydraConfig.get().job.num, record["cause"], job_dir / FAILED_NAME)


if __name__ == "__main__":
    if errors := unknown_group_choices(sys.argv[1:]):
        sys.exit("error: " + "\nerror: ".join(errors))
    main()
