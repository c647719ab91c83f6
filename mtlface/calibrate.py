"""Fit a trained run's calibration on its validation split and store it with the run.

    python -m mtlface.calibrate run=<run folder> [level=0.9] [groupwise=gender|race]
        [checkpoint=<file.ckpt>] [batch_size=256] [device=cpu] [--debug]

Writes ``<run>/calibration.json``: one temperature per task with class probabilities (fitted
by minimising the validation NLL; the Predictor, the demo, exports and evaluation divide the
logits by it) and the age interval: ``[age - q, age + q]`` holds the true age of ``level`` of
faces like the validation ones (split-conformal). ``groupwise=gender`` fits one ``q`` per
predicted gender (Mondrian), so the level holds within each group. ``train.py`` does the same
after training (``calibrate: true``, ``conformal.level``, ``conformal.groupwise``).

A mistake ends with one ``error:`` line: exit 2 for an option (a level outside (0, 1), an
unknown key), 1 for anything else (a missing run, no validation split, too few validation
rows for the level); ``--debug`` shows the traceback.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Sequence

from mtlface.config import parse_key_values
from mtlface.errors import ConfigError, debug_requested

USAGE = ("usage: python -m mtlface.calibrate run=<run folder> [level=0.9] "
         "[groupwise=gender|race] [checkpoint=<file.ckpt>] [batch_size=256] [device=cpu]")
KEYS = {"run": "run", "level": "level", "conformal.level": "level", "groupwise": "groupwise",
        "conformal.groupwise": "groupwise", "checkpoint": "checkpoint",
        "batch_size": "batch_size", "device": "device"}


def parse_args(argv: Sequence[str]) -> dict[str, str]:
    args = parse_key_values(argv, KEYS, USAGE)
    if "run" not in args:
        raise ConfigError(f"run=... is required; {USAGE}")
    if "batch_size" in args and not (args["batch_size"].isdigit() and int(args["batch_size"])):
        raise ConfigError(f"batch_size={args['batch_size']}: must be an integer >= 1")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    debug_requested(argv)
    if any(a in ("-h", "--help", "help") for a in argv):
        print(__doc__.strip())
        return 0
    logging.basicConfig(level=logging.INFO, format="[%(levelname)s] %(message)s")
    from mtlface.predict.errors import exit_code_of

    return exit_code_of(lambda: _calibrate(parse_args(argv)))


def _calibrate(args: dict[str, str]) -> int:
    from mtlface.calibration.conformal import check_level
    from mtlface.calibration.fit import calibrate_run
    from mtlface.predict.backends import check_device

    level = check_level(args.get("level", "0.9"))
    device = args.get("device", "cpu")
    check_device(device)
    calibration, path = calibrate_run(args["run"], level, args.get("groupwise"),
                                      args.get("checkpoint"), int(args.get("batch_size", 256)),
                                      device)
    for task, fit in calibration.report.get("fit", {}).items():
        print(f"{task}: temperature {fit['temperature']:.3f}, val NLL {fit['nll_before']:.4f} "
              f"-> {fit['nll_after']:.4f} (n={fit['count']})")
    if calibration.interval:
        i = calibration.interval
        by = (f"; by predicted {i.groupwise}: " + ", ".join(f"{g} +-{q:.1f}" for g, q in
                                                            i.q_by_group.items())
              if i.groupwise else "")
        print(f"{i.task}: {i.level:.0%} interval = predicted age +-{i.q:.1f} years "
              f"(n={i.count}){by}")
    print(f"calibration written to {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
