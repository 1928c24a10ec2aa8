"""``cmseg data check``: clean datasets pass, every planted problem is listed at once."""

from __future__ import annotations

import io
import json
import pickle
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from test_formats_coseg import write_coco, write_coseg
from test_formats_fsrvos import make_mini_ytvos, make_sail
from test_formats_ris import make_jsonl, make_refer, make_referit
from test_formats_rvos import _FakeH5File, make_a2d, make_jhmdb, make_mevis, make_ytvos
from test_formats_sod import make_sod

from cmseg.data.check import check_dataset, format_summary, inspect_dataset, run_check
from cmseg.metrics.coco import encode_rle


def _only(problems: list[str], needle: str) -> list[str]:
    return [p for p in problems if needle in p]


def _truncate(path: Path, keep: float = 0.5) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * keep)])


def _one_line(problems: list[str]) -> None:
    assert all("\n" not in p and ": " in p for p in problems)


# --------------------------------------------------------------------------------------------
# sod


def test_clean_sod_dataset(tmp_path):
    make_sod(tmp_path)
    result = inspect_dataset("sod", tmp_path)
    assert result.problems == []
    assert result.items == 7 and "3 sets" in result.layout
    assert format_summary(result).endswith("no problem found")
    out = io.StringIO()
    assert run_check("sod", tmp_path, out=out) == 0
    assert out.getvalue().strip().splitlines()[-1].startswith("sod: 7 samples checked")


def test_sod_every_planted_problem_at_once(tmp_path):
    make_sod(tmp_path)
    nju = tmp_path / "NJU2K"
    (nju / "depth" / "001.png").unlink()  # missing partner
    _truncate(nju / "RGB" / "002.jpg")  # truncated image
    Image.fromarray(np.zeros((5, 5), dtype=np.uint8)).save(nju / "GT" / "003.png")  # size + empty
    (tmp_path / "VT821" / "T" / "2.jpg").write_bytes(b"garbage, not an image")  # unreadable
    Image.fromarray(np.zeros((3, 3), dtype=np.uint8)).save(nju / "GT" / "999.png")  # no RGB for it
    problems = check_dataset("sod", tmp_path)
    _one_line(problems)
    assert _only(problems, "001.jpg: no depth/thermal map named 001")
    assert _only(problems, "002.jpg: corrupt or truncated image")
    assert _only(problems, "003.png: GT mask is empty")
    assert _only(problems, "003.png: GT mask is 5x5 but 003.jpg is 16x12")
    assert _only(problems, "2.jpg: not a readable image")
    assert _only(problems, "999.png: no RGB image named 999")
    assert len(problems) == 6
    out = io.StringIO()
    assert run_check("sod", tmp_path, out=out) == 2
    lines = out.getvalue().strip().splitlines()
    assert len(lines) == 7 and lines[-1].endswith("6 problems found")


def test_sod_layout_problems(tmp_path):
    (tmp_path / "nothing").mkdir()
    problems = check_dataset("sod", tmp_path / "nothing")
    assert len(problems) == 1 and "no RGB folder" in problems[0]
    assert check_dataset("sod", tmp_path / "absent") == [
        f"{tmp_path / 'absent'}: dataset root does not exist"
    ]


# --------------------------------------------------------------------------------------------
# coseg


def test_coseg_splits_that_share_their_classes_count_them_once(tmp_path):
    write_coseg(tmp_path / "train", {"bird": 2, "car": 2})
    write_coseg(tmp_path / "test", {"bird": 2, "car": 2})
    result = inspect_dataset("coseg", tmp_path)
    assert result.problems == [] and result.items == 8
    assert result.layout == "co-segmentation folders (test, train), 2 classes"


def test_coseg_folders_clean_and_broken(tmp_path):
    ds = tmp_path / "MSRC7"
    write_coseg(ds, {"bird": 3, "car": 2})
    write_coseg(tmp_path / "iCoseg8", {"bear": 2})
    result = inspect_dataset("coseg", tmp_path)  # a folder of processed sets
    assert result.problems == [] and result.items == 7 and "3 classes" in result.layout
    assert check_dataset("coseg", ds) == []
    grey = np.full((10, 14), 128, dtype=np.uint8)
    Image.fromarray(grey).save(ds / "groundtruth" / "bird" / "bird_00.png")  # non-binary
    (ds / "groundtruth" / "bird" / "bird_01.png").unlink()  # missing mask
    Image.fromarray(np.zeros((4, 4), dtype=np.uint8)).save(
        ds / "groundtruth" / "car" / "car_00.png"
    )  # size
    (ds / "image" / "cow").mkdir()  # no GT class
    problems = check_dataset("coseg", ds)
    _one_line(problems)
    assert _only(problems, "bird_00.png: mask is not binary")
    assert _only(problems, "bird_01.jpg: no mask named bird_01")
    assert _only(problems, "car_00.png: mask is 4x4 but car_00.jpg is 14x10")
    assert _only(problems, "cow: no matching class folder groundtruth/cow/")
    assert len(problems) == 4


def test_coseg_coco(tmp_path):
    write_coco(tmp_path)
    assert check_dataset("coseg", tmp_path) == []
    path = tmp_path / "annotations" / "instances_train2017.json"
    data = json.loads(path.read_text())
    data["annotations"][0]["segmentation"] = encode_rle(np.ones((5, 5), dtype=bool))  # RLE size
    del data["annotations"][1]["image_id"]  # missing key
    data["images"][2]["file_name"] = "../../x.jpg"  # escape
    path.write_text(json.dumps(data))
    problems = check_dataset("coseg", tmp_path)
    _one_line(problems)
    assert _only(problems, "RLE size [5, 5] disagrees with its image (100x120)")
    assert _only(problems, "annotations[1] lacks 'image_id'")
    assert _only(problems, "file_name '../../x.jpg' would escape the dataset root")


# --------------------------------------------------------------------------------------------
# ris


def test_ris_all_layouts_clean(tmp_path):
    make_refer(tmp_path)
    make_referit(tmp_path)
    make_jsonl(tmp_path)
    result = inspect_dataset("ris", tmp_path)
    assert result.problems == []
    assert (
        "REFER refcoco" in result.layout
        and "ReferIt test" in result.layout
        and "JSON lines" in result.layout
    )
    assert result.items == 4 + 3 + 2
    assert check_dataset("ris", tmp_path / "refs.jsonl") == []


def test_ris_jsonl_planted_problems(tmp_path):
    make_jsonl(tmp_path)
    grey = np.full((20, 30), 100, dtype=np.uint8)
    Image.fromarray(grey).save(tmp_path / "masks" / "grey.png")
    Image.fromarray(np.zeros((20, 30), dtype=np.uint8)).save(tmp_path / "masks" / "empty.png")
    lines = [
        {"image": "images/a.jpg", "sentence": "ok", "mask": "masks/a_0.png"},
        {"image": "images/a.jpg", "mask": "masks/a_0.png"},  # 2 key
        {
            "image": "images/a.jpg",
            "sentence": "x",
            "rle": encode_rle(np.ones((3, 3), bool)),
        },  # 3 RLE size
        {"image": "../outside.jpg", "sentence": "x", "mask": "masks/a_0.png"},  # 4 escape
        {"image": "images/a.jpg", "sentence": "x", "mask": "masks/grey.png"},  # 5 non-binary
        {"image": "images/a.jpg", "sentence": "x", "mask": "masks/empty.png"},  # 6 empty
        {"image": "images/missing.jpg", "sentence": "x", "mask": "masks/a_0.png"},  # 7 missing
    ]
    (tmp_path / "refs.jsonl").write_text("\n".join(json.dumps(x) for x in lines) + "\nnot json\n")
    problems = check_dataset("ris", tmp_path)
    _one_line(problems)
    assert _only(problems, "refs.jsonl:2: missing key 'sentence'")
    assert _only(problems, "refs.jsonl:3: RLE size [3, 3] disagrees with its image (20x30)")
    assert _only(
        problems, "refs.jsonl:4: image path '../outside.jpg' would escape the dataset root"
    )
    assert _only(problems, "grey.png: mask is not binary")
    assert _only(problems, "empty.png: mask is empty")
    assert _only(problems, "missing.jpg: no such file")
    assert _only(problems, "refs.jsonl:8: invalid JSON")
    assert len(problems) == 7


def test_ris_refer_planted_problems(tmp_path):
    make_refer(tmp_path)
    make_refer(tmp_path, "refcoco+", "unc")
    inst = tmp_path / "refcoco" / "instances.json"
    data = json.loads(inst.read_text())
    data["annotations"][2]["segmentation"] = encode_rle(np.ones((4, 4), dtype=bool))
    data["annotations"][1]["segmentation"] = [[1, 1, 2, 2]]
    inst.write_text(json.dumps(data))

    class Evil:
        def __reduce__(self):
            return (exec, ("import os",))

    (tmp_path / "refcoco+" / "refs(unc).p").write_bytes(pickle.dumps([Evil()], protocol=2))
    problems = check_dataset("ris", tmp_path)
    _one_line(problems)
    assert _only(
        problems, "annotation 12 (ref 3): RLE size [4, 4] disagrees with its image (20x30)"
    )
    assert _only(problems, "annotation 11 (ref 2): each polygon must be a flat list")
    assert _only(problems, "refs(unc).p: pickle asks for builtins.exec")
    assert len(problems) == 3


def test_ris_referit_planted_problems(tmp_path):
    make_referit(tmp_path)
    path = tmp_path / "referit_query_test.json"
    queries = json.loads(path.read_text())
    queries["../../8756_1"] = ["escape"]
    queries["9999_1"] = ["no such image"]
    path.write_text(json.dumps(queries))
    _truncate(tmp_path / "mask" / "8756_2.mat", 0.3)
    problems = check_dataset("ris", tmp_path)
    _one_line(problems)
    assert _only(problems, "key '../../8756_1.mat' would escape")
    assert _only(problems, "9999.jpg: image of '9999_1' not found")
    assert _only(problems, "8756_2.mat: not a readable MATLAB file")
    assert len(problems) == 3


def test_ris_nothing_recognised(tmp_path):
    problems = check_dataset("ris", tmp_path)
    assert len(problems) == 1 and "no referring-segmentation layout found" in problems[0]


# --------------------------------------------------------------------------------------------
# rvos


def test_ytvos_clean_and_planted(tmp_path):
    make_ytvos(tmp_path)
    result = inspect_dataset("rvos", tmp_path)
    assert (
        result.problems == []
        and "Ref-YouTube-VOS (train, valid)" in result.layout
        and result.items == 4
    )
    path = tmp_path / "meta_expressions" / "train" / "meta_expressions.json"
    data = json.loads(path.read_text())
    data["videos"]["../x"] = data["videos"]["v2"]  # escaping id
    data["videos"]["v1"]["expressions"]["2"] = {"exp": "a ghost", "obj_id": "3"}  # never appears
    data["videos"]["v1"]["expressions"]["3"] = {"obj_id": "1"}  # missing key
    path.write_text(json.dumps(data))
    (tmp_path / "train" / "Annotations" / "v2" / "00005.png").unlink()  # missing partner
    _truncate(tmp_path / "train" / "JPEGImages" / "v2" / "00010.jpg")  # truncated frame
    Image.fromarray(np.zeros((3, 3, 3), dtype=np.uint8)).save(
        tmp_path / "valid" / "JPEGImages" / "w1" / "00005.jpg"
    )
    problems = check_dataset("rvos", tmp_path)
    _one_line(problems)
    assert _only(problems, "video id '../x' would escape the dataset root")
    assert _only(problems, "object 3 of expression '2' ('a ghost') appears in no annotated frame")
    assert _only(problems, "expression '3' lacks a string 'exp'")
    assert _only(problems, "v2/00005.png: no such file")
    assert _only(problems, "v2/00010.jpg: corrupt or truncated image")
    assert _only(problems, "w1/00005.jpg: frame is 3x3 but 00000.jpg is 10x8")
    assert len(problems) == 6


def test_mevis_clean_and_planted(tmp_path):
    make_mevis(tmp_path)
    result = inspect_dataset("rvos", tmp_path)
    assert result.problems == [] and result.layout.startswith("MeViS")
    path = tmp_path / "train" / "mask_dict.json"
    masks = json.loads(path.read_text())
    masks["10"][0] = encode_rle(np.ones((2, 2), dtype=bool))
    masks["11"] = [None] * 6
    path.write_text(json.dumps(masks))
    problems = check_dataset("rvos", tmp_path)
    _one_line(problems)
    assert _only(
        problems,
        "anno_id 10, frame 00000 of video 'vidA': RLE size [2, 2] disagrees with its image (8x10)",
    )
    assert len(problems) == 1  # exp 1 still sees anno 10; anno 11 alone is in no expression
    masks["10"] = [None] * 6
    path.write_text(json.dumps(masks))
    problems = check_dataset("rvos", tmp_path)
    assert len(_only(problems, "has an empty mask in every frame")) == 2


def test_a2d_and_jhmdb(tmp_path):
    make_a2d(tmp_path / "a2d")
    result = inspect_dataset("rvos", tmp_path / "a2d")
    assert result.layout == "A2D-Sentences" and result.items == 2
    # vidTrain has neither frames nor instance annotations in this fixture
    assert _only(result.problems, "no .h5 instance annotation for video 'vidTrain'")
    try:
        import h5py  # noqa: F401
    except ImportError:
        assert any("h5py" in n for n in result.notes)
    assert _only(result.problems, "frames of video 'vidTrain' not found")
    assert len(result.problems) == 2
    make_jhmdb(tmp_path / "jhmdb")
    assert check_dataset("rvos", tmp_path / "jhmdb") == []
    frame = next(
        (tmp_path / "jhmdb" / "Rename_Images" / "pullup" / "clip_pullup_0").glob("00002.png")
    )
    Image.fromarray(np.zeros((4, 4, 3), dtype=np.uint8)).save(frame)
    problems = check_dataset("rvos", tmp_path / "jhmdb")
    assert len(problems) == 1 and "00002.png: frame is 4x4" in problems[0]


# --------------------------------------------------------------------------------------------
# fsrvos


def test_fsrvos_clean_and_planted(tmp_path):
    make_mini_ytvos(tmp_path / "mini")
    result = inspect_dataset("fsrvos", tmp_path / "mini")
    assert result.problems == [] and result.layout == "Mini-Ref-YouTube-VOS, 4 classes"
    meta = tmp_path / "mini" / "train" / "meta.json"
    data = json.loads(meta.read_text())
    del data["videos"]["horse1"]  # no category
    meta.write_text(json.dumps(data))
    problems = check_dataset("fsrvos", tmp_path / "mini")
    _one_line(problems)
    assert _only(problems, "video 'horse1': no category for object 2")
    assert _only(problems, "class 'horse' has a single video (horse0)")
    assert len(problems) == 2
    make_sail(tmp_path / "sail")
    assert check_dataset("fsrvos", tmp_path / "sail") == []


# --------------------------------------------------------------------------------------------
# No torch


def test_check_does_not_import_torch(tmp_path):
    make_sod(tmp_path)
    code = (
        "import sys; from cmseg.data.check import run_check; "
        f"code = run_check('sod', {str(tmp_path)!r}); "
        "import cmseg.data.formats.refer, cmseg.data.formats.ytvos, cmseg.data.formats.a2d, "
        "cmseg.data.formats.fewshot, cmseg.data.formats.coseg_groups; "
        "assert 'torch' not in sys.modules, 'torch was imported'; sys.exit(code)"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert "no problem found" in done.stdout


@pytest.mark.parametrize("task", ["sod", "coseg", "ris", "rvos", "fsrvos"])
def test_empty_root_gives_one_layout_problem(tmp_path, task):
    problems = check_dataset(task, tmp_path)
    assert len(problems) == 1 and problems[0].startswith(str(tmp_path))


def test_a2d_instances_checked_when_h5_can_be_read(tmp_path, monkeypatch):
    import types

    make_a2d(tmp_path)
    inst = tmp_path / "text_annotations" / "a2d_annotation_with_instances" / "vidTest"
    with open(inst / "00003.h5", "wb") as handle:
        np.savez(handle, instance=np.array([5]), reMask=np.zeros((10, 8), dtype=np.uint8))
    (inst / "00004.h5").write_bytes(b"")
    monkeypatch.setitem(sys.modules, "h5py", types.SimpleNamespace(File=_FakeH5File))
    problems = check_dataset("rvos", tmp_path)
    _one_line(problems)
    assert _only(problems, "vidTest: instance 0 of a sentence appears in no annotated frame")
    assert _only(problems, "00004.h5: not a readable HDF5 file")
