"""Detect, crop and cache the faces of a dataset: ``python preprocess.py source=<name>
detector=<mtcnn|none> [overrides]``, the same as ``mtlface preprocess`` (conf/preprocess.yaml;
see README). A mistake ends with one ``error:`` line (exit 2 for a config value, 1 otherwise);
``--debug`` shows the traceback."""

import sys

from mtlface.cli import preprocess

if __name__ == "__main__":
    sys.exit(preprocess(sys.argv[1:]))
