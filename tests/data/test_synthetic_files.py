"""Writing and worker processes of the synthetic generators (``files``, ``processes``)."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from cmseg.data.synthetic import draw, files, processes


def test_draw_keeps_the_writing_and_process_names():
    for name in files.__all__:
        assert getattr(draw, name) is getattr(files, name)
    for name in ("default_workers", "parallel_map"):
        assert getattr(draw, name) is getattr(processes, name)


def test_voc_palette_first_colours():
    palette = files.voc_palette()
    assert palette.shape == (256, 3) and palette.dtype == np.uint8
    assert palette[:4].tolist() == [[0, 0, 0], [128, 0, 0], [0, 128, 0], [128, 128, 0]]


def test_png_round_trip_and_atomic_write(tmp_path):
    grey = np.arange(12, dtype=np.uint8).reshape(3, 4)
    path = tmp_path / "sub" / "a.png"
    files.write_png_fast(path, grey)
    np.testing.assert_array_equal(cv2.imread(str(path), cv2.IMREAD_UNCHANGED), grey)
    files.write_png_fast(path, grey > 5)  # bool is written 0/255
    assert set(np.unique(cv2.imread(str(path), cv2.IMREAD_UNCHANGED))) == {0, 255}
    assert [p.name for p in path.parent.iterdir()] == ["a.png"]  # no temporary file left
    with pytest.raises(ValueError, match="2-D uint8/uint16"):
        files.encode_png(np.zeros((2, 2, 3), np.uint8))


def test_resolve_workers():
    assert processes.resolve_workers(3, 10) == 3
    assert processes.resolve_workers(0, 10) == 1
    assert processes.resolve_workers(None, 10) == processes.default_workers(10) == 1
    assert processes.resolve_workers(None, 10**6, per_worker=1) >= 1


def test_parallel_map_in_process_keeps_order():
    assert processes.parallel_map(abs, [-3, 2, -1], 1) == [3, 2, 1]
