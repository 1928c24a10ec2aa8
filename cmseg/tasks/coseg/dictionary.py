"""SSNM's co-category dictionary: COCO category id -> the training images listed under it.

The official rule (``data_processed.py``; reference ssnm_coseg.md §4, applied by
:func:`~cmseg.data.formats.coseg_groups.index_coco`): an image is listed under a category when
it has a non-crowd instance of it larger than ``min_area`` (4000) pixels; categories with fewer
than ``min_images`` (100) listed images are dropped; the label index of a category is its rank
in ascending id (78 categories on COCO2017 ``train2017``).

:func:`coco_dictionary` takes, in this order:

1. ``data.options.dictionary``: SSNM's ``dict.npy`` / ``new_cat2imgid_dict4000.npy`` (an
   ``np.save`` of a pickled ``collections.defaultdict(list)``), read only through the
   restricted unpickler (:func:`cmseg.data.safe_pickle.load_npy_object`), never with
   ``np.load(allow_pickle=True)``; its ids are checked against the annotation file;
2. the cache: ``<dictionary_cache>/coseg_dictionary_<key>.json``, whose key is the annotation
   file (path, size, modification time) and the rule's parameters, so that an edited or
   replaced file, or another rule, is never served an old table;
3. the rule applied to the annotation file, then written to the cache (atomically, with the
   modes of an ordinary write; a cache folder that cannot be written is a warning, not an
   error).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from cmseg.data.formats.coseg_groups import CocoIndex
from cmseg.data.safe_pickle import DEFAULTDICT_GLOBALS, load_npy_object
from cmseg.errors import CmsegError, InputError
from cmseg.io import read_json, write_json
from cmseg.tasks.coseg.options import CosegOptions

__all__ = ["CACHE_VERSION", "default_cache_dir", "coco_dictionary", "read_official_dictionary"]

log = logging.getLogger(__name__)

#: Bumped when the cache's content or the rule's code changes.
CACHE_VERSION = 1


def default_cache_dir() -> Path:
    """``$XDG_CACHE_HOME/cmseg``, else ``~/.cache/cmseg``."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "cmseg"


def _cache_key(annotation_file: Path, opts: CosegOptions) -> dict[str, Any]:
    stat = annotation_file.stat()
    return {
        "version": CACHE_VERSION,
        "annotation_file": str(annotation_file.resolve()),
        "size": stat.st_size,
        "mtime_ns": stat.st_mtime_ns,
        "min_area": float(opts.min_area),
        "min_images": int(opts.min_images),
    }


def cache_path(annotation_file: Path, opts: CosegOptions) -> Path:
    """Where the dictionary of ``annotation_file`` under the rule of ``opts`` is cached."""
    key = json.dumps(_cache_key(annotation_file, opts), sort_keys=True)
    folder = Path(opts.dictionary_cache) if opts.dictionary_cache else default_cache_dir()
    return folder / f"coseg_dictionary_{hashlib.sha256(key.encode()).hexdigest()[:16]}.json"


def _read_cache(path: Path, key: Mapping[str, Any]) -> dict[int, list[int]] | None:
    if not path.is_file():
        return None
    try:
        data = read_json(path)
        if data.get("key") != dict(key):
            return None
        return {int(c): [int(i) for i in ids] for c, ids in data["images"].items()}
    except (InputError, AttributeError, KeyError, TypeError, ValueError) as err:
        log.warning("%s: unreadable dictionary cache (%s); building it again", path, err)
        return None


def _write_cache(
    path: Path, key: Mapping[str, Any], table: Mapping[int, list[int]], names: Mapping[int, str]
) -> None:
    content = {
        "key": dict(key),
        "names": {str(c): names[c] for c in table},
        "images": {str(c): list(ids) for c, ids in table.items()},
    }
    try:
        write_json(path, content, indent=0)
    except (CmsegError, OSError) as err:
        log.warning("the co-category dictionary is not cached: %s", err)


def read_official_dictionary(
    path: Path, index: CocoIndex, annotation_file: Path
) -> dict[int, list[int]]:
    """SSNM's ``dict.npy``: ``{category id: sorted image ids}`` in ascending category id.

    Raises:
        InputError: the file is not such a dictionary (or asks for any code), or names a
            category or image that ``annotation_file`` does not have (one line naming it).
    """
    raw = load_npy_object(path, allow=DEFAULTDICT_GLOBALS)
    if not isinstance(raw, dict) or not raw:
        raise InputError(path, "expected a non-empty dict of COCO category id -> image ids")
    table: dict[int, list[int]] = {}
    for key, ids in raw.items():
        try:
            cat, members = int(key), sorted({int(i) for i in ids})
        except (TypeError, ValueError):
            raise InputError(path, f"entry {key!r} is not a category id -> image ids") from None
        if cat not in index.cat_names:
            raise InputError(path, f"category id {cat} is not in {annotation_file}")
        unknown = [i for i in members if i not in index.images]
        if unknown:
            raise InputError(
                path,
                f"{len(unknown)} image id(s) of category {cat} (e.g. {unknown[0]}) are not in "
                f"{annotation_file}: a dictionary of another split?",
            )
        table[cat] = members
    return dict(sorted(table.items()))


def coco_dictionary(
    index: CocoIndex, annotation_file: Path, opts: CosegOptions
) -> dict[int, list[int]]:
    """The co-category dictionary of a COCO run (module docstring), ascending category id.

    Args:
        index: the parsed annotation file (its ``cat_to_images`` follows the rule of
            ``opts.min_area`` / ``opts.min_images``).
        annotation_file: the ``instances_*.json`` it was parsed from.
        opts: ``dictionary``, ``dictionary_cache``, ``min_area``, ``min_images``.
    """
    if opts.dictionary:
        table = read_official_dictionary(Path(opts.dictionary), index, annotation_file)
        log.info("coseg: %d categories from %s", len(table), opts.dictionary)
        return table
    key = _cache_key(annotation_file, opts)
    path = cache_path(annotation_file, opts)
    cached = _read_cache(path, key)
    if cached is not None:
        log.info("coseg: %d categories from the cache %s", len(cached), path)
        return cached
    table = {c: sorted(ids) for c, ids in sorted(index.cat_to_images.items())}
    _write_cache(path, key, table, index.cat_names)
    log.info("coseg: %d categories by the official rule (cached in %s)", len(table), path)
    return table
