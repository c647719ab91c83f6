"""Config helpers shared by the entry scripts."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path

from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.errors import OverrideParseException

CONF_DIR = Path(__file__).resolve().parent.parent / "conf"


def group_options(group: str, conf_dir: Path = CONF_DIR) -> list[str]:
    return sorted(p.stem for p in (conf_dir / group).glob("*.yaml"))


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
    messages = []
    for override in parsed:
        group = override.key_or_group
        # hydra/<group> options also come from plugins (hydra/launcher=submitit_local, basic),
        # which are not files here; Hydra itself lists the valid ones.
        if ("." in group or group.startswith("hydra/") or not (conf_dir / group).is_dir()
                or override.is_delete()):
            continue
        valid = group_options(group, conf_dir)
        for name in _choices(override.value()):
            if name not in valid:
                messages.append(f"unknown {group} {name!r}; valid {group}: {', '.join(valid)}")
    return messages
