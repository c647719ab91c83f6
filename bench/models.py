"""Size and speed of every backbone config: ``mtlface.bench.models`` (see its docstring).

    .venv/bin/python bench/models.py [--threads 2] [--repeats 10] [--warmup 3]
"""

import sys

from mtlface.bench.models import main

if __name__ == "__main__":
    sys.exit(main())
