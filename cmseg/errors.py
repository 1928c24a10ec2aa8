"""Exceptions that the CLI turns into one-line messages (exit code 2, no traceback)."""

from __future__ import annotations

import os


def original_message(message: str) -> str | None:
    """The one-line message of an error re-raised from a worker process, or None.

    A DataLoader worker sends its exception to the main process as text, and PyTorch rebuilds
    the exception there from one string: ``"Caught InputError in DataLoader worker process 0.
    \nOriginal Traceback (most recent call last): ... \ncmseg.errors.InputError: <path>:
    <reason>"``. The last line after the class name is what the error said in the worker.
    """
    if not (message.startswith("Caught ") and "\nOriginal Traceback" in message):
        return None
    last = message.rstrip().splitlines()[-1]
    _, sep, rest = last.partition(": ")
    return rest if sep else last


class CmsegError(Exception):
    """Base class of every error that is the user's input, not a bug in cmseg.

    Errors raised in a DataLoader worker keep their one-line message in the main process
    (:func:`original_message`), so a bad file read by a worker is reported as it would be
    without workers.
    """

    def __init__(self, *args: object) -> None:
        if len(args) == 1 and isinstance(args[0], str):
            args = (original_message(args[0]) or args[0],)
        super().__init__(*args)


class InputError(CmsegError):
    """A file (or folder) given by the user cannot be used.

    ``str(err)`` is ``"<path>: <reason>"``, the exact text the CLI prints after ``error: ``.
    """

    def __init__(self, path: str | os.PathLike[str], reason: str | None = None) -> None:
        if reason is None:  # rebuilt from its message: in a worker's re-raise, or unpickled
            message = os.fspath(path)
            message = original_message(message) or message
            path, _, reason = message.partition(": ")
        self.path = os.fspath(path)
        self.reason = reason
        super().__init__(f"{self.path}: {reason}")


class ConfigError(CmsegError):
    """A configuration file or a ``key=value`` override is invalid."""


class NotBuiltError(CmsegError):
    """A command or task that this version of cmseg does not implement yet."""
