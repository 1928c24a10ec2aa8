"""Load a pickle that may only hold builtin containers and scalars.

The REFER annotation files of RefCOCO, RefCOCO+ and RefCOCOg (``refs(unc).p``,
``refs(umd).p``, ``refs(google).p``) are pickles written by Python 2 ``cPickle``: a list of
dicts of ints, strings and lists. ``pickle.load`` on a file from the internet runs whatever
callable the file names, so cmseg never calls it on user data (DESIGN §6). This unpickler
resolves no global at all except a handful of harmless builtins; a file that asks for anything
else (``os.system``, ``builtins.eval``, a numpy array, a user class) is refused with a one-line
:class:`~cmseg.errors.InputError` that names what it asked for.

Python 2 ``str`` objects arrive as bytes; by default they are decoded as UTF-8 (Latin-1 when
that fails), so the REFER ``sent``/``raw`` fields come back as Python ``str``.
"""

from __future__ import annotations

import _compat_pickle
import io
import os
import pickle
from pathlib import Path
from typing import Any

from cmseg.errors import InputError
from cmseg.fs import filesystem_error

__all__ = ["ALLOWED_GLOBALS", "load_pickle", "loads_pickle"]

#: ``(module, name)`` pairs a pickle may reference. Python 2 module names (``__builtin__``)
#: are mapped to Python 3 ones before this check. ``set``/``frozenset`` need a global in
#: protocols 0-3; ``_codecs.encode`` is how Python 3 writes ``bytes`` in protocols 0-2.
ALLOWED_GLOBALS: frozenset[tuple[str, str]] = frozenset(
    {
        ("builtins", "set"),
        ("builtins", "frozenset"),
        ("builtins", "bytearray"),
        ("builtins", "complex"),
        ("_codecs", "encode"),
    }
)


class _RestrictedUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        # Python 2 names (__builtin__.set) -> Python 3 names (builtins.set), as pickle does.
        if (module, name) in _compat_pickle.NAME_MAPPING:
            module, name = _compat_pickle.NAME_MAPPING[(module, name)]
        elif module in _compat_pickle.IMPORT_MAPPING:
            module = _compat_pickle.IMPORT_MAPPING[module]
        if (module, name) in ALLOWED_GLOBALS:
            return super().find_class(module, name)
        raise _Refused(f"{module}.{name}")

    def persistent_load(self, pid: Any) -> Any:
        raise _Refused("a persistent id")


class _Refused(pickle.UnpicklingError):
    """The pickle references something outside :data:`ALLOWED_GLOBALS`."""


def _decode(obj: Any) -> Any:
    """Turn every ``bytes`` (Python 2 ``str``) into ``str``, recursively."""
    if isinstance(obj, bytes):
        try:
            return obj.decode("utf-8")
        except UnicodeDecodeError:
            return obj.decode("latin-1")
    if isinstance(obj, dict):
        return {_decode(k): _decode(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_decode(v) for v in obj]
    if isinstance(obj, tuple):
        return tuple(_decode(v) for v in obj)
    if isinstance(obj, (set, frozenset)):
        return type(obj)(_decode(v) for v in obj)
    return obj


def loads_pickle(
    data: bytes, *, source: str | os.PathLike[str] = "<bytes>", decode_bytes: bool = True
) -> Any:
    """Unpickle ``data`` allowing only builtin containers and scalars.

    Args:
        data: the pickle bytes (any protocol, Python 2 or 3).
        source: the name used in error messages.
        decode_bytes: decode ``bytes`` (Python 2 ``str``) to ``str``.

    Raises:
        InputError: the pickle references any other global, or is corrupt.
    """
    try:
        obj = _RestrictedUnpickler(io.BytesIO(data), encoding="bytes").load()
    except _Refused as err:
        raise InputError(
            source,
            f"pickle asks for {err}; refusing to load it (only builtin containers and scalars are allowed)",
        ) from None
    except (
        pickle.UnpicklingError,
        EOFError,
        ValueError,
        TypeError,
        AttributeError,
        IndexError,
        KeyError,
        MemoryError,
        OverflowError,
        RecursionError,
    ) as err:
        text = str(err).strip().splitlines()
        reason = text[0] if text else type(err).__name__
        raise InputError(source, f"not a readable pickle ({reason})") from None
    if decode_bytes:
        try:
            obj = _decode(obj)
        except RecursionError:
            raise InputError(source, "pickle is nested too deeply") from None
    return obj


def load_pickle(path: str | os.PathLike[str], *, decode_bytes: bool = True) -> Any:
    """Read a pickle file allowing only builtin containers and scalars (see :func:`loads_pickle`).

    Raises:
        InputError: missing or unreadable file, corrupt pickle, or a pickle that asks for any
            global outside :data:`ALLOWED_GLOBALS` (the reason names it).
    """
    path = Path(path)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise InputError(path, "no such file") from None
    except IsADirectoryError:
        raise InputError(path, "is a directory, expected a pickle file") from None
    except OSError as err:
        refused = filesystem_error(err, path)  # e.g. permission denied
        raise (refused or InputError(path, f"cannot read: {err.strerror}")) from None
    if not data:
        raise InputError(path, "file is empty (0 bytes)")
    return loads_pickle(data, source=path, decode_bytes=decode_bytes)
