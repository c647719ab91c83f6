"""Train a multi-task face model: ``python train.py [overrides]`` (see README / --help)."""

import sys

import hydra
from omegaconf import DictConfig

from mtlface.config import unknown_group_choices


@hydra.main(version_base="1.3", config_path="conf", config_name="train")
def main(cfg: DictConfig) -> float:
    from mtlface.train import objective, run  # imported late: --help stays fast

    return objective(run(cfg), cfg.objective)


if __name__ == "__main__":
    if errors := unknown_group_choices(sys.argv[1:]):
        sys.exit("error: " + "\nerror: ".join(errors))
    main()
