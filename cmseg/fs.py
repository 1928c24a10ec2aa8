"""The filesystem side of every write: file modes, output checks, failed starts, OS errors.

* **File modes.** The temporary files and folders of atomic writes are created with the modes
  an ordinary ``open(path, "w")`` / ``mkdir`` asks for (``0o666`` / ``0o777``), which the
  kernel narrows by the caller's umask: ``0644`` / ``0755`` under umask 022, ``0640`` /
  ``0750`` under 027. (``tempfile.mkstemp`` / ``mkdtemp`` would give ``0600`` / ``0700``:
  outputs unreadable to colleagues, web servers and other users' runs.) A file that replaces
  an existing one gets the same mode as a new file.
* **Output checks.** :func:`check_output_dir` / :func:`check_output_file` refuse, before any
  long work, an output that cannot be written: under a file, in a folder without write
  permission, on a read-only file system, or on a full one.
* **Failed starts.** :func:`removed_if_failed` removes the output folder a command created
  when the command fails before its real work began, so no empty run folder is left behind.
* **OS errors.** :func:`filesystem_error` turns an ``OSError`` that is the user's filesystem
  (permission denied, not a folder, no space...) into a one-line
  :class:`~cmseg.errors.InputError` naming the path; the CLI does so for any that escapes.

Standard library only: every layer (data and metrics included) may import it.
"""

from __future__ import annotations

import contextlib
import errno
import os
import secrets
import shutil
from collections.abc import Iterator
from pathlib import Path

from cmseg.errors import InputError

__all__ = [
    "FILE_MODE",
    "DIR_MODE",
    "temp_file",
    "temp_dir",
    "give_ordinary_mode",
    "filesystem_reason",
    "filesystem_error",
    "check_readable",
    "check_output_dir",
    "check_output_file",
    "Keeper",
    "removed_if_failed",
]

#: Mode asked for a new file (narrowed by the umask), as ``open(path, "w")`` asks.
FILE_MODE = 0o666
#: Mode asked for a new folder (narrowed by the umask), as ``mkdir`` asks.
DIR_MODE = 0o777

#: errno -> what it means for the user, for the errors that are the filesystem's, not a bug.
_REASONS = {
    errno.EACCES: "permission denied",
    errno.EPERM: "permission denied (operation not permitted)",
    errno.ENOTDIR: "not a folder (a part of the path is a file)",
    errno.EISDIR: "is a folder, expected a file",
    errno.ENOENT: "no such file or folder",
    errno.ENOSPC: "no space left on device",
    errno.EROFS: "read-only file system",
    errno.ENAMETOOLONG: "file name too long",
    errno.ELOOP: "too many levels of symbolic links",
    errno.EFBIG: "file too large",
}
if hasattr(errno, "EDQUOT"):  # not on Windows
    _REASONS[errno.EDQUOT] = "disk quota exceeded"


# --------------------------------------------------------------------------------------------
# Temporary files and folders with ordinary modes


def temp_file(folder: str | os.PathLike[str], name: str) -> tuple[int, Path]:
    """Create a new hidden temporary file ``folder/.<name>.<random>.tmp`` for writing.

    Created with :data:`FILE_MODE` so the umask decides its final mode, exactly as for an
    ordinary write (module docstring).

    Returns:
        ``(file descriptor open for writing, path)``; the caller closes and renames it.
    """
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0)
    flags |= getattr(os, "O_BINARY", 0)  # Windows: no newline translation at the fd level
    while True:
        path = Path(folder) / f".{name}.{secrets.token_hex(4)}.tmp"
        try:
            return os.open(path, flags, FILE_MODE), path
        except FileExistsError:  # another writer drew the same name: draw again
            continue


def temp_dir(parent: str | os.PathLike[str], prefix: str) -> Path:
    """Create a new folder ``parent/<prefix><random>`` with :data:`DIR_MODE` (umask applied)."""
    while True:
        path = Path(parent) / f"{prefix}{secrets.token_hex(4)}"
        try:
            os.mkdir(path, DIR_MODE)
            return path
        except FileExistsError:
            continue


def give_ordinary_mode(path: str | os.PathLike[str]) -> None:
    """Set the mode of a file that other code wrote (safetensors writes ``0600``) to the one an
    ordinary write gives under the umask.

    The umask cannot be read without changing it (a race with other threads), so a probe file
    created beside ``path`` with :data:`FILE_MODE` tells the mode the kernel grants.
    """
    path = Path(path)
    fd, probe = temp_file(path.parent, path.name)
    try:
        granted = os.fstat(fd).st_mode & 0o7777
    finally:
        os.close(fd)
        os.unlink(probe)
    os.chmod(path, granted)


# --------------------------------------------------------------------------------------------
# OS errors as user errors


def filesystem_reason(err: BaseException) -> str | None:
    """What an ``OSError`` means for the user (``permission denied``, ``no space left on
    device``...), or None when it is not one of the filesystem's refusals."""
    if isinstance(err, OSError) and err.errno in _REASONS:
        return _REASONS[err.errno]
    return None


def filesystem_error(
    err: BaseException, path: str | os.PathLike[str] | None = None, *, doing: str = ""
) -> InputError | None:
    """``err`` as a one-line :class:`InputError`, or None when it is not the filesystem's.

    Args:
        err: any exception.
        path: the file the user knows (default: the error's own ``filename``).
        doing: what was attempted, e.g. ``cannot write`` (prefixes the reason).

    Returns:
        ``InputError(path, "<doing>: <reason>")``; None for another error, or one that names no
        path when none is given.
    """
    reason = filesystem_reason(err)
    where = path if path is not None else getattr(err, "filename", None)
    if reason is None or where is None:
        return None
    if getattr(err, "errno", None) == errno.ENOTDIR:
        blocker = _file_on_the_way(Path(where))
        if blocker is not None:
            reason = f"{blocker} is a file, not a folder"
    return InputError(where, f"{doing}: {reason}" if doing else reason)


def check_readable(path: str | os.PathLike[str]) -> None:
    """Open ``path`` for reading and close it, so a refusal is named for what it is.

    Some readers (safetensors reports a permission error as "No such file or directory")
    misname it; calling this first gives ``permission denied``.

    Raises:
        InputError: the file cannot be opened (permission denied, no such file...).
    """
    try:
        with open(path, "rb"):
            pass
    except OSError as err:
        raise (filesystem_error(err, path) or InputError(path, f"cannot read ({err})")) from None


def _file_on_the_way(path: Path) -> Path | None:
    """The first component of ``path`` (from the root) that exists and is not a folder."""
    for candidate in reversed((path, *path.parents)):
        if candidate.exists() and not candidate.is_dir():
            return candidate
        if not candidate.exists():
            return None
    return None


# --------------------------------------------------------------------------------------------
# Output checks before long work


def _existing_ancestor(path: Path) -> Path:
    """``path`` or its nearest ancestor that exists (``.`` for a relative path's root)."""
    probe = path
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    return probe


def _refusal(folder: Path, reported: Path) -> str | None:
    """Why no file can be written under ``folder`` (created where missing), or None; the
    reason names the folder at fault unless it is ``reported``, the path the message names."""
    base = _existing_ancestor(folder)
    if not base.is_dir():
        return "is a file, not a folder" if base == reported else f"{base} is a file, not a folder"
    where = "" if base == reported else f" ({base})"
    with contextlib.suppress(OSError, AttributeError):  # statvfs: POSIX only
        stats = os.statvfs(base)
        if stats.f_flag & getattr(os, "ST_RDONLY", 1):
            return f"read-only file system{where}"
        # root may use the blocks reserved for it; f_blocks 0: a file system reporting no sizes
        free = stats.f_bfree if _is_root() else stats.f_bavail
        if stats.f_blocks > 0 and free == 0:
            return f"no space left on device{where}"
    if not os.access(base, os.W_OK | os.X_OK):
        return f"permission denied: cannot write in {'this folder' if base == reported else base}"
    return None


def _is_root() -> bool:
    return hasattr(os, "geteuid") and os.geteuid() == 0


def check_output_dir(path: str | os.PathLike[str]) -> Path:
    """Refuse an output folder that cannot be created or written in; creates nothing.

    Raises:
        InputError: ``path`` (or a folder above it) is a file; no write permission in it (or
            in the nearest folder above it that exists); a read-only or full file system.

    Returns:
        ``path`` as a :class:`~pathlib.Path`.
    """
    path = Path(path)
    reason = _refusal(path, path)
    if reason is not None:
        raise InputError(path, reason)
    return path


def check_output_file(path: str | os.PathLike[str]) -> Path:
    """Refuse an output file that cannot be written (atomically, beside itself); creates
    nothing.

    Raises:
        InputError: ``path`` is a folder, or its folder fails :func:`check_output_dir`.

    Returns:
        ``path`` as a :class:`~pathlib.Path`.
    """
    path = Path(path)
    if path.is_dir():
        raise InputError(path, "is a folder, expected a file name")
    reason = _refusal(path.parent, path)
    if reason is not None:
        raise InputError(path, reason)
    return path


# --------------------------------------------------------------------------------------------
# Failed starts


class Keeper:
    """Handed out by :func:`removed_if_failed`; :meth:`keep` marks the real work as begun."""

    def __init__(self) -> None:
        self.kept = False

    def keep(self) -> None:
        """From now on the folder stays, even when the command fails."""
        self.kept = True


def _topmost_missing(path: Path) -> Path | None:
    """The highest folder of ``path`` (itself included) that does not exist yet, or None."""
    path = Path(os.path.abspath(path))
    if path.exists():
        return None
    top = path
    while not top.parent.exists() and top.parent != top:
        top = top.parent
    return top


def _holds_files(folder: Path) -> bool:
    return any(p.is_file() for p in folder.rglob("*"))


@contextlib.contextmanager
def removed_if_failed(
    path: str | os.PathLike[str], *, keep_files: bool = False
) -> Iterator[Keeper]:
    """Remove the output folder ``path`` when the block fails before its work began.

    Only what the block created is removed: nothing happens when ``path`` existed on entry;
    otherwise the highest folder the block created for it (``a/`` of ``--out a/b`` when ``a``
    did not exist) is removed with its content, unless :meth:`Keeper.keep` was called or, with
    ``keep_files``, when it holds a file (e.g. the outputs a prediction wrote before failing).
    The exception (``KeyboardInterrupt`` too) propagates.
    """
    top = _topmost_missing(Path(path))
    keeper = Keeper()
    try:
        yield keeper
    except BaseException:
        if top is not None and not keeper.kept and top.is_dir():
            if not (keep_files and _holds_files(top)):
                shutil.rmtree(top, ignore_errors=True)
        raise
