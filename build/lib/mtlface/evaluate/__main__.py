import sys

from mtlface.evaluate.cli import main

sys.exit(main())
