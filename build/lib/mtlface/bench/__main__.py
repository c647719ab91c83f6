import sys

from mtlface.bench.cli import main

sys.exit(main())
