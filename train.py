"""Train a multi-task face model: ``python train.py [overrides]`` (see README / --help)."""

import sys

import hydra
from omegaconf import DictConfig

from mtlface.config import launcher_problems, register_resolvers, unknown_group_choices
from mtlface.errors import debug_requested


@hydra.main(version_base="1.3", config_path="conf", config_name="train")
def main(cfg: DictConfig) -> float | None:
    from mtlface.train import hydra_job  # imported late: --help stays fast

    return hydra_job(cfg)


if __name__ == "__main__":
    debug_requested(sys.argv)  # --debug: tracebacks instead of one-line errors
    register_resolvers()
    if errors := unknown_group_choices(sys.argv[1:]):
        print("error: " + "; ".join(errors), file=sys.stderr)
        sys.exit(2)
    if errors := launcher_problems(sys.argv[1:]):
        print("error: " + "; ".join(errors), file=sys.stderr)
        sys.exit(1)
    main()
