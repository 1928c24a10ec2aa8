"""SODFolders on the SPNet / VT5000 / COD release layouts, written by the tests themselves."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from cmseg.data.formats import SODFolders
from cmseg.data.formats.sod_folders import find_sets
from cmseg.errors import InputError

H, W = 12, 16


def _rgb(seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, size=(H, W, 3), dtype=np.uint8)


def _gt(seed: int) -> np.ndarray:
    gt = np.zeros((H, W), dtype=np.uint8)
    gt[2 + seed % 3 : 8, 3:10] = 255
    return gt


def write_set(
    folder: Path,
    names: list[str],
    *,
    rgb: str = "RGB",
    aux: str = "depth",
    gt: str = "GT",
    rgb_ext: str = ".jpg",
    aux_ext: str = ".png",
    gt_ext: str = ".png",
) -> None:
    """One set as the releases ship it: RGB JPEGs, 8/16-bit depth or JPEG thermal, PNG GT."""
    for sub in (rgb, aux, gt):
        (folder / sub).mkdir(parents=True, exist_ok=True)
    for i, name in enumerate(names):
        Image.fromarray(_rgb(i)).save(folder / rgb / f"{name}{rgb_ext}", quality=95)
        ramp = np.tile(np.linspace(0, 1, W), (H, 1))
        if aux_ext == ".png":  # 16-bit depth, as several RGB-D releases store it
            Image.fromarray((ramp * 4000 + 1000).astype(np.uint16)).save(
                folder / aux / f"{name}{aux_ext}"
            )
        elif aux_ext == ".npy":
            np.save(folder / aux / f"{name}{aux_ext}", ramp.astype(np.float32))
        else:
            Image.fromarray((ramp * 255).astype(np.uint8)).save(folder / aux / f"{name}{aux_ext}")
        Image.fromarray(_gt(i)).save(folder / gt / f"{name}{gt_ext}")


def make_sod(root: Path) -> Path:
    """Three test sets under one root, with the folder spellings of their releases."""
    write_set(root / "NJU2K", ["001", "002", "003"])
    write_set(root / "VT821", ["1", "2"], aux="T", aux_ext=".jpg")
    write_set(
        root / "COD10K",
        ["camo_1", "camo_2"],
        rgb="Imgs",
        aux="Depth",
        gt="GT_Object",
        aux_ext=".bmp",
    )
    return root


def test_reads_every_set_paired_by_stem(tmp_path):
    ds = SODFolders(make_sod(tmp_path))
    assert ds.sets == ["COD10K", "NJU2K", "VT821"]
    assert len(ds) == 7
    names = [(s.set, s.name) for s in ds.samples]
    assert ("NJU2K", "002") in names and ("VT821", "1") in names
    sample = ds[[s.name for s in ds.samples].index("002")]
    assert set(sample) == {"image", "aux", "aux_valid", "mask", "name", "set"}
    assert sample["image"].dtype == np.uint8 and sample["image"].shape == (H, W, 3)
    assert sample["aux"].dtype == np.float32 and sample["aux"].shape == (H, W)
    assert sample["aux"].min() == 0.0 and sample["aux"].max() == 1.0
    assert sample["aux_valid"].dtype == bool and sample["aux_valid"].all()
    assert sample["mask"].dtype == bool
    np.testing.assert_array_equal(sample["mask"], _gt(1) > 0)
    assert sample["name"] == "002" and sample["set"] == "NJU2K"


def test_a_single_set_root_and_set_selection(tmp_path):
    make_sod(tmp_path)
    one = SODFolders(tmp_path / "VT821")
    assert one.sets == ["VT821"] and len(one) == 2
    picked = SODFolders(tmp_path, sets=["COD10K"])
    assert [s.name for s in picked.samples] == ["camo_1", "camo_2"]
    with pytest.raises(InputError, match="no set named NOPE"):
        SODFolders(tmp_path, sets=["NOPE"])


def test_any_extension_pairs_by_stem(tmp_path):
    write_set(tmp_path, ["a", "b"], rgb_ext=".png", aux_ext=".npy", gt_ext=".bmp")
    ds = SODFolders(tmp_path)
    assert len(ds) == 2
    assert ds[0]["aux"].shape == (H, W)


def test_missing_partner_names_the_file(tmp_path):
    make_sod(tmp_path)
    (tmp_path / "NJU2K" / "depth" / "002.png").unlink()
    with pytest.raises(InputError) as info:
        SODFolders(tmp_path)
    text = str(info.value)
    assert "002.jpg" in text and "no depth/thermal map" in text and "cmseg data check sod" in text


def test_missing_folders_list_the_names_looked_for(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputError, match=r"no RGB folder \(looked for RGB, Image, Images, Imgs"):
        SODFolders(tmp_path / "empty")
    write_set(tmp_path / "x", ["1"])
    for f in (tmp_path / "x" / "GT").iterdir():
        f.unlink()
    (tmp_path / "x" / "GT").rmdir()
    with pytest.raises(InputError, match="no GT folder"):
        SODFolders(tmp_path / "x")
    assert "mask" not in SODFolders(tmp_path / "x", require_gt=False)[0]


def test_size_mismatch_is_reported_when_read(tmp_path):
    write_set(tmp_path, ["1"])
    Image.fromarray(np.zeros((H + 1, W), dtype=np.uint8)).save(tmp_path / "GT" / "1.png")
    ds = SODFolders(tmp_path)
    with pytest.raises(InputError, match=r"GT mask is 16x13 but 1.jpg is 16x12"):
        ds[0]


def test_transform_indexing_and_iteration(tmp_path):
    write_set(tmp_path, ["1", "2"])
    ds = SODFolders(tmp_path, transform=lambda s: s["name"])
    assert ds[-1] == "2"
    assert list(ds) == ["1", "2"]
    with pytest.raises(IndexError):
        ds[2]


def test_zero_depth_can_be_invalid(tmp_path):
    write_set(tmp_path, ["1"], aux_ext=".bmp")
    depth = np.full((H, W), 100, dtype=np.uint8)
    depth[0, :4] = 0
    Image.fromarray(depth).save(tmp_path / "depth" / "1.bmp")
    sample = SODFolders(tmp_path, zero_is_invalid=True)[0]
    assert not sample["aux_valid"][0, :4].any() and sample["aux_valid"][1:].all()


def test_npz_maps_with_several_arrays_are_read_by_key(tmp_path):
    write_set(tmp_path, ["1"], aux_ext=".npy")
    (tmp_path / "depth" / "1.npy").unlink()
    ramp = np.tile(np.linspace(0, 1, W), (H, 1)).astype(np.float32)
    np.savez(tmp_path / "depth" / "1.npz", depth=ramp, confidence=np.ones((H, W)))
    with pytest.raises(InputError, match="--aux-key"):
        SODFolders(tmp_path)[0]
    sample = SODFolders(tmp_path, aux_key="depth")[0]
    np.testing.assert_allclose(sample["aux"], ramp, atol=1e-6)


def test_find_sets_ignores_unrelated_folders(tmp_path):
    make_sod(tmp_path)
    (tmp_path / "notes").mkdir()
    assert [p.name for p in find_sets(tmp_path)] == ["COD10K", "NJU2K", "VT821"]


def test_two_files_of_one_stem_are_reported_as_ambiguous(tmp_path):
    from cmseg.data.pairing import index_by_stem, pair_files

    for name in ("a.png", "a.jpg", "b.png"):
        (tmp_path / "gt" / name).parent.mkdir(exist_ok=True)
        (tmp_path / "gt" / name).write_bytes(b"")
    problems: list[str] = []
    assert set(index_by_stem(tmp_path / "gt", problems=problems)) == {"a", "b"}
    assert problems == [
        f"{tmp_path / 'gt' / 'a'}: ambiguous name, two files a.jpg and a.png; remove or rename one"
    ]
    (tmp_path / "pred").mkdir()
    assert pair_files(tmp_path / "pred", tmp_path / "gt").problems == problems
