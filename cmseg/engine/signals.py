"""Stopping cleanly on SIGTERM and SIGINT.

SIGTERM is what SLURM, Kubernetes and torchrun's shutdown send before they kill a job; SIGINT
is Ctrl-C. Training catches the first of either with :class:`StopOnSignals`: the step in
progress finishes, a resumable checkpoint is written at that step boundary, and
:class:`Interrupted` tells the command line how to continue (exit 143 for SIGTERM, 130 for
SIGINT). A second signal acts as it always does (Ctrl-C twice stops at once).

Every other command gets :func:`raise_on_sigterm`: SIGTERM raises :class:`Interrupted` in the
main thread, so ``finally`` blocks run and no temporary file is left behind; the atomic writers
(``cmseg.io``) never leave a half-written output.

Torch-free.
"""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Iterator
from pathlib import Path
from types import FrameType

__all__ = ["Interrupted", "StopOnSignals", "raise_on_sigterm", "exit_code"]

#: The signals that stop training at the next step boundary.
STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)


def exit_code(signum: int) -> int:
    """The shell's exit status of a process ended by ``signum`` (128 + signum: 143, 130)."""
    return 128 + int(signum)


class Interrupted(BaseException):
    """The run stopped on a signal (a :class:`BaseException`, like ``KeyboardInterrupt``, so
    that ``except Exception`` in user code does not swallow it).

    Attributes:
        signum: the signal.
        checkpoint: the resumable checkpoint written before stopping (training), or None.
        step: the optimizer steps done (training), or None.
    """

    def __init__(
        self, signum: int, checkpoint: Path | None = None, step: int | None = None
    ) -> None:
        self.signum = int(signum)
        self.checkpoint = checkpoint
        self.step = step
        self.hint = ""  # how to continue, added by the command that knows its own command line
        name = signal.Signals(self.signum).name
        where = f" at step {step}" if step is not None else ""
        super().__init__(f"stopped by {name}{where}")

    @property
    def exit_code(self) -> int:
        return exit_code(self.signum)


class StopOnSignals:
    """A context that records the first SIGTERM / SIGINT instead of dying of it.

    Use ``stop.signum`` (None until a signal came) at safe points. Handlers can only be
    installed from the main thread; elsewhere (a training started from a worker thread) the
    context does nothing and the default behaviour stays.
    """

    def __init__(self) -> None:
        self.signum: int | None = None
        self._previous: dict[int, object] = {}

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        self.signum = signum
        self._restore()  # a second signal acts as usual (Ctrl-C twice: stop now)

    def _restore(self) -> None:
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)  # type: ignore[arg-type]
        self._previous = {}

    def install(self) -> StopOnSignals:
        """Catch the signals from now on (until :meth:`restore`); returns itself."""
        if threading.current_thread() is threading.main_thread():
            for signum in STOP_SIGNALS:
                self._previous[signum] = signal.signal(signum, self._handle)
        return self

    def restore(self) -> None:
        """Put the previous handlers back (a signal that already came stays recorded)."""
        self._restore()

    def __enter__(self) -> StopOnSignals:
        return self.install()

    def __exit__(self, *exc: object) -> None:
        self.restore()


def _raise_interrupted(signum: int, frame: FrameType | None) -> None:
    raise Interrupted(signum)


@contextlib.contextmanager
def raise_on_sigterm() -> Iterator[None]:
    """Within the block, SIGTERM raises :class:`Interrupted` in the main thread (as Ctrl-C
    raises ``KeyboardInterrupt``), so that clean-up code runs."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGTERM, _raise_interrupted)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)
