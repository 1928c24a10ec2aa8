"""Test-session set-up shared by every test module."""

import cv2

# OpenCV's thread pool does not survive fork(): a DataLoader worker forked from a process
# whose pool has threads can hang inside the next OpenCV call (seen in cv2.setNumThreads in a
# worker_init_fn). The xdist workers run many tests that fork, so keep OpenCV single-threaded
# here; the parallelism under test comes from processes.
cv2.setNumThreads(1)
