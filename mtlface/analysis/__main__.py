"""``python -m mtlface.analysis SWEEP [SWEEP ...] [--over seed,data.fold] [--metrics a,b]``:
write summary.csv / summary.md into each sweep folder and print the markdown."""

from __future__ import annotations

import argparse
import logging
import sys

from mtlface.analysis.summary import REPEAT_AXES, write_summary
from mtlface.config import key_values_as_flags


def _names(text: str) -> list[str]:
    return [name for name in text.split(",") if name]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m mtlface.analysis", description=__doc__)
    parser.add_argument("sweeps", nargs="+", help="multirun folders, e.g. outputs/multiruns/<x>")
    parser.add_argument("--over", type=_names, default=list(REPEAT_AXES),
                        help="repeat axes a row averages over (default: %(default)s)")
    parser.add_argument("--metrics", type=_names, default=None,
                        help="summary.md columns (default: the objective and every test "
                             "metric but the losses); summary.csv has every metric")
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parser.parse_args(key_values_as_flags(argv, parser))
    logging.basicConfig(level=logging.INFO, format="%(levelname)s: %(message)s")
    for sweep in args.sweeps:
        try:
            path = write_summary(sweep, over=args.over, metrics=args.metrics)
        except (OSError, ValueError) as error:
            parser.exit(1, f"error: {error}\n")
        print(path.read_text())
        print(f"(written: {path} and {path.with_suffix('.csv')})")


if __name__ == "__main__":
    main()
