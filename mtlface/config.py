"""Config helpers shared by the entry scripts."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.errors import OverrideParseException
from omegaconf import DictConfig, ListConfig, OmegaConf

if TYPE_CHECKING:
    import argparse


def _conf_dir() -> Path:
    """conf/, found through the package ``mtlface.conf`` it ships as (setup.py), so an
    installed mtlface finds it from any working directory; a source tree used without
    installing finds it next to the package."""
    try:
        from importlib.resources import files

        return Path(str(files("mtlface.conf")))
    except ModuleNotFoundError:
        return Path(__file__).resolve().parent.parent / "conf"


CONF_DIR = _conf_dir()


def group_options(group: str, conf_dir: Path = CONF_DIR) -> list[str]:
    """The options of a config group; ``_base`` and other ``_``-names are parts, not options."""
    return sorted(p.stem for p in (conf_dir / group).glob("*.yaml") if not p.stem.startswith("_"))


def _choices(value) -> Iterable[str]:
    """Option names in an override value: a name, a list of names, or a sweep of either."""
    if value is None:
        return []
    if isinstance(value, str):
        return [value]
    if isinstance(value, list):
        return [name for v in value for name in _choices(v)]
    if hasattr(value, "list"):  # ChoiceSweep
        return _choices(value.list)
    return []


def unknown_group_choices(overrides: Sequence[str], conf_dir: Path = CONF_DIR) -> list[str]:
    """Messages for overrides that pick a config-group option that does not exist.

    Hydra reports an unknown option with the valid ones for `group=name`, but not for an
    entry of a list such as `tasks=[age,foo]`; this checks every form before Hydra runs."""
    try:
        parsed = OverridesParser.create().parse_overrides(
            [o for o in overrides if not o.startswith("-")])
    except OverrideParseException:
        return []  # malformed overrides: Hydra's own message explains them
    # Config folders of the user's own (hydra.searchpath=[file:///my/conf]) add options, e.g.
    # a task declared in /my/conf/tasks/wears_hat.yaml.
    extra = [Path(str(p).removeprefix("file://")) for o in parsed
             if o.key_or_group == "hydra.searchpath" for p in _choices(o.value())
             if str(p).startswith("file://")]
    messages = []
    for override in parsed:
        group = override.key_or_group
        # hydra/<group> options also come from plugins (hydra/launcher=submitit_local, basic),
        # which are not files here; Hydra itself lists the valid ones.
        if ("." in group or group.startswith("hydra/") or not (conf_dir / group).is_dir()
                or override.is_delete()):
            continue
        valid = sorted({*group_options(group, conf_dir),
                        *(o for d in extra for o in group_options(group, d))})
        for name in _choices(override.value()):
            if name not in valid:
                messages.append(f"unknown {group} {name!r}; valid {group}: {', '.join(valid)}")
    return messages


def is_group_override(key: str, conf_dir: Path = CONF_DIR) -> bool:
    """``backbone=...``, ``tasks=[...]``, ``hydra/launcher=...``: picks config files, not values."""
    group = key.split("@", 1)[0]
    return "/" in group or (conf_dir / group).is_dir()


_KINDS = {bool: "true or false", int: "a whole number", float: "a number"}


def _fits(default: Any, value: Any) -> bool:
    if value is None or isinstance(default, str | list | dict) or default is None:
        return True
    if isinstance(default, bool):
        return isinstance(value, bool)
    if isinstance(default, int):
        return isinstance(value, int) and not isinstance(value, bool)
    if isinstance(default, float):
        return isinstance(value, int | float) and not isinstance(value, bool)
    return True


def check_override_types(overrides: Sequence[str], defaults: DictConfig) -> None:
    """A :class:`~mtlface.errors.ConfigError` for the first ``key=value`` override whose value
    is not of the type of the key's value in ``defaults`` (the config composed with the same
    group choices and no value overrides): ``trainer.max_epochs=abc`` stops here with the key
    named, not in an ``assert`` deep inside Lightning."""
    from mtlface.errors import ConfigError

    try:
        parsed = OverridesParser.create().parse_overrides(list(overrides))
    except OverrideParseException:
        return  # Hydra has already reported a malformed override
    for override in parsed:
        key = override.key_or_group
        if override.is_delete() or override.is_sweep_override() or is_group_override(key):
            continue
        try:
            default = OmegaConf.select(defaults, key, default=None, throw_on_missing=False)
        except Exception:  # noqa: BLE001 - e.g. ${hydra:...}, unset outside a job: no type
            continue
        if isinstance(default, DictConfig | ListConfig):
            continue
        value = override.value()
        if not _fits(default, value):
            kind = next(text for t, text in _KINDS.items() if isinstance(default, t))
            raise ConfigError(f"{override.input_line} is not {kind} "
                              f"(command line; the default is {default}): pass e.g. "
                              f"{key}={default}")


def group_listing(*excluded: str, conf_dir: Path = CONF_DIR) -> str:
    """``group: option, option`` lines for ``--help``, leaving out ``excluded`` groups (those
    another command takes, such as preprocess.py's ``source`` and ``detector``)."""
    groups = sorted(p.name for p in conf_dir.iterdir()
                    if p.is_dir() and p.name not in excluded and group_options(p.name, conf_dir))
    return "\n".join(f"{g}: {', '.join(group_options(g, conf_dir))}" for g in groups)


def optuna_direction(mode: str) -> str:
    """``objective.mode`` (max or min, as ModelCheckpoint takes it) as Optuna's direction."""
    from mtlface.errors import ConfigError

    directions = {"max": "maximize", "min": "minimize"}
    if mode not in directions:
        raise ConfigError(f"objective.mode={mode}: pass objective.mode=max or objective.mode=min")
    return directions[mode]


def register_resolvers() -> None:
    """The resolvers train.py's config uses: ``${mtlface.groups:excluded,...}`` (the group
    listing of --help) and ``${mtlface.direction:<max|min>}`` (the Optuna direction)."""
    OmegaConf.register_new_resolver("mtlface.groups", group_listing, replace=True)
    OmegaConf.register_new_resolver("mtlface.direction", optuna_direction, replace=True)


def launcher_problems(overrides: Sequence[str]) -> list[str]:
    """A cluster launcher picked on a machine that cannot submit to it: said before Hydra's
    launcher fails inside submitit with a traceback."""
    import shutil

    if any(o.split("=", 1) == ["hydra/launcher", "slurm"] for o in overrides) and \
            shutil.which("sbatch") is None:
        return ["hydra/launcher=slurm needs SLURM's sbatch, which is not on this machine's "
                "PATH: run the sweep on a cluster login node, or use hydra/launcher=local"]
    return []


def parse_key_values(argv: Sequence[str], keys: dict[str, str] | Sequence[str],
                     usage: str) -> dict[str, str]:
    """``key=value`` arguments of the plain (non-Hydra) commands; ``keys`` maps each accepted
    spelling to its name (a sequence: the names themselves). A ConfigError names the bad one."""
    from mtlface.errors import ConfigError

    names = dict(keys) if isinstance(keys, dict) else {k: k for k in keys}
    args: dict[str, str] = {}
    for arg in argv:
        key, sep, value = arg.lstrip("-").partition("=")
        if not sep or key not in names or not value:
            raise ConfigError(f"bad argument {arg!r}: arguments are key=value with keys "
                              f"{', '.join(names)}; {usage}")
        args[names[key]] = value
    return args


def structured_options(schema: type, args: dict[str, str]) -> DictConfig:
    """The options of a plain command: ``schema`` (a dataclass of defaults, ``MISSING`` where
    required) with the values :func:`parse_key_values` read. A ``str`` option keeps its text
    as typed (a path with brackets, commas or spaces needs no YAML quoting); any other is read
    as YAML (``tasks=[emotion]``, ``plots=false``) and OmegaConf checks its type, so
    ``batch_size=abc`` is one error line naming the key. A required option left unset is a
    ConfigError naming every such key."""
    from typing import get_type_hints

    from omegaconf.errors import ValidationError
    from yaml import YAMLError

    from mtlface.errors import ConfigError

    hints = get_type_hints(schema)
    cfg = OmegaConf.structured(schema)
    for key, value in args.items():
        if hints[key] in (str, str | None):
            cfg[key] = value.replace("${", "\\${")  # text, never an interpolation
        else:
            try:
                cfg = OmegaConf.merge(cfg, OmegaConf.from_dotlist([f"{key}={value}"]))
            except YAMLError:
                raise ConfigError(f"{key}={value} is not a YAML value: write a list as "
                                  f"{key}=[a,b]; see --help") from None
            except ValidationError as exc:
                default = cfg[key]
                kind = next((text for t, text in _KINDS.items() if isinstance(default, t)),
                            None)
                if kind is None:  # a list: OmegaConf's own first line says what it wanted
                    raise ConfigError(f"{key}={value}: {str(exc).splitlines()[0]}; see "
                                      f"--help") from None
                shown = str(default).lower() if isinstance(default, bool) else default
                raise ConfigError(f"{key}={value} is not {kind} (the default is {shown}): "
                                  f"pass e.g. {key}={shown}") from None
    missing = sorted(OmegaConf.missing_keys(cfg))
    if missing:
        raise ConfigError(f"missing option(s): {', '.join(f'{k}=...' for k in missing)}; "
                          f"see --help")
    return cfg


def key_values_as_flags(argv: Sequence[str], parser: argparse.ArgumentParser) -> list[str]:
    """``key=value`` arguments of a flag-style command as its ``--key=value`` options (``_`` or
    ``-`` alike), so every ``mtlface`` command takes the ``key=value`` form: ``mtlface predict
    image=photo.jpg json=faces.jsonl detect_every=3``. Anything else (flags, positionals, a
    ``key=value`` that names no option, e.g. a path with ``=``) passes through unchanged."""
    actions = {s: action for action in parser._actions for s in action.option_strings}
    out = []
    for arg in argv:
        key, sep, value = arg.partition("=")
        flag = "--" + key.replace("_", "-")
        if sep and not arg.startswith("-") and flag in actions:
            if actions[flag].nargs == 0:  # a switch: key=true turns it on, key=false leaves it off
                out += [flag] if value.lower() in ("1", "true", "yes") else []
                continue
            out.append(f"{flag}={value}")
        else:
            out.append(arg)
    return out
