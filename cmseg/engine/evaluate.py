"""Folder-to-folder evaluation: pair files by name, score in parallel, merge, report.

``evaluate_folders`` is what ``cmseg evaluate`` runs for one method. A task describes its
layout and protocol with an :class:`EvalAdapter` (``tasks/<task>/evaluate.py``): how to
pair the prediction and ground-truth files, a fresh evaluator, how to read and score one pair
and how to summarise the merged evaluator. This module splits the pairs into chunks, scores
each chunk in a worker process with a fresh evaluator, and merges the evaluators' additive
states. Every missing, extra or unreadable file is collected as a one-line problem instead of
stopping at the first one, and every pair is scored whether or not ``allow_missing`` is set, so
the problems found never depend on it. It knows no task by name.
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

from cmseg.data.pairing import Pairing
from cmseg.engine.eval_adapter import EvalAdapter, Findings, Job, check_options
from cmseg.errors import CmsegError, InputError
from cmseg.logs import progress

log = logging.getLogger(__name__)


@dataclass
class MethodReport:
    """What happened while evaluating one method.

    The problem lists are the same with and without ``allow_missing``: every pair is read and
    scored either way; ``allow_missing`` only decides whether the result may be used.
    """

    name: str
    result: dict[str, Any]
    num_scored: int = 0
    missing: list[str] = field(default_factory=list)
    extra: list[str] = field(default_factory=list)
    unreadable: list[str] = field(default_factory=list)
    other: list[str] = field(default_factory=list)
    #: ``name -> count`` of what was done to score (``resized``); also ``result["notes"]``.
    notes: dict[str, int] = field(default_factory=dict)

    def problems(self) -> list[str]:
        """Every problem as ``"<path>: <reason>"``."""
        return self.missing + self.extra + self.unreadable + self.other

    def counts(self) -> str:
        """``"1 missing, 0 extra, 2 unreadable, 0 other"``."""
        return (
            f"{len(self.missing)} missing, {len(self.extra)} extra, "
            f"{len(self.unreadable)} unreadable, {len(self.other)} other"
        )


#: Problems quoted in the one-line "nothing could be scored" error.
QUOTED_PROBLEMS = 3


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
) -> tuple[Any, Findings]:
    """Worker entry point: a fresh evaluator fed with ``jobs``, and what scoring them found
    (a job whose ``score`` raised an :class:`InputError` is counted in ``skipped``)."""
    import cv2

    cv2.setNumThreads(1)  # parallelism comes from the processes; avoid oversubscription
    evaluator = adapter.new_evaluator(protocol, options)
    findings = Findings()
    for job in jobs:
        try:
            found = adapter.score(evaluator, job, protocol, allow_missing)
        except InputError as err:
            findings.problem(err)
            findings.skipped += 1
        else:
            findings.extend(found)
    return evaluator, findings


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

    Every pair is read and scored, with or without ``allow_missing``, so the problems listed
    are the same either way; each note (e.g. predictions resized to their ground truth) is
    warned about once, with its count.

    Args:
        adapter: the evaluation of a task or target (``load_evaluation("sod")`` of the tasks
            package gives it).
        pred, gt: folders in the adapter's layout (``a2d``: JSON files).
        protocol: a protocol of the task (``None``: the task's default).
        workers: processes to use (``None``: every core; 1: in this process).
        allow_missing: accept the result despite missing, extra or unreadable files.
        name: method name for reports (default: the prediction folder's name).
        options: protocol options, e.g. ``{"bound_th": 0.01}`` or ``{"threshold": 0.5}``.

    Returns:
        A :class:`MethodReport` whose ``result`` follows the JSON schema of docs/evaluation.md
        (empty when nothing was scored and there are problems to list).

    Raises:
        CmsegError: a bad protocol name, or nothing could be scored (with ``allow_missing``,
            or with no problem to list); the message quotes the first problems.
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
    report = _paired(name, pred, pairing)
    jobs = [Job(key, p, g) for key, p, g in pairing.pairs]

    workers = default_workers() if workers is None else max(1, workers)
    evaluator, findings = _run(
        adapter,
        protocol,
        options,
        jobs,
        allow_missing,
        min(workers, max(1, -(-len(jobs) // adapter.chunk_size))),
    )
    report.missing += findings.missing
    report.unreadable = findings.unreadable
    report.other += findings.other
    report.notes = {"resized": 0, **findings.notes}
    report.num_scored = len(jobs) - findings.skipped
    if report.num_scored == 0:
        if report.problems() and not allow_missing:
            return report  # the caller lists the problems and exits
        raise CmsegError(_nothing_scored(pred, len(jobs), report))
    _warn_notes(report.name, findings)
    report.result = {
        "task": adapter.name,
        "protocol": protocol,
        **adapter.summarise(evaluator, protocol),
        "notes": dict(report.notes),
    }
    return report


def _paired(name: str, pred: Path, pairing: Pairing) -> MethodReport:
    """The report of a method with the problems of its pairing (missing, extra, other)."""
    report = MethodReport(name=name, result={})
    report.missing = [
        f"{pred / key}: no prediction for {gt_path}" for key, gt_path in pairing.missing
    ]
    report.extra = [
        f"{pred_path}: no ground truth for this prediction" for _, pred_path in pairing.extra
    ]
    report.other = list(pairing.problems)
    return report


def _nothing_scored(pred: Path, num_pairs: int, report: MethodReport) -> str:
    """The one-line error when no pair could be scored: the counts and the first problems."""
    problems = report.problems()
    if not problems:
        return f"{pred}: nothing could be scored ({num_pairs} pairs, no files to pair)"
    quoted = "; ".join(problems[:QUOTED_PROBLEMS])
    more = len(problems) - QUOTED_PROBLEMS
    tail = f"; ... and {more} more" if more > 0 else ""
    return f"{pred}: nothing could be scored ({num_pairs} pairs; {report.counts()}): {quoted}{tail}"


def _warn_notes(name: str, findings: Findings) -> None:
    """One warning per note, with its count and first example."""
    for note, count in findings.notes.items():
        if count:
            log.warning(
                "%s: %d %s (e.g. %s)", name, count, findings.texts[note], findings.examples[note]
            )


def _run(
    adapter: EvalAdapter,
    protocol: str,
    options: dict[str, Any],
    jobs: list[Job],
    allow_missing: bool,
    workers: int,
) -> tuple[Any, Findings]:
    chunks = _chunks(jobs, adapter.chunk_size)
    total = adapter.new_evaluator(protocol, options)
    findings = Findings()
    bar = {"desc": f"evaluate {adapter.name}", "total": len(chunks), "unit": "chunk"}
    if workers == 1:
        results = (
            _score_chunk(adapter, protocol, options, chunk, allow_missing) for chunk in chunks
        )
        for part, found in progress(results, **bar):
            total.merge(part)
            findings.extend(found)
        return total, findings
    context = _worker_context(getattr(adapter.score, "__module__", None) or "cmseg.io")
    with ProcessPoolExecutor(max_workers=workers, mp_context=context) as pool:
        futures = [
            pool.submit(_score_chunk, adapter, protocol, options, chunk, allow_missing)
            for chunk in chunks
        ]
        # Merge in submission order, not completion order: the sums then run in the same
        # order for any number of workers, so results do not change in the last digits.
        for future in progress(futures, **bar):
            part, found = future.result()
            total.merge(part)
            findings.extend(found)
    return total, findings


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
