"""RIS readers: RefCOCO family (REFER layout), ReferIt (text_objseg), JSON lines."""

from __future__ import annotations

import json
import pickle
from pathlib import Path

import numpy as np
import pytest
import scipy.io
from PIL import Image

from cmseg.data.formats import JsonlRefs, RefCOCO, ReferIt
from cmseg.errors import InputError
from cmseg.metrics.coco import encode_rle

H, W = 20, 30


def _image(root: Path, image_id: int, h: int = H, w: int = W) -> str:
    name = f"COCO_train2014_{image_id:012d}.jpg"
    folder = root / "images" / "mscoco" / "images" / "train2014"
    folder.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.full((h, w, 3), 40 * image_id, dtype=np.uint8)).save(folder / name)
    return name


def _ref(ref_id, ann_id, image_id, split, sents):
    sentences = [
        {"sent_id": 100 * ref_id + k, "tokens": s.lower().split(), "raw": s, "sent": s.lower()}
        for k, s in enumerate(sents)
    ]
    return {
        "ref_id": ref_id,
        "ann_id": ann_id,
        "image_id": image_id,
        "category_id": 1,
        "split": split,
        "sent_ids": [s["sent_id"] for s in sentences],
        "sentences": sentences,
        "file_name": f"COCO_train2014_{image_id:012d}_{ann_id}.jpg",
    }


def make_refer(
    root: Path, dataset: str = "refcoco", split_by: str = "unc", refs: list | None = None
) -> Path:
    """A REFER data root: ``<dataset>/refs(<split_by>).p`` + ``instances.json`` + train2014 images."""
    folder = root / dataset
    folder.mkdir(parents=True, exist_ok=True)
    images = [{"id": i, "file_name": _image(root, i), "height": H, "width": W} for i in (1, 2)]
    anns = [
        {
            "id": 10,
            "image_id": 1,
            "category_id": 1,
            "iscrowd": 0,
            "area": 60.0,
            "bbox": [0, 0, 5, 5],
            "segmentation": [[2, 2, 8, 2, 8, 7, 2, 7], [20, 10, 26, 10, 26, 16, 20, 16]],
        },
        {
            "id": 11,
            "image_id": 1,
            "category_id": 1,
            "iscrowd": 0,
            "area": 20.0,
            "bbox": [0, 0, 5, 5],
            "segmentation": [[10, 10, 15, 10, 15, 15, 10, 15]],
        },
        {
            "id": 12,
            "image_id": 2,
            "category_id": 1,
            "iscrowd": 0,
            "area": 20.0,
            "bbox": [0, 0, 5, 5],
            "segmentation": encode_rle(
                np.pad(np.ones((4, 4), dtype=bool), ((3, H - 7), (3, W - 7)))
            ),
        },
    ]
    (folder / "instances.json").write_text(
        json.dumps(
            {"images": images, "annotations": anns, "categories": [{"id": 1, "name": "person"}]}
        )
    )
    if refs is None:
        refs = [
            _ref(1, 10, 1, "train", ["Man on the left", "Left guy"]),
            _ref(2, 11, 1, "testA", ["middle man"]),
            _ref(3, 12, 2, "val", ["small box"]),
        ]
    (folder / f"refs({split_by}).p").write_bytes(pickle.dumps(refs, protocol=2))
    return root


def test_refcoco_split_sentences_and_union_mask(tmp_path):
    make_refer(tmp_path)
    ds = RefCOCO(tmp_path, "refcoco", "train")
    assert len(ds) == 2
    s = ds[1]
    assert set(s) >= {"image", "mask", "sentence", "ref_id", "sent_id", "name"}
    assert (
        s["sentence"] == "left guy"
        and s["ref_id"] == 1
        and s["sent_id"] == 101
        and s["name"] == "1_101"
    )
    assert s["image"].shape == (H, W, 3) and s["image"].dtype == np.uint8
    assert s["mask"].dtype == bool and s["mask"].shape == (H, W)
    assert (
        s["mask"][4, 4] and s["mask"][12, 22] and not s["mask"][12, 12]
    )  # both polygons, not ann 11
    raw = RefCOCO(tmp_path, "refcoco", "train", sentence_key="raw")
    assert raw[0]["sentence"] == "Man on the left"
    assert len(RefCOCO(tmp_path, "refcoco", "testA")) == 1
    val = RefCOCO(tmp_path, "refcoco", "val")
    assert val[0]["mask"].sum() == 16 and val[0]["mask"][3, 3]


def test_refcocog_umd_default_and_dataset_folder_as_root(tmp_path):
    make_refer(tmp_path, "refcocog", "umd")
    assert len(RefCOCO(tmp_path, "refcocog", "val")) == 1
    assert len(RefCOCO(tmp_path / "refcocog", "refcocog", "train")) == 2
    with pytest.raises(
        InputError, match=r"refs\(google\).p: no such file \(present: refs\(umd\).p\)"
    ):
        RefCOCO(tmp_path, "refcocog", "val", split_by="google")


def test_refcoco_unknown_split_lists_the_present_ones(tmp_path):
    make_refer(tmp_path)
    with pytest.raises(
        InputError,
        match=r"no refs with split 'testC' \(splits present: testA, train, val; refcoco/unc defines",
    ):
        RefCOCO(tmp_path, "refcoco", "testC")


def test_refcoco_malicious_pickle_is_refused(tmp_path):
    make_refer(tmp_path)

    class Evil:
        def __reduce__(self):
            return (print, ("owned",))

    (tmp_path / "refcoco" / "refs(unc).p").write_bytes(pickle.dumps([Evil()], protocol=2))
    with pytest.raises(InputError, match="pickle asks for builtins.print"):
        RefCOCO(tmp_path, "refcoco", "train")


def test_refcoco_schema_and_escape_problems(tmp_path):
    refs = [_ref(1, 10, 1, "train", ["a"])]
    del refs[0]["sentences"]
    make_refer(tmp_path, refs=refs)
    with pytest.raises(InputError, match="ref 0 lacks 'sentences'"):
        RefCOCO(tmp_path, "refcoco", "train")
    make_refer(tmp_path)
    inst = tmp_path / "refcoco" / "instances.json"
    data = json.loads(inst.read_text())
    data["images"][0]["file_name"] = "../../secret.jpg"
    inst.write_text(json.dumps(data))
    ds = RefCOCO(tmp_path, "refcoco", "train")
    with pytest.raises(InputError, match="would escape the dataset root"):
        ds[0]


def test_refcoco_image_size_must_match_instances(tmp_path):
    make_refer(tmp_path)
    _image(tmp_path, 1, h=H + 2)
    with pytest.raises(InputError, match=r"image is 30x22 but instances.json says 30x20"):
        RefCOCO(tmp_path, "refcoco", "train")[0]


# --------------------------------------------------------------------------------------------
# ReferIt


def make_referit(root: Path, split: str = "test") -> Path:
    (root / "images").mkdir(parents=True, exist_ok=True)
    (root / "mask").mkdir(exist_ok=True)
    Image.fromarray(np.zeros((H, W, 3), dtype=np.uint8)).save(root / "images" / "8756.jpg")
    seg = np.ones((H, W), dtype=np.uint8)  # text_objseg: foreground is segimg_t == 0
    seg[5:9, 6:12] = 0
    scipy.io.savemat(root / "mask" / "8756_1.mat", {"segimg_t": seg})
    seg2 = np.ones((H, W), dtype=np.uint8)
    seg2[0:2, 0:2] = 0
    scipy.io.savemat(root / "mask" / "8756_2.mat", {"segimg_t": seg2})
    queries = {"8756_1": ["sky above the tree", "blue sky"], "8756_2": ["corner"]}
    (root / f"referit_query_{split}.json").write_text(json.dumps(queries))
    return root


def test_referit_reads_mat_masks_with_zero_foreground(tmp_path):
    make_referit(tmp_path)
    ds = ReferIt(tmp_path, "test")
    assert len(ds) == 3
    s = ds[1]
    assert s["sentence"] == "blue sky" and s["ref_id"] == "8756_1" and s["sent_id"] == 1
    assert s["mask"].sum() == 24 and s["mask"][6, 7]
    assert ds[2]["mask"].sum() == 4
    with pytest.raises(InputError, match="no referit_query_trainval.json"):
        ReferIt(tmp_path, "trainval")


def test_referit_query_file_in_data_folder_and_missing_mask(tmp_path):
    make_referit(tmp_path)
    (tmp_path / "data").mkdir()
    (tmp_path / "referit_query_test.json").rename(tmp_path / "data" / "referit_query_test.json")
    assert len(ReferIt(tmp_path, "test")) == 3
    (tmp_path / "mask" / "8756_2.mat").unlink()
    with pytest.raises(InputError, match="mask of '8756_2' not found"):
        ReferIt(tmp_path, "test")


# --------------------------------------------------------------------------------------------
# JSON lines


def make_jsonl(root: Path, lines: list[dict] | None = None) -> Path:
    (root / "images").mkdir(parents=True, exist_ok=True)
    (root / "masks").mkdir(exist_ok=True)
    Image.fromarray(np.zeros((H, W, 3), dtype=np.uint8)).save(root / "images" / "a.jpg")
    mask = np.zeros((H, W), dtype=np.uint8)
    mask[2:6, 3:9] = 255
    Image.fromarray(mask).save(root / "masks" / "a_0.png")
    rle = encode_rle(np.pad(np.ones((2, 3), dtype=bool), ((0, H - 2), (0, W - 3))))
    if lines is None:
        lines = [
            {
                "image": "images/a.jpg",
                "sentence": "the red cup",
                "mask": "masks/a_0.png",
                "id": "a_0",
            },
            {"image": "images/a.jpg", "sentence": "the top left corner", "rle": rle},
        ]
    path = root / "refs.jsonl"
    path.write_text("\n".join(json.dumps(x) for x in lines) + "\n\n")
    return path


def test_jsonl_png_and_rle_masks(tmp_path):
    ds = JsonlRefs(make_jsonl(tmp_path))
    assert len(ds) == 2
    a, b = ds[0], ds[1]
    assert a["name"] == "a_0" and a["ref_id"] == "a_0" and a["sentence"] == "the red cup"
    assert a["mask"].sum() == 24
    assert b["name"] == "line000002" and b["sent_id"] == 2 and b["mask"].sum() == 6


@pytest.mark.parametrize(
    "line, message",
    [
        (
            {"image": "images/a.jpg", "mask": "masks/a_0.png"},
            r"refs.jsonl:1: missing key 'sentence'",
        ),
        (
            {"image": "../a.jpg", "sentence": "x", "mask": "masks/a_0.png"},
            "would escape the dataset root",
        ),
        ({"image": "/etc/passwd", "sentence": "x", "mask": "masks/a_0.png"}, "absolute path"),
        ({"image": "images/a.jpg", "sentence": "x"}, "exactly one of 'mask'"),
        (
            {"image": "images/a.jpg", "sentence": "x", "rle": {"size": [2, 2]}},
            "'size' and 'counts'",
        ),
        (
            {"image": "images/a.jpg", "sentence": "x", "mask": "masks/a_0.png", "id": "../../out"},
            "id '../../out' would escape",
        ),
    ],
)
def test_jsonl_bad_lines(tmp_path, line, message):
    with pytest.raises(InputError, match=message):
        JsonlRefs(make_jsonl(tmp_path, [line]))


def test_jsonl_rle_size_and_binary_mask(tmp_path):
    rle = encode_rle(np.ones((4, 4), dtype=bool))
    ds = JsonlRefs(make_jsonl(tmp_path, [{"image": "images/a.jpg", "sentence": "x", "rle": rle}]))
    with pytest.raises(
        InputError, match=r"refs.jsonl:1: RLE size \[4, 4\] disagrees with its image \(20x30\)"
    ):
        ds[0]
    grey = np.full((H, W), 128, dtype=np.uint8)
    grey[0, 0] = 255
    Image.fromarray(grey).save(tmp_path / "masks" / "a_0.png")
    (tmp_path / "refs.jsonl").write_text(
        json.dumps({"image": "images/a.jpg", "sentence": "x", "mask": "masks/a_0.png"})
    )
    ds = JsonlRefs(tmp_path / "refs.jsonl")
    with pytest.raises(InputError, match="not binary"):
        ds[0]


def test_jsonl_names_still_importable_from_refer():
    from cmseg.data.formats import jsonl_refs, refer

    for name in ("JsonlRefs", "JsonlSample", "index_jsonl", "decode_sample_rle"):
        assert getattr(refer, name) is getattr(jsonl_refs, name)
