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
