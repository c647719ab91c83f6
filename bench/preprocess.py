"""Preprocessing stage vs a plain facenet-pytorch loop, and a cached re-run:
``mtlface.bench.preprocess`` (see its docstring).

    .venv/bin/python bench/preprocess.py [--images 32] [--workers 2] [--batch 16] [--repeats 1]
"""

from mtlface.bench.preprocess import main

if __name__ == "__main__":
    main()
