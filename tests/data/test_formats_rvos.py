"""RVOS readers: Ref-YouTube-VOS, MeViS, A2D-Sentences, JHMDB-Sentences."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import scipy.io
from PIL import Image

from cmseg.data.formats import (
    A2DSentences,
    JHMDBSentences,
    MeViS,
    RefYouTubeVOS,
    clip_windows,
    frame_window,
)
from cmseg.data.formats.a2d import (
    annotated_frames,
    clip_indices,
    index_a2d_text,
    list_frames,
    read_text_annotations,
    read_video_frames,
    read_videoset,
)
from cmseg.errors import CmsegError, InputError
from cmseg.metrics.coco import encode_rle

H, W = 8, 10
PALETTE = np.array([[0, 0, 0], [128, 0, 0], [0, 128, 0], [128, 128, 0]], dtype=np.uint8)


def _frame(t: int) -> np.ndarray:
    return np.full((H, W, 3), 10 * t, dtype=np.uint8)


def _index_mask(t: int, objects: dict[int, range]) -> np.ndarray:
    """Object k is a 2x2 square at column 2k when t is in its frame range."""
    m = np.zeros((H, W), dtype=np.uint8)
    for k, frames in objects.items():
        if t in frames:
            m[2:4, 2 * k : 2 * k + 2] = k
    return m


def _palette_png(path: Path, m: np.ndarray) -> None:
    img = Image.fromarray(m)
    img.putpalette(PALETTE.reshape(-1).tolist())
    img.save(path)


def write_ytvos_video(
    split_dir: Path, vid: str, n: int, objects: dict[int, range] | None
) -> list[str]:
    frames = [f"{5 * t:05d}" for t in range(n)]
    (split_dir / "JPEGImages" / vid).mkdir(parents=True, exist_ok=True)
    for t, f in enumerate(frames):
        Image.fromarray(_frame(t)).save(split_dir / "JPEGImages" / vid / f"{f}.jpg", quality=95)
    if objects is not None:
        (split_dir / "Annotations" / vid).mkdir(parents=True, exist_ok=True)
        for t, f in enumerate(frames):
            _palette_png(split_dir / "Annotations" / vid / f"{f}.png", _index_mask(t, objects))
    return frames


def make_ytvos(root: Path) -> Path:
    """Ref-YouTube-VOS: train (2 videos, annotations, meta.json), valid and test lists."""
    objects = {"v1": {1: range(0, 10), 2: range(6, 10)}, "v2": {1: range(0, 3)}}
    train = root / "train"
    meta_exp = {"videos": {}}
    meta = {"videos": {}}
    exps = {
        "v1": {"0": ("a person walking", "1"), "1": ("a dog running", "2")},
        "v2": {"0": ("a cat", "1")},
    }
    for vid, n in (("v1", 10), ("v2", 4)):
        frames = write_ytvos_video(train, vid, n, objects[vid])
        meta_exp["videos"][vid] = {
            "expressions": {k: {"exp": e, "obj_id": o} for k, (e, o) in exps[vid].items()},
            "frames": frames,
        }
        meta["videos"][vid] = {
            "objects": {
                str(k): {"category": "person", "frames": [frames[t] for t in r]}
                for k, r in objects[vid].items()
            }
        }
    (root / "meta_expressions" / "train").mkdir(parents=True)
    (root / "meta_expressions" / "train" / "meta_expressions.json").write_text(json.dumps(meta_exp))
    (train / "meta.json").write_text(json.dumps(meta))
    valid = {"videos": {}}
    for vid in ("w1", "w2"):
        frames = write_ytvos_video(root / "valid", vid, 3, None)
        valid["videos"][vid] = {"expressions": {"0": {"exp": f"thing in {vid}"}}, "frames": frames}
    for split, data in (("valid", valid), ("test", {"videos": {"w2": valid["videos"]["w2"]}})):
        (root / "meta_expressions" / split).mkdir(parents=True)
        (root / "meta_expressions" / split / "meta_expressions.json").write_text(json.dumps(data))
    return root


def test_windows():
    assert frame_window(10, 8, 4) == [6, 7, 8, 9]
    assert frame_window(2, 0, 4) == [0, 1, 1, 1]
    assert clip_windows(10, 4, 4) == [[0, 1, 2, 3], [4, 5, 6, 7], [6, 7, 8, 9]]
    assert clip_windows(10, 4, 2) == [[0, 1, 2, 3], [2, 3, 4, 5], [4, 5, 6, 7], [6, 7, 8, 9]]
    assert clip_windows(3, 5, 5) == [[0, 1, 2, 2, 2]]


def test_ytvos_training_clips(tmp_path):
    ds = RefYouTubeVOS(make_ytvos(tmp_path), "train", num_frames=4)
    keys = [(v, e, tuple(w)) for v, e, w in ds.samples]
    # v1/exp0 (object 1 everywhere): 3 windows; v1/exp1 (object 2 from frame 6): windows 2 and 3;
    # v2 (4 frames): one window
    assert keys == [
        ("v1", "0", (0, 1, 2, 3)),
        ("v1", "0", (4, 5, 6, 7)),
        ("v1", "0", (6, 7, 8, 9)),
        ("v1", "1", (4, 5, 6, 7)),
        ("v1", "1", (6, 7, 8, 9)),
        ("v2", "0", (0, 1, 2, 3)),
    ]
    s = ds[3]
    assert set(s) == {"frames", "masks", "sentence", "video", "exp_id", "frame_ids", "obj_ids"}
    assert s["frames"].shape == (4, H, W, 3) and s["frames"].dtype == np.uint8
    assert s["masks"].shape == (4, H, W) and s["masks"].dtype == bool
    assert s["sentence"] == "a dog running" and s["exp_id"] == "1" and s["obj_ids"] == [2]
    assert s["frame_ids"] == ["00020", "00025", "00030", "00035"]
    assert [bool(m.any()) for m in s["masks"]] == [False, False, True, True]
    assert s["masks"][2, 2:4, 4:6].all() and s["masks"][2].sum() == 4
    assert abs(int(s["frames"][1, 0, 0, 0]) - 50) <= 2


def test_ytvos_without_meta_json_keeps_every_window(tmp_path):
    make_ytvos(tmp_path)
    (tmp_path / "train" / "meta.json").unlink()
    assert len(RefYouTubeVOS(tmp_path, "train", num_frames=4)) == 7


def test_ytvos_video_mode_and_valid_minus_test(tmp_path):
    make_ytvos(tmp_path)
    full = RefYouTubeVOS(tmp_path, "train", mode="video")
    assert len(full) == 3 and full[0]["frames"].shape[0] == 10
    valid = RefYouTubeVOS(tmp_path, "valid")
    assert [v for v, _, _ in valid.samples] == ["w1"]
    s = valid[0]
    assert "masks" not in s and s["frames"].shape == (3, H, W, 3) and s["obj_ids"] == []
    assert len(RefYouTubeVOS(tmp_path, "valid", exclude_test=False)) == 2


def test_ytvos_video_id_escaping_the_root_is_refused(tmp_path):
    make_ytvos(tmp_path)
    path = tmp_path / "meta_expressions" / "train" / "meta_expressions.json"
    data = json.loads(path.read_text())
    data["videos"]["../../etc"] = data["videos"].pop("v2")
    path.write_text(json.dumps(data))
    with pytest.raises(InputError) as info:
        RefYouTubeVOS(tmp_path, "train")
    assert str(info.value).startswith(
        str(path)
    ) and "'../../etc' would escape the dataset root" in str(info.value)


def test_ytvos_missing_pieces(tmp_path):
    make_ytvos(tmp_path)
    (tmp_path / "train" / "Annotations" / "v1" / "00010.png").unlink()
    ds = RefYouTubeVOS(tmp_path, "train", num_frames=4)
    with pytest.raises(InputError, match=r"00010.png: no such file"):
        ds[0]
    path = tmp_path / "meta_expressions" / "train" / "meta_expressions.json"
    data = json.loads(path.read_text())
    del data["videos"]["v2"]["frames"]
    path.write_text(json.dumps(data))
    with pytest.raises(InputError, match="video 'v2' lacks 'frames'"):
        RefYouTubeVOS(tmp_path, "train")
    with pytest.raises(InputError, match="'nope' split folder does not exist"):
        RefYouTubeVOS(tmp_path, "nope")


# --------------------------------------------------------------------------------------------
# MeViS


def make_mevis(root: Path, split: str = "train") -> Path:
    """One 6-frame video; anno 10 (object 0) in frames 0-2, anno 11 (object 1) in frames 3-5."""
    d = root / split
    frames = [f"{t:05d}" for t in range(6)]
    (d / "JPEGImages" / "vidA").mkdir(parents=True)
    for t, f in enumerate(frames):
        Image.fromarray(_frame(t)).save(d / "JPEGImages" / "vidA" / f"{f}.jpg")
    masks: dict[str, list] = {"10": [], "11": []}
    for t in range(6):
        for anno, present, col in (("10", t < 3, 0), ("11", t >= 3, 5)):
            if present:
                m = np.zeros((H, W), dtype=bool)
                m[1:3, col : col + 3] = True
                masks[anno].append(encode_rle(m))
            else:
                masks[anno].append(None)
    exps = {
        "0": {"exp": "the first one", "obj_id": [0], "anno_id": [10]},
        "1": {"exp": "both of them", "obj_id": [0, 1], "anno_id": [10, 11]},
    }
    (d / "meta_expressions.json").write_text(
        json.dumps({"videos": {"vidA": {"expressions": exps, "frames": frames, "vid_id": 0}}})
    )
    (d / "mask_dict.json").write_text(json.dumps(masks))
    return root


def test_mevis_union_of_objects_and_window_filter(tmp_path):
    ds = MeViS(make_mevis(tmp_path), "train", num_frames=3)
    # exp 0: object in frames 0-2 only -> window [0..2]; exp 1: both objects needed -> none of
    # the 3-frame windows holds both, so exp 1 gives no training clip
    assert [(e, tuple(w)) for _, e, w in ds.samples] == [("0", (0, 1, 2))]
    wide = MeViS(tmp_path, "train", num_frames=4, stride=2)
    assert ("1", (2, 3, 4, 5)) in [(e, tuple(w)) for _, e, w in wide.samples]
    video = MeViS(tmp_path, "train", mode="video")
    s = video[1]
    assert s["obj_ids"] == [0, 1] and s["masks"].shape == (6, H, W)
    assert [int(m.sum()) for m in s["masks"]] == [6] * 6
    assert s["masks"][0, 1:3, 0:3].all() and s["masks"][5, 1:3, 5:8].all()


def test_mevis_rle_problems(tmp_path):
    make_mevis(tmp_path)
    path = tmp_path / "train" / "mask_dict.json"
    masks = json.loads(path.read_text())
    masks["10"][1] = encode_rle(np.ones((3, 3), dtype=bool))
    path.write_text(json.dumps(masks))
    ds = MeViS(tmp_path, "train", mode="video")
    with pytest.raises(
        InputError, match=r"anno_id 10, frame 00001 of video 'vidA': RLE size \[3, 3\] disagrees"
    ):
        ds[0]
    masks["10"] = masks["10"][:4]
    path.write_text(json.dumps(masks))
    with pytest.raises(InputError, match="anno_id 10 has 4 masks but video 'vidA' lists 6 frames"):
        MeViS(tmp_path, "train")


def test_mevis_valid_without_mask_dict(tmp_path):
    make_mevis(tmp_path, "valid")
    (tmp_path / "valid" / "mask_dict.json").unlink()
    ds = MeViS(tmp_path, "valid")
    assert len(ds) == 2 and "masks" not in ds[0]


# --------------------------------------------------------------------------------------------
# A2D-Sentences (text files and frames; the .h5 part needs h5py)


def make_a2d(root: Path, *, h5: bool = False) -> Path:
    release = root / "Release"
    text = root / "text_annotations"
    release.mkdir(parents=True)
    text.mkdir()
    rows = [
        ["vidTrain", "1", "0", "10", "240", "320", "30", "3", "0"],
        ["vidTest", "2", "0", "10", str(H), str(W), "6", "1", "1"],
        ["vidMissed", "3", "0", "10", "240", "320", "30", "3", "1"],
    ]
    (release / "videoset.csv").write_text("\n".join(",".join(r) for r in rows) + "\n")
    (text / "a2d_missed_videos.txt").write_text("vidMissed\n")
    (text / "a2d_annotation.txt").write_text(
        "video_id,instance_id,query\n"
        "vidTrain,1,man in red\n"
        'vidTest,0,"the dog, running  left"\n'
        "vidTest,1 (copy),duplicate\n"
        "vidMissed,0,gone\n"
    )
    frames = release / "frames" / "vidTest"
    frames.mkdir(parents=True)
    for t in range(1, 7):
        Image.fromarray(_frame(t)).save(frames / f"{t:05d}.png")
    inst = text / "a2d_annotation_with_instances" / "vidTest"
    inst.mkdir(parents=True)
    if h5:
        import h5py

        mask = np.zeros((H, W), dtype=np.uint8)
        mask[1:4, 2:6] = 1
        with h5py.File(inst / "00003.h5", "w") as f:
            f["instance"] = np.array([0])
            f["reMask"] = mask.T  # stored transposed, (W, H) for a single instance
            f["reBBox"] = np.array([[2], [1], [5], [3]])
    else:
        (inst / "00003.h5").write_bytes(b"")
    return root


def test_a2d_text_files(tmp_path):
    make_a2d(tmp_path)
    videos = read_videoset(tmp_path / "Release" / "videoset.csv")
    assert videos["vidTest"].subset == 1 and videos["vidTrain"].total_frames == 30
    rows = read_text_annotations(tmp_path / "text_annotations" / "a2d_annotation.txt")
    assert rows[1]["query"] == "the dog, running  left"
    assert index_a2d_text(tmp_path, "test") == [("vidTest", 0, "the dog, running left")]
    assert index_a2d_text(tmp_path, "train") == [("vidTrain", 1, "man in red")]


def test_a2d_text_problems(tmp_path):
    make_a2d(tmp_path)
    (tmp_path / "text_annotations" / "a2d_annotation.txt").write_text("video,query\nx,y\n")
    with pytest.raises(InputError, match="header lacks column 'video_id', 'instance_id'"):
        index_a2d_text(tmp_path, "test")
    (tmp_path / "text_annotations" / "a2d_annotation.txt").write_text(
        "video_id,instance_id,query\n../x,1,a\n"
    )
    with pytest.raises(InputError, match="would escape"):
        index_a2d_text(tmp_path, "test")
    (tmp_path / "Release" / "videoset.csv").write_text("a,b,c\n")
    with pytest.raises(InputError, match="expected 9 columns"):
        index_a2d_text(tmp_path, "test")


def test_frame_listing_and_clip_positions(tmp_path):
    make_a2d(tmp_path)
    frames = list_frames(tmp_path / "Release" / "frames" / "vidTest")
    assert sorted(frames) == [1, 2, 3, 4, 5, 6]
    (tmp_path / "Release" / "frames" / "vidTest" / "notes.txt").write_text("x")
    (tmp_path / "Release" / "frames" / "vidTest" / "7.jpg").write_bytes(b"")
    assert sorted(list_frames(tmp_path / "Release" / "frames" / "vidTest")) == [1, 2, 3, 4, 5, 6, 7]
    assert annotated_frames(
        tmp_path / "text_annotations" / "a2d_annotation_with_instances" / "vidTest"
    ) == [3]
    assert clip_indices(2, 8, 6) == [0, 0, 0, 1, 2, 3, 4, 5]
    assert clip_indices(5, 4, 6) == [3, 4, 5, 5]


def test_video_decoding_with_opencv(tmp_path):
    cv2 = pytest.importorskip("cv2")
    path = tmp_path / "clip.mp4"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 10, (32, 16))
    if not writer.isOpened():
        pytest.skip("OpenCV has no mp4 writer here")
    for t in range(5):
        writer.write(np.full((16, 32, 3), 40 * t, dtype=np.uint8))
    writer.release()
    frames, count = read_video_frames(path, [0, 4, 9])
    assert count == 5 and len(frames) == 3
    assert frames[0].shape == (16, 32, 3)
    assert abs(int(frames[1].mean()) - 160) < 8 and np.array_equal(frames[1], frames[2])
    with pytest.raises(InputError, match="no such file"):
        read_video_frames(tmp_path / "none.mp4", [0])


def test_a2d_reader_without_h5py_says_how_to_install(tmp_path):
    try:
        import h5py  # noqa: F401
    except ImportError:
        make_a2d(tmp_path)
        with pytest.raises(CmsegError, match="pip install h5py"):
            A2DSentences(tmp_path, "test")
    else:
        pytest.skip("h5py is installed")


class _FakeH5File:
    """Stands in for ``h5py.File`` on .h5 files that the test wrote as .npz archives."""

    def __init__(self, path, mode="r"):
        try:
            self._data = dict(np.load(path))
        except Exception as err:  # h5py raises OSError on files it cannot open
            raise OSError(f"Unable to open file ({err})") from None

    def __enter__(self):
        return self._data

    def __exit__(self, *exc):
        return False


def test_a2d_reader_logic_with_a_stand_in_for_h5py(tmp_path, monkeypatch):
    import sys
    import types

    make_a2d(tmp_path)
    inst = tmp_path / "text_annotations" / "a2d_annotation_with_instances" / "vidTest"
    two = np.zeros((2, H, W), dtype=np.uint8)
    two[0, 1:4, 2:6] = 1  # instance 0
    two[1, 5:7, 0:2] = 1  # instance 4
    with open(inst / "00003.h5", "wb") as handle:  # two instances: reMask is (N, W, H)
        np.savez(handle, instance=np.array([[0], [4]]), reMask=two.transpose(0, 2, 1))
    with open(inst / "00005.h5", "wb") as handle:  # one instance: reMask is (W, H)
        np.savez(handle, instance=np.array([7]), reMask=two[1].T)
    monkeypatch.setitem(sys.modules, "h5py", types.SimpleNamespace(File=_FakeH5File))
    ds = A2DSentences(tmp_path, "test", num_frames=4)
    assert [(s.vid, s.frame, s.instance) for s in ds.samples] == [("vidTest", 3, 0)]
    s = ds[0]
    assert s["masks"][2].sum() == 12 and s["masks"][2, 1:4, 2:6].all()
    assert s["frame_ids"] == ["00001", "00002", "00003", "00004"] and s["exp_id"] == "0"
    assert abs(int(s["frames"][2, 0, 0, 0]) - 30) <= 2
    wide = A2DSentences(tmp_path, "test", num_frames=10)
    w = wide[0]
    assert w["frame_ids"] == ["00001"] * 4 + ["00002", "00003", "00004", "00005", "00006", "00006"]
    assert w["frame_ids"][w["target_index"]] == "00003" and w["masks"][w["target_index"]].any()


def test_a2d_reader_with_h5(tmp_path):
    pytest.importorskip("h5py")
    make_a2d(tmp_path, h5=True)
    ds = A2DSentences(tmp_path, "test", num_frames=4)
    assert len(ds) == 1
    s = ds[0]
    assert s["frames"].shape == (4, H, W, 3) and s["target_index"] == 2
    assert s["frame_ids"] == ["00001", "00002", "00003", "00004"]
    assert s["mask_valid"].tolist() == [False, False, True, False]
    assert s["masks"][2].sum() == 12 and s["masks"][2, 1:4, 2:6].all()
    assert s["image_id"] == "v_vidTest_f_3_i_0" and s["sentence"] == "the dog, running left"


# --------------------------------------------------------------------------------------------
# JHMDB-Sentences


def make_jhmdb(root: Path) -> Path:
    vid = "clip_pullup_0"
    frames = root / "Rename_Images" / "pullup" / vid
    frames.mkdir(parents=True)
    for t in range(1, 8):
        Image.fromarray(_frame(t)).save(frames / f"{t:05d}.png")
    masks = np.zeros((H, W, 6), dtype=np.uint8)  # one frame fewer than the video
    for t in range(6):
        masks[t % H, :, t] = 1
    (root / "puppet_mask" / "pullup" / vid).mkdir(parents=True)
    scipy.io.savemat(
        root / "puppet_mask" / "pullup" / vid / "puppet_mask.mat", {"part_mask": masks}
    )
    (root / "jhmdb_annotation.txt").write_text(f"video_id,query\n{vid},Man  Pulling Up\n")
    return root


def test_jhmdb_samples_and_clip(tmp_path):
    make_jhmdb(tmp_path)
    ds = JHMDBSentences(tmp_path, num_frames=4, frames_per_video=3, seed=1)
    assert len(ds) == 3
    assert all(1 <= s.frame <= 6 and s.n_frames == 6 for s in ds.samples)
    assert JHMDBSentences(tmp_path, seed=1).samples == ds.samples
    s = ds[0]
    frame = ds.samples[0].frame
    assert s["sentence"] == "man pulling up" and s["image_id"] == f"v_clip_pullup_0_f_{frame}"
    assert s["frames"].shape == (4, H, W, 3) and s["mask_valid"].sum() == 1
    assert s["masks"][2, (frame - 1) % H].all() and s["masks"][2].sum() == W


def test_jhmdb_samples_file(tmp_path):
    make_jhmdb(tmp_path)
    meta = [
        [
            "clip_pullup_0",
            "./jhmdb_sentences/Rename_Images/pullup/clip_pullup_0/00006.png",
            "./jhmdb_sentences/puppet_mask/pullup/clip_pullup_0/puppet_mask.mat",
            6,
            "man pulling up",
        ]
    ]
    (tmp_path / "samples.json").write_text(json.dumps(meta))
    ds = JHMDBSentences(tmp_path, num_frames=4, samples_file=tmp_path / "samples.json")
    assert len(ds) == 1 and ds[0]["frame_ids"] == ["00004", "00005", "00006", "00006"]
    (tmp_path / "jhmdb_annotation.txt").write_text("video_id,query\nunknown_video,x\n")
    with pytest.raises(InputError, match="has no frame folder"):
        JHMDBSentences(tmp_path)
