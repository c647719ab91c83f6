"""``python -m mtlface.data.synthetic --root DIR``: generate (or find cached) the default
synthetic multi-source face dataset and print its counts."""

from __future__ import annotations

import argparse
import logging
import os
from collections.abc import Sequence

from mtlface.data.manifest import SPLITS, read_manifest
from mtlface.data.synthetic.provider import SyntheticFaces
from mtlface.data.synthetic.sources import DEFAULT_SOURCES


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m mtlface.data.synthetic",
        description="Generate (or find cached) the default synthetic multi-source face dataset.")
    parser.add_argument("--root", required=True, help="cache folder; data goes in ROOT/<hash>/")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    path = SyntheticFaces(args.root, DEFAULT_SOURCES, args.seed, args.workers).prepare()
    counts = read_manifest(path).groupby(["source", "split"]).size().unstack(fill_value=0)
    print(path)
    print(counts.reindex(columns=list(SPLITS), fill_value=0).to_string())




if __name__ == "__main__":
    main()
