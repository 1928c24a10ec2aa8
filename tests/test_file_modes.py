"""Every kind of file cmseg writes gets the mode an ordinary write gives under the umask.

``tempfile.mkstemp`` / ``mkdtemp`` create 0600 / 0700: atomic writes built on them left every
output (maps, checkpoints, results, plots, synthetic data) unreadable to other users.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

import numpy as np
import pytest

from cmseg import fs, io

pytestmark = pytest.mark.skipif(os.name != "posix", reason="POSIX file modes")

#: umask -> (file mode, folder mode) an ordinary open()/mkdir() gives under it.
UMASKS = {0o022: (0o644, 0o755), 0o027: (0o640, 0o750), 0o077: (0o600, 0o700)}


@pytest.fixture(params=sorted(UMASKS), ids=lambda m: f"umask{m:03o}")
def umask(request):
    """Run the test under this umask; yields ``(file mode, folder mode)``."""
    old = os.umask(request.param)
    try:
        yield UMASKS[request.param]
    finally:
        os.umask(old)


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def assert_tree_modes(root: Path, file_mode: int, dir_mode: int) -> None:
    """Every file and folder under ``root`` (itself included) has the ordinary mode."""
    wrong = [
        f"{p.relative_to(root)}: {mode(p):04o}"
        for p in [root, *root.rglob("*")]
        if mode(p) != (dir_mode if p.is_dir() else file_mode)
    ]
    assert wrong == [], f"expected files {file_mode:04o}, folders {dir_mode:04o}"


def test_the_io_writers(tmp_path, umask):
    file_mode, dir_mode = umask
    io.write_png(tmp_path / "new" / "m.png", np.ones((4, 4), bool))
    io.write_json(tmp_path / "r.json", {"a": 1})
    io.write_text(tmp_path / "t.csv", "a,b\n")
    with io.atomic_open(tmp_path / "b.bin", "wb") as handle:
        handle.write(b"x")
    for name in ("new/m.png", "r.json", "t.csv", "b.bin"):
        assert mode(tmp_path / name) == file_mode, name
    assert mode(tmp_path / "new") == dir_mode


def test_a_replaced_file_gets_the_ordinary_mode_too(tmp_path, umask):
    target = tmp_path / "r.json"
    target.write_text("{}")
    target.chmod(0o600)  # e.g. written by an earlier cmseg
    io.write_json(target, {"a": 1})
    assert mode(target) == umask[0]


def test_config_plots_and_synthetic_files(tmp_path, umask):
    from cmseg.config import RunConfig, save_config
    from cmseg.data.synthetic import files
    from cmseg.viz import plot_sod_curves

    file_mode, _ = umask
    save_config(RunConfig(), tmp_path / "config.yaml")
    curve = {"precision": [1.0, 0.5], "recall": [0.1, 1.0], "fm": [0.2, 0.6],
             "thresholds": [0, 1]}  # fmt: skip
    written = plot_sod_curves({"m": curve}, tmp_path / "plots")
    files.write_png_fast(tmp_path / "s.png", np.zeros((4, 4), np.uint8))
    files.write_jpeg(tmp_path / "s.jpg", np.zeros((4, 4, 3), np.uint8))
    for path in [tmp_path / "config.yaml", *written, tmp_path / "s.png", tmp_path / "s.jpg"]:
        assert mode(path) == file_mode, path.name


def test_a_whole_synthetic_dataset(tmp_path, umask):
    from cmseg.data.synthetic import write_synthetic

    out = tmp_path / "synth"
    write_synthetic("coseg", out, n=4, size=48, seed=0, classes=2)
    assert_tree_modes(out, *umask)


def test_checkpoint_folders_and_files(tmp_path, umask):
    import torch

    from cmseg.engine.checkpoint import save_checkpoint

    weights = {"w": torch.zeros(2, 2)}
    run = tmp_path / "run"
    save_checkpoint(run / "last", weights, step=1, resume_state={"step": 1})
    save_checkpoint(run / "last", weights, step=2, resume_state={"step": 2})  # replaced
    save_checkpoint(run / "best", weights, step=2)
    assert_tree_modes(run, *umask)


def test_backbone_weights_file(tmp_path, umask):
    pytest.importorskip("timm")
    from cmseg.models.backbones import create_feature_pyramid, save_backbone_weights

    name = "resnet18"
    pyramid = create_feature_pyramid(name)
    save_backbone_weights(pyramid, name, tmp_path / "b.safetensors")
    assert mode(tmp_path / "b.safetensors") == umask[0]


def test_temporary_names_never_collide(tmp_path):
    fds = [fs.temp_file(tmp_path, "x") for _ in range(50)]
    for fd, _ in fds:
        os.close(fd)
    assert len({p for _, p in fds}) == 50
    assert len({fs.temp_dir(tmp_path, "d-") for _ in range(20)}) == 20
