"""``cmseg data check TASK --root DIR``: walk a dataset and list every problem at once.

The layout is recognised from what ``DIR`` holds (see ``docs/datasets.md``); indexing reuses
the readers' own code in a collecting mode, then every file a reader would open is opened:

* missing partner files (an RGB image without depth or GT, an image without its mask, a frame
  without its annotation), and files nobody refers to;
* unreadable, truncated or empty images, masks, ``.mat``/``.h5``/pickle/JSON files;
* size mismatches between an image, its depth/thermal map and its mask, between the frames of
  a video, and between an image and the height/width its annotation file states;
* masks that must be binary but are not (lossless masks of ``coseg`` and of the RIS JSON-lines
  format; JPEG masks are exempt, their compression makes grey edges; SOD GT may be soft) and
  masks that must not be empty but are (SOD GT, referring masks, a video object that appears in
  no frame);
* JSON, CSV and pickle files without the keys or columns their format requires;
* COCO RLEs whose size disagrees with their image, or whose runs do not add up;
* ids that would escape the dataset root (``../x``, absolute paths);
* and, for the pickles, anything but builtin containers and scalars.

Nothing here imports torch. Problems are one-line ``"<path>: <reason>"`` strings.

One module per task family (:mod:`.sod`, :mod:`.coseg`, :mod:`.ris`, :mod:`.rvos`,
:mod:`.fsrvos`; ``fsrvos`` reuses the per-video checks of ``rvos``) and the helpers they share
(:mod:`.common`).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import IO

from cmseg.data.check.common import CheckResult, dedupe
from cmseg.data.check.coseg import check_coseg
from cmseg.data.check.fsrvos import check_fsrvos
from cmseg.data.check.ris import check_ris
from cmseg.data.check.rvos import check_rvos
from cmseg.data.check.sod import check_sod
from cmseg.errors import CmsegError

__all__ = ["CheckResult", "check_dataset", "inspect_dataset", "format_summary", "run_check"]

#: task -> checker ``fn(root, result, workers)``: recognises the layout and fills ``result`` in
#: place; a :class:`~cmseg.errors.CmsegError` it raises becomes one more problem line.
_CHECKERS: dict[str, Callable[[Path, CheckResult, int], None]] = {
    "sod": check_sod,
    "coseg": check_coseg,
    "ris": check_ris,
    "rvos": check_rvos,
    "fsrvos": check_fsrvos,
}


def check_dataset(
    task: str, root: str | os.PathLike[str], *, workers: int | None = None
) -> list[str]:
    """Every problem of the dataset at ``root`` for ``task``, as ``"<path>: <reason>"`` lines.

    An empty list means the dataset is clean. See :func:`inspect_dataset` for the counts.
    """
    return inspect_dataset(task, root, workers=workers).problems


def inspect_dataset(
    task: str, root: str | os.PathLike[str], *, workers: int | None = None
) -> CheckResult:
    """Recognise the layout of ``root`` for ``task`` and check every file of it.

    Args:
        task: ``sod``, ``coseg``, ``ris``, ``rvos`` or ``fsrvos``.
        root: the dataset folder (for ``ris`` also a ``.jsonl`` file).
        workers: threads decoding files (default: the number of CPUs, at most 8).
    """
    if task not in _CHECKERS:
        raise ValueError(f"unknown task {task!r}; expected one of {', '.join(_CHECKERS)}")
    root = Path(root)
    result = CheckResult(task, root)
    if not root.exists():
        result.problems.append(f"{root}: dataset root does not exist")
        return result
    pool_size = workers or min(8, os.cpu_count() or 1)
    try:
        _CHECKERS[task](root, result, pool_size)
    except CmsegError as err:
        result.problems.append(str(err))
    result.problems = dedupe(result.problems)
    return result


def format_summary(result: CheckResult | Sequence[str]) -> str:
    """The closing line of ``cmseg data check``."""
    if isinstance(result, CheckResult):
        n = len(result.problems)
        head = (
            f"{result.task}: {result.items} {result.item_kind} checked in {result.root} "
            f"({result.layout})"
        )
    else:
        n = len(result)
        head = "check finished"
    if n == 0:
        return f"{head}: no problem found"
    return f"{head}: {n} problem{'s' if n != 1 else ''} found"


def run_check(
    task: str,
    root: str | os.PathLike[str],
    *,
    out: IO[str] | None = None,
    workers: int | None = None,
) -> int:
    """Print every problem, any notes, then the summary line; return 0 when clean, 2 otherwise."""
    out = out or sys.stdout
    result = inspect_dataset(task, root, workers=workers)
    for line in result.problems:
        print(line, file=out)
    for note in result.notes:
        print(f"note: {note}", file=out)
    print(format_summary(result), file=out)
    return 0 if not result.problems else 2
