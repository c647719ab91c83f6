"""Detect, crop and cache the faces of a dataset: ``python preprocess.py source=<name>
detector=<mtcnn|none> [overrides]`` (conf/preprocess.yaml; see README). A mistake ends with one
``error:`` line (exit 2 for a config value, 1 otherwise); ``--debug`` shows the traceback."""

import os
import sys

import hydra
from omegaconf import DictConfig

from mtlface.config import unknown_group_choices
from mtlface.errors import ConfigError, debug_requested, reports_errors

RAISE_ENV = "HYDRA_FULL_ERROR"  # set: Hydra raises its errors instead of printing them
USER_RAISE = os.environ.get(RAISE_ENV)  # the user's own setting: 1 asks for tracebacks


def _restore_raise_env() -> None:
    if USER_RAISE is None:
        os.environ.pop(RAISE_ENV, None)
    else:
        os.environ[RAISE_ENV] = USER_RAISE


@hydra.main(version_base="1.3", config_path="conf", config_name="preprocess")
def main(cfg: DictConfig) -> None:
    from mtlface.data.preprocess.cli import hydra_job  # imported late: --help stays fast

    _restore_raise_env()  # the job reports its own mistakes in one line
    hydra_job(cfg)


@reports_errors
def compose_and_run() -> None:
    """Hydra prints the mistakes it finds before the job (an unknown key, a malformed
    override) over several lines; told to raise them, it lets ``reports_errors`` print one."""
    from hydra.errors import ConfigCompositionException, OverrideParseException

    debug = debug_requested()
    os.environ[RAISE_ENV] = "1"
    try:
        main()
    except (ConfigCompositionException, OverrideParseException) as exc:
        if debug:
            raise
        raise ConfigError(_composition_message(exc)) from None
    finally:
        _restore_raise_env()


def _composition_message(exc: Exception) -> str:
    """Hydra's own message on one line: it names the override and what to do. A key that is
    not in the config comes as its cause."""
    from hydra.errors import OverrideParseException

    if isinstance(exc, OverrideParseException):
        return f"{exc.override}: {' '.join(exc.message.split())}"
    text = " ".join(str(exc).split()).partition(" Config search path:")[0]
    if exc.__cause__ is not None:
        text += (f" ({str(exc.__cause__).splitlines()[0]}): python preprocess.py --cfg job "
                 f"shows every key")
    return text


if __name__ == "__main__":
    debug_requested(sys.argv)  # --debug: tracebacks instead of one-line errors
    if errors := unknown_group_choices(sys.argv[1:]):
        print("error: " + "; ".join(errors), file=sys.stderr)
        sys.exit(2)
    compose_and_run()
