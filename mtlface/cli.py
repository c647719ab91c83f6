"""The one command line: ``mtlface <command> [key=value ...]``, also ``python -m mtlface``.

``train`` and ``preprocess`` take Hydra overrides (``group=option``, ``key.path=value``, ``-m``
to sweep, ``--help``); the other commands take their own ``key=value`` or flag arguments and
``--help``. The root scripts (``python train.py``, ``preprocess.py``, ``evaluate.py``,
``demo.py``) are aliases of these commands."""

from __future__ import annotations

import importlib
import os
import sys
from collections.abc import Callable, Sequence

# name -> (module:function taking the argument list, one line of help)
COMMANDS: dict[str, tuple[str, str]] = {
    "train": ("mtlface.cli:train", "train a model: backbone x tasks x data (Hydra overrides)"),
    "preprocess": ("mtlface.cli:preprocess", "detect, crop and cache a dataset's faces"),
    "evaluate": ("mtlface.evaluate.cli:main", "metrics, per-group accuracy and plots of a run"),
    "matrix": ("mtlface.evaluate.matrix:main", "runs x test sources: each shared task's metric"),
    "predict": ("mtlface.predict.cli:main", "faces in a photo, video, webcam or folder"),
    "export": ("mtlface.export:main", "a run's model as ONNX or TorchScript, parity-checked"),
    "calibrate": ("mtlface.calibrate:main", "fit a run's temperatures and age interval on val"),
    "pseudo-label": ("mtlface.pseudo_label:main", "fill confident missing labels of a source"),
    "analyze": ("mtlface.analysis.__main__:main", "summary tables of sweep folders"),
    "bench": ("benchmarks.cli:main", "the benchmark suite (in a clone of the repository)"),
}
CONF = "pkg://mtlface.conf"
RAISE_ENV = "HYDRA_FULL_ERROR"  # set: Hydra raises the errors it finds instead of printing
USAGE = "usage: mtlface <command> [arguments]    (mtlface <command> --help for its options)"


def _load(target: str) -> Callable[[list[str]], int | None]:
    module, _, function = target.partition(":")
    try:
        return getattr(importlib.import_module(module), function)
    except ModuleNotFoundError as exc:
        if exc.name != "benchmarks":
            raise
        # The benchmarks live beside the package, in the repository, not in the wheel.
        from mtlface.errors import UserError
        raise UserError("the benchmark suite is not installed with the package: run "
                        "`python -m benchmarks` in a clone of the repository") from None


def _hydra_app(config_name: str, job: Callable, argv: Sequence[str]) -> int:
    """Run ``job`` as a Hydra app of ``conf/<config_name>.yaml`` over ``argv`` (Hydra reads
    the overrides from sys.argv, so they are put there for the call). A mistake Hydra finds
    before the job (a misspelt key, a malformed override) ends with one line as well: Hydra
    is told to raise it (``HYDRA_FULL_ERROR``) instead of printing it over several lines."""
    import hydra
    from omegaconf import DictConfig

    from mtlface.config import launcher_problems, register_resolvers, unknown_group_choices
    from mtlface.errors import CONFIG_EXIT, OTHER_EXIT, debug_requested, report

    argv = list(argv)
    debug = debug_requested(argv)  # --debug: tracebacks instead of one-line errors
    register_resolvers()
    for errors, code in ((unknown_group_choices(argv), CONFIG_EXIT),
                         (launcher_problems(argv), OTHER_EXIT)):
        if errors:
            print("error: " + "; ".join(errors), file=sys.stderr)
            return code

    users_setting = os.environ.get(RAISE_ENV)

    def restore() -> None:
        if users_setting is None:
            os.environ.pop(RAISE_ENV, None)
        else:
            os.environ[RAISE_ENV] = users_setting

    @hydra.main(version_base="1.3", config_path=CONF, config_name=config_name)
    def app(cfg: DictConfig):
        restore()  # the job reports its own mistakes in one line (or raises under --debug)
        return job(cfg)

    saved = sys.argv
    sys.argv = [saved[0], *argv]
    os.environ[RAISE_ENV] = "1"
    try:
        app()
    except Exception as exc:  # noqa: BLE001 - report() re-raises what is not a mistake
        restore()  # before report(), which reads HYDRA_FULL_ERROR as the user's own wish
        if debug:
            raise
        return report(_composition_error(exc))
    finally:
        sys.argv = saved
        restore()
    return 0


def _composition_error(exc: Exception) -> Exception:
    """Hydra's own composition and override errors as one-line ConfigErrors (they name the
    override and what to do); anything else as it is."""
    from hydra.errors import ConfigCompositionException, OverrideParseException

    from mtlface.errors import ConfigError

    if isinstance(exc, OverrideParseException):
        return ConfigError(f"{exc.override}: {' '.join(exc.message.split())}")
    if isinstance(exc, ConfigCompositionException):
        text = " ".join(str(exc).split()).partition(" Config search path:")[0]
        if exc.__cause__ is not None:
            text += f" ({str(exc.__cause__).splitlines()[0]}): --cfg job shows every key"
        return ConfigError(text)
    return exc


def train(argv: Sequence[str]) -> int:
    def job(cfg):
        from mtlface.train import hydra_job  # imported late: --help stays fast

        return hydra_job(cfg)

    return _hydra_app("train", job, argv)


def preprocess(argv: Sequence[str]) -> int:
    # Before Hydra composes: conf/preprocess.yaml's `crop` node is CropSpec (ConfigStore).
    from mtlface.data.preprocess.crop import register_config

    register_config()

    def job(cfg):
        from mtlface.data.preprocess.cli import hydra_job  # imported late: --help stays fast

        return hydra_job(cfg)

    return _hydra_app("preprocess", job, argv)


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help", "help"):
        width = max(map(len, COMMANDS))
        print(USAGE + "\n\ncommands:\n" + "\n".join(
            f"  {name:<{width}}  {text}" for name, (_, text) in COMMANDS.items()))
        return 0 if argv else 2
    name, rest = argv[0], argv[1:]
    if name not in COMMANDS:
        print(f"error: unknown command {name!r}; commands: {', '.join(COMMANDS)} "
              f"(mtlface --help)", file=sys.stderr)
        return 2
    from mtlface.errors import UserError, report

    try:
        command = _load(COMMANDS[name][0])
    except UserError as exc:
        return report(exc)
    return int(command(rest) or 0)


if __name__ == "__main__":
    sys.exit(main())
