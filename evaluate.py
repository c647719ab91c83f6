"""Evaluate a trained run: ``python evaluate.py run=<run folder> [split=test] [data=<name>]``
(same as ``python -m mtlface.evaluate``; ``--help`` lists every option)."""

import sys

from mtlface.evaluate.cli import main

if __name__ == "__main__":
    sys.exit(main())
