"""Every benchmark part into one markdown table: ``mtlface.bench.cli`` (see its docstring).

    .venv/bin/python bench/run.py [--quick] [--parts overhead,pipeline,...] [--out bench/results.md]
"""

import sys

from mtlface.bench.cli import main

if __name__ == "__main__":
    sys.exit(main())
