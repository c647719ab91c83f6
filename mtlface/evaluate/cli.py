"""Evaluate a trained run on any cached source and split: metrics, group accuracy, plots.

    python -m mtlface.evaluate run=<run folder or .ckpt> [split=test|val|train]
        [data=<conf/data option> [data.<key>=<value> ...] | manifest=<manifest.csv or folder>]
        [sources=[a,b]] [out=<folder>] [name=<name>] [batch_size=256] [num_workers=0]
        [device=cpu|cuda|auto] [ece_bins=15] [min_group=10] [plots=true] [--debug]

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
the table everything is computed from), ``report.md`` (printed) and PNG plots. A calibrated
run (``<run>/calibration.json``) is evaluated calibrated: ECE and NLL before and after
(``ece_uncal``, ``nll_uncal``), both reliability diagrams, and the age interval's coverage and
width overall and by source, gender, race and age band (``coverage.csv``, with age MAE and
accuracy; a group more than 5 points under the level is flagged). The report's first lines
name the worst age band and the worst group.

A mistake ends with one ``error:`` line: exit 2 for an option (unknown, missing, out of range),
1 for anything else (a missing run, checkpoint, dataset or GPU, an unwritable ``out``); the
options, the run and the output folder are checked before any work. ``--debug`` (or
``HYDRA_FULL_ERROR=1``) shows the traceback.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Sequence
from dataclasses import fields

from omegaconf import DictConfig

from mtlface.errors import UserError, debug_requested

DATA_OVERRIDE_PREFIXES = ("data.",)


USAGE = "data.<key>=<value> overrides the data config; see --help"


def parse_args(argv: Sequence[str]) -> DictConfig:
    """``key=value`` options over the defaults (:func:`mtlface.config.parse_key_values`; YAML
    values for lists and numbers: ``sources=[a,b]``); arguments that start with ``data.`` are
    overrides of the data config."""
    from mtlface.config import parse_key_values, structured_options  # late: --help is fast
    from mtlface.evaluate.run import EvalConfig

    options = [a for a in argv if not a.startswith(DATA_OVERRIDE_PREFIXES)]
    overrides = [a for a in argv if a.startswith(DATA_OVERRIDE_PREFIXES)]
    keys = [f.name for f in fields(EvalConfig) if f.name != "data_overrides"]
    cfg = structured_options(EvalConfig, parse_key_values(options, keys, USAGE))
    cfg.data_overrides = overrides
    return cfg


def main(argv: Sequence[str] | None = None) -> int:
    """Exit 0; on a user mistake one ``error:`` line and exit 2 (an option) or 1 (anything
    else: a missing run, dataset or GPU, an unwritable out=); ``--debug`` for the traceback."""
    argv = sys.argv[1:] if argv is None else list(argv)
    debug_requested(argv)  # removes --debug
    if {"-h", "--help", "help"} & set(argv):
        print(__doc__.strip())
        return 0
    logging.basicConfig(level=logging.INFO, format="[%(levelname)s] %(message)s")
    from mtlface.predict.errors import exit_code_of  # late: --help stays fast

    return exit_code_of(lambda: _evaluate(argv))


def _evaluate(argv: list[str]) -> int:
    from mtlface.data.dataset import CorruptImageError
    from mtlface.evaluate.run import evaluate

    try:
        result = evaluate(parse_args(argv))
    except CorruptImageError as exc:  # a data problem, not a bug: one line
        # A DataLoader worker's copy carries the worker's traceback above the message.
        message = str(exc).strip().splitlines()[-1].removeprefix(
            f"{CorruptImageError.__module__}.{CorruptImageError.__name__}: ")
        raise UserError(f"{message}; re-run preprocessing, or remove the image from the "
                        f"manifest") from exc
    print(result.report)
    print(f"evaluation written to {result.folder}")
    return 0
