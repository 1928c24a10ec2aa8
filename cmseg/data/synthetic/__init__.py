"""The built-in synthetic benchmark (DESIGN §7): seeded procedural data in each task's real
on-disk layout, so that the same readers serve it and the real datasets.

One entry point, :func:`write_synthetic`, and one writer per task in :data:`SYNTH_WRITERS`:

========  ==========================================  ===========================
task      layout                                      module
========  ==========================================  ===========================
sod       SPNet/XMSNet ``<set>/{RGB,depth|T,GT}``     :mod:`.sod`
coseg     SSNM ``<split>/{image,groundtruth}/<cls>``  :mod:`.coseg`
ris       REFER ``refcoco/refs(unc).p`` + COCO        :mod:`.ris`
rvos      Ref-YouTube-VOS (or MeViS)                  :mod:`.rvos`
fsrvos    Mini-Ref-YouTube-VOS                        :mod:`.fsrvos`
========  ==========================================  ===========================

:func:`write_corrupted_set` (from :mod:`.sod`) copies a written SOD set with its aux maps
corrupted (noise, holes, blur, shift, missing maps), for robustness demos.

Every run also writes ``<out>/cmseg_synth.json``: the task, ``n``, ``size``, ``seed``, the
options and the writer's counts (the summary :func:`write_synthetic` returns, minus timing).

Determinism: every item (scene, group, image, clip) draws from its own generator seeded by
``(seed, task, index)`` (:func:`.draw.item_rng`); the same arguments write byte-identical
files whatever the number of worker processes.
"""

from __future__ import annotations

import inspect
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from cmseg.data.synthetic import coseg, fsrvos, ris, rvos, sod
from cmseg.data.synthetic.sod import write_corrupted_set
from cmseg.errors import ConfigError, InputError
from cmseg.fs import check_output_dir, removed_if_failed
from cmseg.io import remove_entries, write_json

__all__ = [
    "SYNTH_WRITERS",
    "OWNED_PATHS",
    "MARKER",
    "write_synthetic",
    "task_options",
    "write_corrupted_set",
]

#: task -> writer ``fn(out, n, size, seed, **options) -> dict``.
SYNTH_WRITERS: dict[str, Callable[..., dict[str, Any]]] = {
    "sod": sod.write_sod,
    "coseg": coseg.write_coseg,
    "ris": ris.write_ris,
    "rvos": rvos.write_rvos,
    "fsrvos": fsrvos.write_fsrvos,
}

#: Top-level entries each writer creates under ``out`` (removed by ``overwrite=True``).
OWNED_PATHS: dict[str, tuple[str, ...]] = {
    "sod": ("train", "test"),
    "coseg": ("train", "test"),
    "ris": ("refcoco", "images"),
    "rvos": ("train", "valid", "valid_u", "meta_expressions"),
    "fsrvos": ("train", "meta_expressions", "categories.json"),
}

#: Name of the file that records what was generated.
MARKER = "cmseg_synth.json"

MIN_SIZE, MAX_SIZE = 32, 4096


def task_options(task: str) -> dict[str, Any]:
    """The options (keyword-only arguments) of a task's writer with their defaults."""
    sig = inspect.signature(SYNTH_WRITERS[task])
    return {name: p.default for name, p in sig.parameters.items() if p.kind is p.KEYWORD_ONLY}


def write_synthetic(
    task: str,
    out: Path,
    n: int | None = None,
    size: int = 256,
    seed: int = 0,
    *,
    overwrite: bool = False,
    **options: Any,
) -> dict[str, Any]:
    """Write the synthetic benchmark of ``task`` under ``out``.

    Args:
        task: ``sod``, ``coseg``, ``ris``, ``rvos`` or ``fsrvos``.
        out: output folder; created. It must be empty unless ``overwrite`` is set.
        n: number of items (sod: scenes; coseg: groups of 5 images; ris: images; rvos and
            fsrvos: videos); ``None`` = the task's default.
        size: image side in pixels (square images), 32..4096.
        seed: non-negative integer; the same seed writes the same files.
        overwrite: allow a non-empty ``out``. When ``out`` holds an earlier synthetic run
            (its ``cmseg_synth.json``), the folders that run wrote are removed first, so no
            stale file survives; other content is left alone.
        **options: task options, see :func:`task_options` and docs/synthetic.md.

    Returns:
        A summary: ``task``, ``out``, ``n``, ``size``, ``seed``, ``options``, the writer's
        counts, and ``seconds``.

    Raises:
        ConfigError: unknown task or option, or an invalid value.
        InputError: ``out`` cannot be written (a file on the way, no permission, a read-only
            or full disk; :func:`cmseg.fs.check_output_dir`), or is a non-empty folder
            without ``overwrite``. A run that fails removes the folder it created.
    """
    known = _check_arguments(task, n, size, seed, options)
    out = check_output_dir(out)  # a file on the way, no permission: before anything is drawn
    start = time.perf_counter()
    with removed_if_failed(out):  # a dataset half written into a new folder is taken away
        _prepare_folder(out, overwrite)
        try:
            counts = SYNTH_WRITERS[task](out, n, size, seed, **options)
        except ValueError as err:
            raise ConfigError(f"data synth {task}: {err}") from None
    seconds = time.perf_counter() - start

    resolved = {**known, **options}
    resolved.pop("workers", None)  # does not change the output
    summary: dict[str, Any] = {
        "task": task,
        "out": str(out),
        "n": counts.pop("n"),
        "size": size,
        "seed": seed,
        "options": resolved,
        **counts,
    }
    marker = {k: v for k, v in summary.items() if k not in ("out", "workers")}
    write_json(out / MARKER, marker)
    summary["seconds"] = round(seconds, 3)
    return summary


def _check_arguments(
    task: str, n: int | None, size: int, seed: int, options: dict[str, Any]
) -> dict[str, Any]:
    """Validate :func:`write_synthetic`'s arguments; returns the task's known options with
    their defaults (:func:`task_options`). Raises :class:`ConfigError` naming the bad one."""
    if task not in SYNTH_WRITERS:
        raise ConfigError(f"unknown task {task!r}; choose from {', '.join(SYNTH_WRITERS)}")
    known = task_options(task)
    unknown = sorted(set(options) - set(known))
    if unknown:
        raise ConfigError(
            f"unknown option(s) for 'data synth {task}': {', '.join(unknown)}; "
            f"known: {', '.join(known) or '(none)'}"
        )
    # bool is an int subclass: refuse True/False where a count is meant
    if n is not None and (not isinstance(n, int) or isinstance(n, bool) or n < 1):
        raise ConfigError(f"n must be a positive integer, got {n!r}")
    if not isinstance(size, int) or isinstance(size, bool) or not MIN_SIZE <= size <= MAX_SIZE:
        raise ConfigError(f"size must be an integer in [{MIN_SIZE}, {MAX_SIZE}], got {size!r}")
    if not isinstance(seed, int) or isinstance(seed, bool) or seed < 0:
        raise ConfigError(f"seed must be a non-negative integer, got {seed!r}")
    return known


def _prepare_folder(out: Path, overwrite: bool) -> None:
    """Create ``out``; it must be empty unless ``overwrite``, and then the entries an earlier
    synthetic run wrote (any task's :data:`OWNED_PATHS`, and the marker) are removed first.
    Raises :class:`InputError` for a non-empty folder without ``overwrite``."""
    if out.is_dir() and any(out.iterdir()):
        if not overwrite:
            raise InputError(
                out,
                "folder is not empty; choose an empty or new folder, or replace what an earlier "
                "synthetic run wrote there with --overwrite (overwrite=True in Python)",
            )
        if (out / MARKER).is_file():
            remove_entries(out, sorted(set().union(*OWNED_PATHS.values()) | {MARKER}))
    out.mkdir(parents=True, exist_ok=True)
