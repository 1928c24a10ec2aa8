"""Filesystem errors are the user's: one line naming the path and the reason.

The suite runs as root in CI containers, where chmod does not take a permission away; there a
refusal is made by monkeypatching (``os.access``, ``open``, ``os.statvfs``) or by a file in
place of a folder, and the real chmod tests run only for other users.
"""

from __future__ import annotations

import errno
import os
from pathlib import Path

import numpy as np
import pytest

from cmseg import fs, io
from cmseg.cli import main
from cmseg.errors import InputError

ROOT = hasattr(os, "geteuid") and os.geteuid() == 0
needs_non_root = pytest.mark.skipif(ROOT, reason="root reads and writes despite chmod")


# --------------------------------------------------------------------------------------------
# Output checks


def test_an_output_folder_under_a_file(tmp_path):
    (tmp_path / "f").write_text("x")
    with pytest.raises(InputError, match=r"/sub: .*/f is a file, not a folder$"):
        fs.check_output_dir(tmp_path / "f" / "sub")
    with pytest.raises(InputError, match=r"/f: is a file, not a folder$"):
        fs.check_output_dir(tmp_path / "f")
    with pytest.raises(InputError, match=r"/f/x.json: .*/f is a file, not a folder$"):
        fs.check_output_file(tmp_path / "f" / "x.json")
    with pytest.raises(InputError, match="is a folder, expected a file name"):
        fs.check_output_file(tmp_path)
    fs.check_output_dir(tmp_path / "new" / "deeper")  # creatable: fine, and nothing created
    fs.check_output_file(tmp_path / "new" / "r.json")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["f"]


def test_an_output_folder_without_write_permission(deny_writes_in, tmp_path, monkeypatch):
    locked = tmp_path / "locked"
    locked.mkdir()
    deny_writes_in(locked)
    with pytest.raises(InputError, match=r"/locked: permission denied: cannot write in this"):
        fs.check_output_dir(locked)
    with pytest.raises(InputError, match=r"/locked/a/b: permission denied: cannot write in .*"):
        fs.check_output_dir(locked / "a" / "b")
    with pytest.raises(InputError, match=r"/locked/r.json: permission denied"):
        fs.check_output_file(locked / "r.json")


@needs_non_root
def test_an_output_folder_without_write_permission_for_real(tmp_path):
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o555)
    try:
        with pytest.raises(InputError, match="permission denied"):
            fs.check_output_dir(locked / "out")
        with pytest.raises(InputError, match="cannot write: permission denied"):
            io.write_json(locked / "r.json", {})
    finally:
        locked.chmod(0o755)


class _Stats:
    def __init__(self, flag: int = 0, blocks: int = 100, free: int = 10) -> None:
        self.f_flag, self.f_blocks, self.f_bfree, self.f_bavail = flag, blocks, free, free


def test_a_read_only_or_full_file_system(tmp_path, monkeypatch):
    monkeypatch.setattr(os, "statvfs", lambda path: _Stats(flag=os.ST_RDONLY))
    with pytest.raises(InputError, match=r"/out: read-only file system \(.*\)$"):
        fs.check_output_dir(tmp_path / "out")
    monkeypatch.setattr(os, "statvfs", lambda path: _Stats(free=0))
    with pytest.raises(InputError, match=r": no space left on device$"):
        fs.check_output_dir(tmp_path)
    monkeypatch.setattr(os, "statvfs", lambda path: _Stats(blocks=0, free=0))  # no sizes known
    fs.check_output_dir(tmp_path)


# --------------------------------------------------------------------------------------------
# Writes


def test_a_write_under_a_file_names_the_path_and_the_file(tmp_path):
    (tmp_path / "f").write_text("x")
    with pytest.raises(InputError, match=r"/f/sub/r.json: cannot write: .*/f is a file, not a"):
        io.write_json(tmp_path / "f" / "sub" / "r.json", {})


def test_a_refused_or_full_write_is_one_input_error(tmp_path, monkeypatch):
    def refused(folder, name):
        raise PermissionError(errno.EACCES, "Permission denied", str(Path(folder) / name))

    monkeypatch.setattr(io, "temp_file", refused)
    with pytest.raises(InputError, match=r"/r.json: cannot write: permission denied$"):
        io.write_json(tmp_path / "r.json", {})
    monkeypatch.undo()

    def full(fd):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "fsync", full)
    with pytest.raises(InputError, match=r"/m.png: cannot write: no space left on device$"):
        io.write_png(tmp_path / "m.png", np.zeros((2, 2), bool))
    assert list(tmp_path.iterdir()) == []  # the temporary file is gone


# --------------------------------------------------------------------------------------------
# Reads


@pytest.mark.parametrize(
    ("reader", "name"),
    [
        (io.read_image, "a.png"),
        (io.read_mask, "a.png"),
        (io.read_grey, "a.png"),
        (io.read_index_mask, "a.png"),
        (io.read_aux, "a.png"),
        (io.read_aux, "a.npy"),
        (io.read_text, "a.txt"),
        (io.read_json, "a.json"),
    ],
)
def test_an_unreadable_input_says_permission_denied(
    deny_reads_of, tmp_path, monkeypatch, reader, name
):
    path = tmp_path / name
    if name.endswith(".png"):
        io.write_png(path, np.zeros((4, 4), np.uint8))
    elif name.endswith(".npy"):
        np.save(path, np.zeros((4, 4), np.float32))
    else:
        path.write_text("{}")
    deny_reads_of(path)
    with pytest.raises(InputError) as caught:
        reader(path)
    assert str(caught.value) == f"{path}: permission denied"


def _other_readers():
    """``(name, write(path), read(path))`` of the readers outside cmseg.io."""

    def write_pickle(path):
        import pickle

        path.write_bytes(pickle.dumps({"a": 1}))

    def write_weights(path):
        import torch
        from safetensors.torch import save_file

        save_file({"w": torch.zeros(2)}, str(path))

    def write_mat(path):
        import scipy.io

        scipy.io.savemat(str(path), {"x": np.zeros(2)})

    def read_yaml(path):
        from cmseg.config import RunConfig, load_config

        load_config(RunConfig, path)

    def read_vocabulary(path):
        from cmseg.models.text import Vocabulary

        Vocabulary.from_file(path)

    def read_weights(path):
        from cmseg.models.backbones import read_state_dict

        read_state_dict(path)

    def read_mat(path):
        from cmseg.data.formats import load_mat_variable

        load_mat_variable(path, "x")

    def read_pickle(path):
        from cmseg.data.safe_pickle import load_pickle

        load_pickle(path)

    def read_video(path):
        from cmseg.data.formats.a2d import read_video_frames

        read_video_frames(path, [0])

    text = lambda content: lambda path: path.write_text(content)  # noqa: E731
    cases = [
        ("c.yaml", text("task: sod\n"), read_yaml),
        ("v.txt", text("a\nb\n"), read_vocabulary),
        ("w.safetensors", write_weights, read_weights),
        ("m.mat", write_mat, read_mat),
        ("r.p", write_pickle, read_pickle),
        ("v.mp4", text("not really a video"), read_video),
    ]
    return [pytest.param(*case, id=case[0]) for case in cases]


@pytest.mark.parametrize(("name", "write", "read"), _other_readers())
def test_other_readers_say_permission_denied(
    deny_reads_of, tmp_path, monkeypatch, name, write, read
):
    path = tmp_path / name
    write(path)
    deny_reads_of(path)
    with pytest.raises(InputError) as caught:
        read(path)
    assert str(caught.value) == f"{path}: permission denied"


@needs_non_root
def test_an_unreadable_image_for_real(tmp_path):
    path = tmp_path / "a.png"
    io.write_png(path, np.zeros((4, 4), np.uint8))
    path.chmod(0o000)
    with pytest.raises(InputError, match="permission denied"):
        io.read_image(path)


def test_a_truncated_image_is_still_corrupt(tmp_path):
    path = tmp_path / "a.png"
    io.write_png(path, np.arange(64 * 64, dtype=np.uint16).reshape(64, 64).astype(np.uint8))
    path.write_bytes(path.read_bytes()[:60])
    with pytest.raises(InputError, match="corrupt or truncated"):
        io.read_image(path)


# --------------------------------------------------------------------------------------------
# A failed start


def test_removed_if_failed_removes_only_what_it_created(tmp_path):
    out = tmp_path / "a" / "b"
    with pytest.raises(RuntimeError), fs.removed_if_failed(out):
        out.mkdir(parents=True)
        (out / "config.yaml").write_text("x")
        raise RuntimeError("failed start")
    assert not (tmp_path / "a").exists()  # the highest folder it created

    existing = tmp_path / "existing"
    existing.mkdir()
    with pytest.raises(RuntimeError), fs.removed_if_failed(existing):
        (existing / "x").write_text("x")
        raise RuntimeError
    assert (existing / "x").exists()

    with pytest.raises(KeyboardInterrupt), fs.removed_if_failed(out) as keeper:
        out.mkdir(parents=True)
        keeper.keep()  # the real work began
        raise KeyboardInterrupt
    assert out.is_dir()

    other = tmp_path / "pred"
    with pytest.raises(RuntimeError), fs.removed_if_failed(other, keep_files=True):
        (other / "sub").mkdir(parents=True)
        raise RuntimeError
    assert not other.exists()  # nothing written: removed
    with pytest.raises(RuntimeError), fs.removed_if_failed(other, keep_files=True):
        (other / "sub").mkdir(parents=True)
        (other / "sub" / "0.png").write_bytes(b"x")
        raise RuntimeError
    assert (other / "sub" / "0.png").is_file()  # what was written stays (--skip-existing)


# --------------------------------------------------------------------------------------------
# The CLI's last line of defence


@pytest.mark.parametrize(
    ("err", "reason"),
    [
        (PermissionError(errno.EACCES, "Permission denied", "/data/x"), "permission denied"),
        (NotADirectoryError(errno.ENOTDIR, "Not a directory", "/data/x"), "not a folder"),
        (OSError(errno.ENOSPC, "No space left on device", "/data/x"), "no space left on device"),
        (OSError(errno.EROFS, "Read-only file system", "/data/x"), "read-only file system"),
    ],
)
def test_an_escaping_filesystem_error_is_one_line_and_exit_2(monkeypatch, capsys, err, reason):
    import cmseg.commands.info as info

    def fail():
        raise err

    monkeypatch.setattr(info, "run_info", fail)
    assert main(["info"]) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"error: /data/x: {reason}")


def test_an_escaping_full_disk_without_a_file_name_is_still_exit_2(monkeypatch, capsys):
    import cmseg.commands.info as info

    def fail():
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(info, "run_info", fail)
    assert main(["info"]) == 2
    assert capsys.readouterr().err.strip() == "error: no space left on device"


def test_other_os_errors_stay_internal_errors(monkeypatch, capsys):
    import cmseg.commands.info as info

    def fail():
        raise OSError(errno.EBADF, "Bad file descriptor", "/x")

    monkeypatch.setattr(info, "run_info", fail)
    assert main(["info"]) == 1
