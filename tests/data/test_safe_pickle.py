"""The restricted unpickler behind the RefCOCO refs(*).p files."""

from __future__ import annotations

import os
import pickle
import struct
from pathlib import Path

import numpy as np
import pytest

from cmseg.data.safe_pickle import (
    DEFAULTDICT_GLOBALS,
    load_npy_object,
    load_pickle,
    loads_pickle,
)
from cmseg.errors import InputError

REFS = [
    {
        "ref_id": 7,
        "ann_id": 11,
        "image_id": 3,
        "split": "testA",
        "sent_ids": [1, 2],
        "sentences": [
            {"sent_id": 1, "tokens": ["man", "left"], "raw": "Man, left.", "sent": "man left"}
        ],
        "file_name": "COCO_train2014_000000000003_11.jpg",
        "score": 0.5,
        "flags": (True, None),
        "tags": {"a", "b"},
    }
]


def _py2_str(data: bytes) -> bytes:
    """SHORT_BINSTRING: how Python 2 cPickle writes a ``str``."""
    return b"U" + bytes([len(data)]) + data


def py2_refs_pickle() -> bytes:
    """A protocol-2 pickle as Python 2 writes it: [{'sent': 'café', 'ref_id': 5}]."""
    return (
        b"\x80\x02"  # PROTO 2
        + b"]q\x00"  # EMPTY_LIST, BINPUT 0
        + b"(}q\x01("  # MARK, EMPTY_DICT, BINPUT 1, MARK
        + _py2_str(b"sent")
        + _py2_str("café".encode())
        + _py2_str(b"ref_id")
        + b"K\x05"  # BININT1 5
        + _py2_str(b"split")
        + _py2_str(b"val")
        + b"u"  # SETITEMS
        + b"e"  # APPENDS
        + b"."  # STOP
    )


@pytest.mark.parametrize("protocol", [0, 2, 4, 5])
def test_round_trip_of_builtin_containers(tmp_path, protocol):
    path = tmp_path / "refs(unc).p"
    path.write_bytes(pickle.dumps(REFS, protocol=protocol))
    assert load_pickle(path) == REFS


def test_python2_strings_are_decoded_to_str(tmp_path):
    path = tmp_path / "refs(unc).p"
    path.write_bytes(py2_refs_pickle())
    assert load_pickle(path) == [{"sent": "café", "ref_id": 5, "split": "val"}]


def test_python3_bytes_at_protocol_2_are_allowed_and_decoded():
    assert loads_pickle(pickle.dumps([b"abc"], protocol=2)) == ["abc"]
    assert loads_pickle(pickle.dumps([b"abc"], protocol=2), decode_bytes=False) == [b"abc"]


class _Evil:
    def __init__(self, target: str) -> None:
        self.target = target

    def __reduce__(self):
        return (os.system, (f"touch {self.target}",))


def test_malicious_pickle_is_refused_and_never_runs(tmp_path):
    marker = tmp_path / "pwned"
    path = tmp_path / "refs(unc).p"
    path.write_bytes(pickle.dumps([{"ref_id": 1, "x": _Evil(str(marker))}], protocol=2))
    with pytest.raises(InputError) as info:
        load_pickle(path)
    message = str(info.value)
    assert message.startswith(str(path))
    assert "system" in message and "refusing" in message
    assert "\n" not in message
    assert not marker.exists()


@pytest.mark.parametrize(
    "payload, named",
    [
        (
            b"\x80\x02cbuiltins\neval\nq\x00X\x04\x00\x00\x001 + 1q\x01\x85q\x02Rq\x03.",
            "builtins.eval",
        ),
        (b"c__builtin__\ngetattr\n(c__builtin__\nobject\nS'x'\ntR.", "builtins.getattr"),
        (pickle.dumps(np.zeros(2), protocol=2), "numpy"),
        (pickle.dumps(Path("x"), protocol=2), "pathlib"),
    ],
)
def test_any_other_global_is_refused(payload, named):
    with pytest.raises(InputError, match="only builtin containers and scalars"):
        loads_pickle(payload)
    with pytest.raises(InputError, match=named.split(".")[0]):
        loads_pickle(payload)


def test_persistent_ids_are_refused():
    payload = b"\x80\x02X\x01\x00\x00\x00aQ."  # BINPERSID on the string "a"
    with pytest.raises(InputError, match="refusing"):
        loads_pickle(payload)


@pytest.mark.parametrize(
    "payload",
    [
        pickle.dumps(REFS, protocol=2)[:-7],  # truncated
        b"not a pickle at all",
        b"\x80\x02" + struct.pack("<B", 0xFF),  # unknown opcode
    ],
)
def test_corrupt_pickles_give_one_line_errors(tmp_path, payload):
    path = tmp_path / "refs(umd).p"
    path.write_bytes(payload)
    with pytest.raises(InputError) as info:
        load_pickle(path)
    assert "not a readable pickle" in str(info.value) and "\n" not in str(info.value)


def test_missing_and_empty_files(tmp_path):
    with pytest.raises(InputError, match="no such file"):
        load_pickle(tmp_path / "absent.p")
    (tmp_path / "empty.p").write_bytes(b"")
    with pytest.raises(InputError, match="empty"):
        load_pickle(tmp_path / "empty.p")
    with pytest.raises(InputError, match="directory"):
        load_pickle(tmp_path)


# --------------------------------------------------------------------------------------------
# .npy files holding a pickled object (SSNM's dict.npy)


def _save_npy(path: Path, obj) -> Path:
    np.save(path, obj, allow_pickle=True)  # how the official file was written (np.save of a dict)
    return path


def test_npy_of_a_defaultdict_of_lists_reads_back_as_a_plain_dict(tmp_path):
    from collections import defaultdict

    table = defaultdict(list)
    table[1] += [9, 25, 30]
    table[90].append(9)
    got = load_npy_object(_save_npy(tmp_path / "dict.npy", table), allow=DEFAULTDICT_GLOBALS)
    assert got == {1: [9, 25, 30], 90: [9]} and type(got) is dict


def test_npy_with_numpy_integer_ids(tmp_path):
    from collections import defaultdict

    table = defaultdict(list, {np.int64(3): [np.int64(7), np.int32(8)], 5: np.arange(3)})
    got = load_npy_object(_save_npy(tmp_path / "ids.npy", table), allow=DEFAULTDICT_GLOBALS)
    assert {int(k): [int(i) for i in v] for k, v in got.items()} == {3: [7, 8], 5: [0, 1, 2]}


def _npy_with_payload(path: Path, payload: bytes) -> Path:
    with open(path, "wb") as f:
        np.lib.format.write_array_header_1_0(
            f, {"descr": "|O", "fortran_order": False, "shape": ()}
        )
        f.write(payload)
    return path


def test_npy_asking_for_os_system_is_refused_and_never_runs(tmp_path):

    marker = tmp_path / "pwned"
    path = _npy_with_payload(tmp_path / "dict.npy", pickle.dumps(_Evil(str(marker)), protocol=3))
    with pytest.raises(InputError) as info:
        load_npy_object(path, allow=DEFAULTDICT_GLOBALS)
    message = str(info.value)
    assert message.startswith(str(path)) and "system" in message and "\n" not in message
    assert not marker.exists()
    # a plain defaultdict whose factory is a dangerous callable is refused as well
    from collections import defaultdict

    evil_factory = _npy_with_payload(
        tmp_path / "f.npy", pickle.dumps(defaultdict(os.getcwd), protocol=3)
    )
    with pytest.raises(InputError, match="getcwd"):
        load_npy_object(evil_factory, allow=DEFAULTDICT_GLOBALS)


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        (b"plain text, not numpy", "not a .npy file"),
        (b"\x93NUMPY\x01\x00\xff\xff{", "header"),
        (None, "not a pickled object"),
    ],
)
def test_bad_npy_files_are_one_line_errors(tmp_path, content, reason):

    path = tmp_path / "x.npy"
    if content is None:
        np.save(path, np.arange(4))
    else:
        path.write_bytes(content)
    with pytest.raises(InputError, match=reason) as info:
        load_npy_object(path)
    assert str(info.value).startswith(str(path)) and "\n" not in str(info.value)
    with pytest.raises(InputError, match="no such file"):
        load_npy_object(tmp_path / "absent.npy")
