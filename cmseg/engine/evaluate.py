"""Folder-to-folder evaluation: pair files by name, score in parallel, merge, report.

``evaluate_folders`` is what ``cmseg evaluate`` runs for one method. A task describes its
layout and protocol with an :class:`EvalAdapter` (``tasks/<task>/evaluate.py``): how to
pair the prediction and ground-truth files, a fresh evaluator, how to read and score one pair
and how to summarise the merged evaluator. This module splits the pairs into chunks, scores
each chunk in a worker process with a fresh evaluator, and merges the evaluators' additive
states. Every missing, extra or unreadable file is collected as a one-line problem instead of
stopping at the first one. It knows no task by name.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from multiprocessing import get_context
from pathlib import Path
from typing import Any

from cmseg.engine.eval_adapter import EvalAdapter, Job, check_options
from cmseg.errors import CmsegError, InputError
from cmseg.logs import progress

log = logging.getLogger(__name__)


@dataclass
class MethodReport:
    """What happened while evaluating one method."""

    name: str
    result: dict[str, Any]
    num_scored: int = 0
    missing: list[str] = field(default_factory=list)
    extra: list[str] = field(default_factory=list)
    unreadable: list[str] = field(default_factory=list)
    other: list[str] = field(default_factory=list)

    def problems(self) -> list[str]:
        """Every problem as ``"<path>: <reason>"``."""
        return self.missing + self.extra + self.unreadable + self.other


def default_workers() -> int:
    """Cores this process may use (respects CPU affinity, e.g. under taskset or containers)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


def _score_chunk(
    adapter: EvalAdapter,
    protocol: str,
    options: dict[str, Any],
    jobs: Sequence[Job],
    allow_missing: bool,
) -> tuple[Any, list[str], list[str]]:
    """Worker entry point: a fresh evaluator fed with ``jobs``.

    Returns the evaluator, the jobs that could not be read (``"<path>: <reason>"``) and notes
    on what ``allow_missing`` tolerated inside a job (e.g. frames scored as empty).
    """
    import cv2

    cv2.setNumThreads(1)  # parallelism comes from the processes; avoid oversubscription
    evaluator = adapter.new_evaluator(protocol, options)
    unreadable: list[str] = []
    notes: list[str] = []
    for job in jobs:
        try:
            notes += adapter.score(evaluator, job, protocol, allow_missing)
        except InputError as err:
            unreadable.append(str(err))
    return evaluator, unreadable, notes


def _chunks(jobs: list[Job], size: int) -> list[list[Job]]:
    """Fixed-size chunks, independent of the number of workers: evaluators are merged chunk by
    chunk in order, so any worker count adds the same numbers in the same order."""
    return [jobs[i : i + size] for i in range(0, len(jobs), size)]


def evaluate_folders(
    adapter: EvalAdapter,
    pred: str | Path,
    gt: str | Path,
    *,
    protocol: str | None = None,
    workers: int | None = None,
    allow_missing: bool = False,
    name: str | None = None,
    options: dict[str, Any] | None = None,
) -> MethodReport:
    """Score the predictions in ``pred`` against the ground truth in ``gt``.

    Args:
        adapter: the evaluation of a task or target (``load_evaluation("sod")`` of the tasks
            package gives it).
        pred, gt: folders in the adapter's layout (``a2d``: JSON files).
        protocol: a protocol of the task (``None``: the task's default).
        workers: processes to use (``None``: every core; 1: in this process).
        allow_missing: score what exists instead of failing on missing, extra or unreadable files.
        name: method name for reports (default: the prediction folder's name).
        options: protocol options, e.g. ``{"bound_th": 0.01}`` or ``{"threshold": 0.5}``.

    Returns:
        A :class:`MethodReport` whose ``result`` follows the JSON schema of docs/evaluation.md.

    Raises:
        CmsegError: on problems (unless ``allow_missing``) or a bad protocol name.
    """
    pred, gt = Path(pred), Path(gt)
    protocol = protocol or adapter.protocol_for(gt)
    if protocol not in adapter.protocols:
        raise CmsegError(
            f"unknown protocol {protocol!r} for {adapter.name}; choose one of {', '.join(adapter.protocols)}"
        )
    options = dict(options or {})
    check_options(options, adapter)
    name = name or pred.name or str(pred)

    pairing = adapter.collect(pred, gt, protocol)
    report = MethodReport(name=name, result={})
    report.missing = [
        f"{pred / key}: no prediction for {gt_path}" for key, gt_path in pairing.missing
    ]
    report.extra = [
        f"{pred_path}: no ground truth for this prediction" for _, pred_path in pairing.extra
    ]
    report.other = list(pairing.problems)
    jobs = [Job(key, p, g) for key, p, g in pairing.pairs]
    if report.problems() and not allow_missing:
        return report  # the caller lists the problems and exits; nothing is scored

    workers = default_workers() if workers is None else max(1, workers)
    evaluator, unreadable, notes = _run(
        adapter,
        protocol,
        options,
        jobs,
        allow_missing,
        min(workers, max(1, -(-len(jobs) // adapter.chunk_size))),
    )
    report.unreadable = unreadable
    report.other += notes
    report.num_scored = len(jobs) - len(unreadable)
    if report.num_scored == 0:
        raise CmsegError(
            f"{pred}: nothing could be scored ({len(jobs)} pairs, {len(report.problems())} problems)"
        )
    report.result = {
        "task": adapter.name,
        "protocol": protocol,
        **adapter.summarise(evaluator, protocol),
    }
    return report


def _run(
    adapter: EvalAdapter,
    protocol: str,
    options: dict[str, Any],
    jobs: list[Job],
    allow_missing: bool,
    workers: int,
) -> tuple[Any, list[str], list[str]]:
    chunks = _chunks(jobs, adapter.chunk_size)
    total = adapter.new_evaluator(protocol, options)
    unreadable: list[str] = []
    notes: list[str] = []
    bar = {"desc": f"evaluate {adapter.name}", "total": len(chunks), "unit": "chunk"}
    if workers == 1:
        results = (
            _score_chunk(adapter, protocol, options, chunk, allow_missing) for chunk in chunks
        )
        for part, bad, tolerated in progress(results, **bar):
            total.merge(part)
            unreadable += bad
            notes += tolerated
        return total, unreadable, notes
    context = _worker_context(getattr(adapter.score, "__module__", None) or "cmseg.io")
    with ProcessPoolExecutor(max_workers=workers, mp_context=context) as pool:
        futures = [
            pool.submit(_score_chunk, adapter, protocol, options, chunk, allow_missing)
            for chunk in chunks
        ]
        # Merge in submission order, not completion order: the sums then run in the same
        # order for any number of workers, so results do not change in the last digits.
        for future in progress(futures, **bar):
            part, bad, tolerated = future.result()
            total.merge(part)
            unreadable += bad
            notes += tolerated
    return total, unreadable, notes


def _worker_context(adapter_module: str) -> Any:
    """A start method that is safe in a process that already runs threads.

    Plain ``fork`` copies locks held by other threads (OpenMP, OpenCV's pool, torch) and can
    deadlock the children, e.g. when called from a program that has imported torch. A fork
    server is a fresh single-threaded process; it preloads the metric modules once, so each
    worker starts in milliseconds. ``spawn`` where fork servers do not exist (Windows, macOS
    before 3.14 defaults aside).
    """
    import multiprocessing
    import multiprocessing.forkserver

    if "forkserver" not in multiprocessing.get_all_start_methods():
        return get_context("spawn")
    context = get_context("forkserver")
    context.set_forkserver_preload(
        ["numpy", "cv2", adapter_module, "cmseg.metrics.sod", "cmseg.metrics.vos"]
    )
    # The workers inherit the server's environment. One BLAS/OpenMP thread each: with N
    # workers on N cores, each worker's own thread pool would oversubscribe the cores (a
    # measured 2.7x slow-down of every SOD chunk with two workers on two cores).
    with _single_threaded_environment():
        multiprocessing.forkserver.ensure_running()
    return context


@contextlib.contextmanager
def _single_threaded_environment() -> Iterator[None]:
    """Set the thread-count variables of OpenBLAS, MKL and OpenMP to 1 for the block."""
    names = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")
    saved = {name: os.environ.get(name) for name in names}
    os.environ.update({name: "1" for name in names})
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
