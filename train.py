"""Train a multi-task face model: ``python train.py [overrides]``, the same as ``mtlface train``
(see README / --help)."""

import sys

from mtlface.cli import train

if __name__ == "__main__":
    sys.exit(train(sys.argv[1:]))
