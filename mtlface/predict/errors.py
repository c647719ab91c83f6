"""Errors a user can cause (a bad path, a broken image, a run folder without a model): each
carries a message meant to be printed as is, without a stack trace."""

from __future__ import annotations


class PredictError(Exception):
    """Base class: the message says what went wrong and what to do about it."""


class RunFolderError(PredictError):
    """No usable run folder, config or checkpoint."""


class ImageInputError(PredictError):
    """An input that cannot become an image (unreadable, corrupt, too large, wrong shape)."""
