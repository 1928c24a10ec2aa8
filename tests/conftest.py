"""Test-session set-up shared by every test module."""

import cv2
import pytest

# OpenCV's thread pool does not survive fork(): a DataLoader worker forked from a process
# whose pool has threads can hang inside the next OpenCV call (seen in cv2.setNumThreads in a
# worker_init_fn). The xdist workers run many tests that fork, so keep OpenCV single-threaded
# here; the parallelism under test comes from processes.
cv2.setNumThreads(1)


@pytest.fixture
def one_thread():
    """One torch intra-op thread for the test: tiny forward passes and gradchecks run
    thousands of small ops, and on a small shared CPU (worse under xdist) OpenMP threads
    waiting for each other make them up to 100x slower."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture
def deny_writes_in(monkeypatch):
    """``deny_writes_in(folder)``: ``os.access`` then says ``folder`` is not writable, as for a
    folder of another user. The suite may run as root, where chmod takes nothing away."""
    import os
    from pathlib import Path

    real = os.access

    def deny(folder):
        folder = Path(folder).resolve()

        def access(path, mode, *args, **kwargs):
            if Path(path).resolve() == folder and mode & os.W_OK:
                return False
            return real(path, mode, *args, **kwargs)

        monkeypatch.setattr(os, "access", access)

    return deny


@pytest.fixture
def deny_reads_of(monkeypatch):
    """``deny_reads_of(path)``: opening ``path`` (by ``open``, pathlib, PIL or numpy) then fails
    with EACCES, as for a file of another user without read permission."""
    import builtins
    import errno
    import io
    import os
    from pathlib import Path

    real_open = builtins.open

    def deny(target):
        target = Path(target).resolve()

        def fake_open(file, *args, **kwargs):
            if isinstance(file, (str, os.PathLike)) and Path(file).resolve() == target:
                raise PermissionError(errno.EACCES, "Permission denied", os.fspath(file))
            return real_open(file, *args, **kwargs)

        monkeypatch.setattr(builtins, "open", fake_open)
        monkeypatch.setattr(io, "open", fake_open)  # pathlib opens through io.open

    return deny
