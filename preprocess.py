"""Detect, crop and cache the faces of a dataset: ``python preprocess.py source=<name>
detector=<mtcnn|none> [overrides]`` (conf/preprocess.yaml; see README)."""

import sys

import hydra
from omegaconf import DictConfig

from mtlface.config import unknown_group_choices


@hydra.main(version_base="1.3", config_path="conf", config_name="preprocess")
def main(cfg: DictConfig) -> None:
    from mtlface.data.preprocess import run  # imported late: --help stays fast

    summary = run(cfg)
    if not (summary.complete or summary.cached):
        sys.exit(3)  # partial (limit reached): a script can tell it must run again


if __name__ == "__main__":
    if errors := unknown_group_choices(sys.argv[1:]):
        sys.exit("error: " + "\nerror: ".join(errors))
    main()
