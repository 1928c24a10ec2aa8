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

A caller that needs a few more globals names them explicitly (``allow``: ``(module, name) ->
object``, each mapped to the object itself, never imported by the name the file gives):
:data:`DEFAULTDICT_GLOBALS` (``collections.defaultdict`` with a ``list`` factory) and
:func:`numpy_array_globals` (what numpy's own pickles of arrays and scalars call: the array
and scalar reconstructors, ``ndarray`` and ``dtype``; none of them runs code). That is how
:func:`load_npy_object` reads an ``np.save`` of a Python object, such as SSNM's ``dict.npy``,
without ``np.load(allow_pickle=True)``: it parses the ``.npy`` header itself and unpickles the
payload here.
"""

from __future__ import annotations

import _compat_pickle
import ast
import collections
import io
import os
import pickle
import struct
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from cmseg.errors import InputError
from cmseg.fs import filesystem_error

__all__ = [
    "ALLOWED_GLOBALS",
    "DEFAULTDICT_GLOBALS",
    "numpy_array_globals",
    "load_pickle",
    "loads_pickle",
    "load_npy_object",
]

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


#: ``defaultdict(list)``: the class and its factory (calling ``list`` runs no code).
DEFAULTDICT_GLOBALS: Mapping[tuple[str, str], Any] = {
    ("collections", "defaultdict"): collections.defaultdict,
    ("builtins", "list"): list,
}


def numpy_array_globals() -> dict[tuple[str, str], Any]:
    """What numpy's pickles of arrays and scalars name, under numpy 1's and numpy 2's module
    names: ``_reconstruct`` (an empty array of a subtype, which must itself be allowed:
    ``ndarray``), ``scalar`` (a scalar from its dtype and bytes), ``ndarray`` and ``dtype``.
    The array's contents come back through ``ndarray.__setstate__`` (raw bytes, or a list
    of objects that are themselves unpickled under the same rules)."""
    try:
        from numpy._core import multiarray  # numpy >= 2
    except ImportError:  # pragma: no cover - numpy 1
        from numpy.core import multiarray  # type: ignore[no-redef]
    allowed: dict[tuple[str, str], Any] = {
        ("numpy", "ndarray"): np.ndarray,
        ("numpy", "dtype"): np.dtype,
    }
    for module in ("numpy.core.multiarray", "numpy._core.multiarray"):
        allowed[(module, "_reconstruct")] = multiarray._reconstruct
        allowed[(module, "scalar")] = multiarray.scalar
    return allowed


class _RestrictedUnpickler(pickle.Unpickler):
    def __init__(self, file: Any, allow: Mapping[tuple[str, str], Any], **kwargs: Any) -> None:
        super().__init__(file, **kwargs)
        self.allow = allow

    def find_class(self, module: str, name: str) -> Any:
        # Python 2 names (__builtin__.set) -> Python 3 names (builtins.set), as pickle does.
        if (module, name) in _compat_pickle.NAME_MAPPING:
            module, name = _compat_pickle.NAME_MAPPING[(module, name)]
        elif module in _compat_pickle.IMPORT_MAPPING:
            module = _compat_pickle.IMPORT_MAPPING[module]
        if (module, name) in ALLOWED_GLOBALS:
            return super().find_class(module, name)
        if (module, name) in self.allow:
            return self.allow[(module, name)]  # the object itself: nothing is imported by name
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
    data: bytes,
    *,
    source: str | os.PathLike[str] = "<bytes>",
    decode_bytes: bool = True,
    allow: Mapping[tuple[str, str], Any] | None = None,
) -> Any:
    """Unpickle ``data`` allowing only builtin containers and scalars.

    Args:
        data: the pickle bytes (any protocol, Python 2 or 3).
        source: the name used in error messages.
        decode_bytes: decode ``bytes`` (Python 2 ``str``) to ``str``.
        allow: more globals the pickle may name, ``(module, name) -> the object`` (module
            docstring); none by default.

    Raises:
        InputError: the pickle references any other global, or is corrupt.
    """
    allow = dict(allow or {})
    try:
        obj = _RestrictedUnpickler(io.BytesIO(data), allow, encoding="bytes").load()
    except _Refused as err:
        allowed = "builtin containers and scalars" + (
            " and the globals named for it" if allow else ""
        )
        raise InputError(
            source, f"pickle asks for {err}; refusing to load it (only {allowed} are allowed)"
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
    return loads_pickle(_read_bytes(path), source=path, decode_bytes=decode_bytes)


def _read_bytes(path: Path) -> bytes:
    """The bytes of a file that must not be empty; every failure one ``InputError``."""
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
    return data


#: The first bytes of every ``.npy`` file.
NPY_MAGIC = b"\x93NUMPY"


def _npy_header(data: bytes, path: Path) -> tuple[dict[str, Any], int]:
    """The header dict of a ``.npy`` file (versions 1-3) and where its payload starts."""
    if not data.startswith(NPY_MAGIC) or len(data) < 10:
        raise InputError(path, "not a .npy file (no numpy magic string)")
    major = data[6]
    if major not in (1, 2, 3):
        raise InputError(path, f"unsupported .npy format version {major}.{data[7]}")
    size_format, start = ("<H", 10) if major == 1 else ("<I", 12)
    if len(data) < start:
        raise InputError(path, "truncated .npy header")
    (length,) = struct.unpack(size_format, data[8:start])
    raw = data[start : start + length]
    try:
        # a dict literal; literal_eval evaluates no code
        header = ast.literal_eval(raw.decode("utf-8" if major == 3 else "latin-1"))
    except (ValueError, SyntaxError, UnicodeDecodeError, MemoryError, RecursionError):
        header = None
    if len(raw) < length or not isinstance(header, dict) or "descr" not in header:
        raise InputError(path, "unreadable .npy header")
    return header, start + length


def load_npy_object(
    path: str | os.PathLike[str], *, allow: Mapping[tuple[str, str], Any] | None = None
) -> Any:
    """The Python object that ``np.save`` stored in a ``.npy`` file, read without
    ``np.load(allow_pickle=True)``.

    The header is parsed here (it must describe an object array, ``descr`` ``'|O'``) and the
    payload unpickled by :func:`loads_pickle` with :func:`numpy_array_globals` and ``allow``
    (e.g. :data:`DEFAULTDICT_GLOBALS`). ``np.save(path, some_dict)`` stores a 0-d object array:
    its item is returned (what ``np.load(path, allow_pickle=True).item()`` gives), with dicts
    (``defaultdict`` included) as plain dicts and ``bytes`` decoded; other shapes return the
    object array.

    Raises:
        InputError: a missing, empty or non-``.npy`` file, a header that is not an object
            array's, a corrupt payload, or one that names a global outside the allowed ones.
    """
    path = Path(path)
    data = _read_bytes(path)
    header, offset = _npy_header(data, path)
    if header["descr"] != "|O":
        raise InputError(
            path, f"holds a {header['descr']} array, not a pickled object (np.save of a dict)"
        )
    array = loads_pickle(
        data[offset:],
        source=path,
        decode_bytes=False,
        allow={**numpy_array_globals(), **(allow or {})},
    )
    if not isinstance(array, np.ndarray) or array.dtype != object:
        raise InputError(path, f"payload is a {type(array).__name__}, not an object array")
    if array.ndim:
        return array
    try:
        return _decode(array.item())
    except RecursionError:
        raise InputError(path, "pickle is nested too deeply") from None
