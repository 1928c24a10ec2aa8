"""Exceptions that the CLI turns into one-line messages (exit code 2, no traceback)."""

from __future__ import annotations

import os


class CmsegError(Exception):
    """Base class of every error that is the user's input, not a bug in cmseg."""


class InputError(CmsegError):
    """A file (or folder) given by the user cannot be used.

    ``str(err)`` is ``"<path>: <reason>"``, the exact text the CLI prints after ``error: ``.
    """

    def __init__(self, path: str | os.PathLike[str], reason: str) -> None:
        self.path = os.fspath(path)
        self.reason = reason
        super().__init__(f"{self.path}: {reason}")


class ConfigError(CmsegError):
    """A configuration file or a ``key=value`` override is invalid."""


class NotBuiltError(CmsegError):
    """A command or task that this version of cmseg does not implement yet."""
