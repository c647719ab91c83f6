"""User mistakes and the one way every command reports them.

A mistake a user can fix (a config value of the wrong type or range, a missing dataset, cache,
run, checkpoint or GPU, an unwritable output) ends the command with one line on stderr,
``error: <what>, <where>, <what to do>``, and exit code 2 for a config mistake or 1 for
anything else. ``--debug`` (or ``HYDRA_FULL_ERROR=1``) shows the traceback instead."""

from __future__ import annotations

import functools
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

DEBUG_ENV = "MTLFACE_DEBUG"
CONFIG_EXIT = 2
OTHER_EXIT = 1

F = TypeVar("F", bound=Callable[..., Any])


class UserError(Exception):
    """A mistake the user can fix; the message says what, where and what to do."""

    exit_code = OTHER_EXIT


class ConfigError(UserError, ValueError):
    """A config or command-line value of the wrong type or range, or a missing one."""

    exit_code = CONFIG_EXIT


def debug_requested(argv: list[str] | None = None) -> bool:
    """True when tracebacks are wanted: ``--debug`` in ``argv`` (removed from it) or
    ``HYDRA_FULL_ERROR=1`` / ``MTLFACE_DEBUG=1`` in the environment."""
    if argv is not None and "--debug" in argv:
        while "--debug" in argv:
            argv.remove("--debug")
        os.environ[DEBUG_ENV] = "1"
    return any(os.environ.get(k) == "1" for k in (DEBUG_ENV, "HYDRA_FULL_ERROR"))


def _innermost(exc: BaseException) -> BaseException:
    """Hydra's ``instantiate`` and Lightning wrap the user's mistake: report the cause."""
    while exc.__cause__ is not None and exc.__cause__ is not exc:
        exc = exc.__cause__
    return exc


def _config_error_types() -> tuple[type[BaseException], ...]:
    """Exceptions that mean a config value is wrong: the constructors' own checks (ValueError,
    TypeError: data.batch_size must be >= 1, ...), OmegaConf's and Hydra's, and Lightning's
    MisconfigurationException when Lightning is loaded (demo and export never import it)."""
    from hydra.errors import HydraException
    from omegaconf.errors import OmegaConfBaseException

    types: list[type[BaseException]] = [ValueError, TypeError, OmegaConfBaseException,
                                         HydraException]
    lightning = sys.modules.get("lightning_fabric.utilities.exceptions")
    if lightning is not None:
        types.append(lightning.MisconfigurationException)
    return tuple(types)


def _is_user_error(exc: BaseException) -> bool:
    # OSError: missing or unwritable files.
    return isinstance(exc, (UserError, OSError, *_config_error_types()))


def _exit_code(exc: BaseException) -> int:
    if isinstance(exc, UserError):
        return exc.exit_code
    if isinstance(exc, _config_error_types()):
        return CONFIG_EXIT
    return OTHER_EXIT


def one_line(exc: BaseException) -> str:
    """The message of ``exc`` (or of the mistake it wraps) as one line."""
    cause = _innermost(exc)
    if not _is_user_error(cause) and _is_user_error(exc):
        cause = exc
    text = str(cause).strip() or type(cause).__name__
    if isinstance(cause, OSError) and cause.filename and cause.strerror:
        text = f"{cause.strerror}: {cause.filename}"
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    # OmegaConf appends "full_key: ...", "object_type=..." lines that add nothing for a user.
    lines = [line for line in lines
             if not line.startswith(("full_key:", "object_type=", "reference_type="))]
    return " ".join(lines)


def report(exc: BaseException) -> int:
    """Print ``error: <message>`` for a user mistake and return its exit code; re-raise
    anything else (a bug keeps its traceback)."""
    cause = _innermost(exc)
    if not (_is_user_error(exc) or _is_user_error(cause)) or debug_requested():
        raise exc
    print(f"error: {one_line(exc)}", file=sys.stderr)
    code = _exit_code(cause if _is_user_error(cause) else exc)
    return code


def reports_errors(main: F) -> F:
    """Decorate a command's entry: user mistakes exit with one line (see :func:`report`)."""

    @functools.wraps(main)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return main(*args, **kwargs)
        except KeyboardInterrupt:
            print("interrupted", file=sys.stderr)
            sys.exit(130)
        except Exception as exc:  # noqa: BLE001 - report() re-raises what is not ours
            sys.exit(report(exc))

    return wrapper  # type: ignore[return-value]


def _probe(folder: Path) -> str | None:
    """Why a file cannot be created in ``folder`` (None when it can). A real probe, not
    ``os.access``: root passes every permission check yet fails on read-only mounts."""
    import tempfile

    try:
        with tempfile.NamedTemporaryFile(dir=folder, prefix=".mtlface-probe-"):
            return None
    except OSError as exc:
        return exc.strerror or type(exc).__name__


def _nearest_existing(path: Path) -> Path:
    while not path.exists() and path != path.parent:
        path = path.parent
    return path


def check_writable(path: str | os.PathLike, what: str, option: str) -> Path:
    """Fail before any work when the file ``path`` cannot be written. ``what`` names the
    output, ``option`` the key or flag that sets it."""
    path = Path(path).expanduser()
    if path.is_dir():
        raise UserError(f"{what} {path} is a folder, not a file: pass a file path to {option}")
    folder = _nearest_existing(path.parent)
    why = "not a folder" if not folder.is_dir() else _probe(folder)
    if why is None and path.exists() and not os.access(path, os.W_OK):
        why = "the file is read-only"
    if why:
        raise UserError(f"cannot write the {what} {path} ({folder}: {why}): pass another path "
                        f"with {option}")
    return path


def check_writable_dir(path: str | os.PathLike, what: str, option: str) -> Path:
    """Like :func:`check_writable`, for a folder that will be created or written into."""
    path = Path(path).expanduser()
    if path.exists() and not path.is_dir():
        raise UserError(f"{what} {path} is a file, not a folder: pass a folder to {option}")
    folder = _nearest_existing(path)
    why = "not a folder" if not folder.is_dir() else _probe(folder)
    if why:
        raise UserError(f"cannot write the {what} into {path} ({folder}: {why}): pass another "
                        f"folder with {option}")
    return path
