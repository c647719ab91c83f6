"""Errors a user can cause (a bad path, a broken image, a run folder without a model): each
carries a message meant to be printed as is, without a stack trace (see :mod:`mtlface.errors`,
whose ``UserError`` they are)."""

from __future__ import annotations

import sys
from collections.abc import Callable

from mtlface.errors import UserError, report

INTERRUPTED_EXIT = 130


class PredictError(UserError):
    """Base class: the message says what went wrong and what to do about it."""


class RunFolderError(PredictError):
    """No usable run folder, config or checkpoint."""


class ImageInputError(PredictError):
    """An input that cannot become an image (unreadable, corrupt, too large, wrong shape)."""


def exit_code_of(command: Callable[[], int]) -> int:
    """``command()``'s exit code, with a user mistake reported as one line (exit 2 or 1) by
    :func:`mtlface.errors.report`. Returned, not exited: the commands' ``main`` functions are
    also called from Python (tests, notebooks), which want the code."""
    try:
        return command()
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return INTERRUPTED_EXIT
    except Exception as exc:  # noqa: BLE001 - report() re-raises what is not a user mistake
        return report(exc)
