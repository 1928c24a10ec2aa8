"""Spreading independent synthetic-data jobs over worker processes.

:func:`parallel_map` runs a module-level function over items in fresh interpreters; every item
draws from its own generator (:func:`.draw.item_rng`), so the output does not depend on the
number of processes.
"""

from __future__ import annotations

import os
import pickle
import subprocess
import sys
from collections.abc import Callable, Iterable
from typing import TypeVar

import numpy as np

__all__ = ["default_workers", "resolve_workers", "parallel_map"]

T = TypeVar("T")
R = TypeVar("R")


def default_workers(n_items: int, per_worker: int = 100) -> int:
    """Processes worth starting for ``n_items`` (at most the CPU count, 1 for small jobs)."""
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    return max(1, min(cpus, n_items // per_worker))


def resolve_workers(workers: int | None, n_items: int, per_worker: int = 100) -> int:
    """The processes a writer uses: ``workers`` as given (at least 1), or when ``None``
    :func:`default_workers` for ``n_items`` items."""
    return default_workers(n_items, per_worker) if workers is None else max(1, int(workers))


_WORKER_CODE = """
import importlib, pickle, sys
import cv2
cv2.setNumThreads(1)
module, name, chunk = pickle.load(sys.stdin.buffer)
fn = getattr(importlib.import_module(module), name)
results = [fn(item) for item in chunk]
sys.stdout.buffer.write(pickle.dumps(results, protocol=pickle.HIGHEST_PROTOCOL))
"""


def parallel_map(fn: Callable[[T], R], items: Iterable[T], workers: int) -> list[R]:
    """``[fn(x) for x in items]``, in order, over ``workers`` processes (1 = in this process).

    ``fn`` must be a module-level function and the items picklable. The items are split into
    ``workers`` contiguous chunks, each run by a fresh interpreter (``python -c``) that reads
    its chunk from stdin and writes the results to stdout. Fresh interpreters rather than
    ``multiprocessing``: forking a process whose OpenCV thread pool is live can deadlock, and
    ``spawn`` re-runs the caller's main script, which breaks scripts without a
    ``__main__`` guard. Start-up costs about 0.3 s per worker.
    """
    items = list(items)
    if workers <= 1 or len(items) <= 1:
        return [fn(item) for item in items]
    workers = min(workers, len(items))
    bounds = np.linspace(0, len(items), workers + 1).astype(int)
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in sys.path if p)
    env.setdefault("OMP_NUM_THREADS", "1")
    procs = []
    try:
        for a, b in zip(bounds[:-1], bounds[1:], strict=True):
            proc = subprocess.Popen(
                [sys.executable, "-c", _WORKER_CODE],
                stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=env,
            )  # fmt: skip
            procs.append(proc)
            assert proc.stdin is not None
            proc.stdin.write(pickle.dumps((fn.__module__, fn.__qualname__, items[a:b])))
            proc.stdin.close()
        results: list[R] = []
        for proc in procs:
            assert proc.stdout is not None
            data = proc.stdout.read()
            if proc.wait() != 0:
                raise RuntimeError(
                    f"a synthetic-data worker process failed (exit code {proc.returncode}); "
                    "its error is printed above"
                )
            results.extend(pickle.loads(data))  # our own child's output, not user data
        return results
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
