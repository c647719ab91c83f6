"""``python -m mtlface <command> ...``: the same command line as ``mtlface`` (mtlface.cli)."""

import sys

from mtlface.cli import main

sys.exit(main())
