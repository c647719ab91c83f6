"""Evaluate a trained run on any cached source and split: metrics, group accuracy, plots.

    python -m mtlface.evaluate run=<run folder or .ckpt> [split=test|val|train]
        [data=<conf/data option> [data.<key>=<value> ...] | manifest=<manifest.csv or folder>]
        [sources=[a,b]] [out=<folder>] [name=<name>] [batch_size=256] [num_workers=0]
        [device=cpu|cuda|auto] [ece_bins=15] [min_group=10] [plots=true]

The model is rebuilt from ``<run>/.hydra/config.yaml`` with the weights of its best checkpoint
(or of the ``.ckpt`` given). Data: by default the run's own data config; ``data=<name>``
composes ``conf/data/<name>.yaml`` as ``train.py data=<name>`` would (``data.fold=2`` etc.
apply to it, or to the run's data config); ``manifest=`` evaluates one manifest file. Every
source of the split is evaluated unless ``sources=`` picks some; images get the backbone's
evaluation transform.

Writes ``<run>/eval/<source or data>-<split>/`` (or ``out=``): ``metrics.json`` and
``metrics.csv`` (keys ``<split>/<task>/<metric>`` and ``<split>/<source>/<task>/<metric>``:
count, acc, f1, ece; age also acc_1off, mae; ``<split>/<task>/acc_gap_<gender|race>``),
``groups.csv`` (accuracy per gender and race group), ``predictions.csv`` (one row per image:
the table everything is computed from), ``report.md`` (printed) and PNG plots.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Sequence
from dataclasses import fields

from omegaconf import DictConfig, OmegaConf

DATA_OVERRIDE_PREFIXES = ("data.",)


def parse_args(argv: Sequence[str]) -> DictConfig:
    """``key=value`` options (YAML values: ``sources=[a,b]``) over the defaults; arguments that
    start with ``data.`` are overrides of the data config."""
    from mtlface.evaluate.run import EvalConfig

    options = [a for a in argv if not a.startswith(DATA_OVERRIDE_PREFIXES)]
    overrides = [a for a in argv if a.startswith(DATA_OVERRIDE_PREFIXES)]
    bad = [a for a in options if "=" not in a]
    if bad:
        raise ValueError(f"arguments are key=value, got {bad}; see --help")
    valid = [f.name for f in fields(EvalConfig) if f.name != "data_overrides"]
    unknown = [a for a in options if a.split("=", 1)[0] not in valid]
    if unknown:
        raise ValueError(f"unknown option(s) {unknown}; valid: {', '.join(valid)}, data.<key>")
    cfg = OmegaConf.merge(OmegaConf.structured(EvalConfig), OmegaConf.from_cli(options))
    cfg.data_overrides = overrides
    missing = sorted(OmegaConf.missing_keys(cfg))
    if missing:
        raise ValueError(f"missing option(s): {', '.join(f'{k}=...' for k in missing)}")
    return cfg


def main(argv: Sequence[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    if {"-h", "--help", "help"} & set(argv):
        print(__doc__.strip())
        return 0
    logging.basicConfig(level=logging.INFO, format="[%(levelname)s] %(message)s")
    # Late: --help stays fast.
    from hydra.errors import HydraException
    from omegaconf.errors import OmegaConfBaseException

    from mtlface.data.dataset import CorruptImageError
    from mtlface.evaluate.run import evaluate
    from mtlface.predict.errors import PredictError

    try:
        result = evaluate(parse_args(argv))
    except (PredictError, ValueError, FileNotFoundError, CorruptImageError,
            OmegaConfBaseException, HydraException) as exc:
        # Ours: one line, or (a missing dataset) the command that makes it; OmegaConf's add
        # "full_key: ..." lines that say nothing more.
        message = str(exc).strip()
        if isinstance(exc, OmegaConfBaseException):
            message = message.splitlines()[0]
        print(f"error: {message}", file=sys.stderr)
        return 1
    print(result.report)
    print(f"evaluation written to {result.folder}")
    return 0
