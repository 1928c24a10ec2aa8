"""Readers and writers of cmseg.io on every format they claim, and on bad input."""

from __future__ import annotations

import io as pyio
import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from cmseg import io
from cmseg.errors import InputError

RNG = np.random.default_rng(0)
RGB = RNG.integers(0, 256, size=(7, 9, 3), dtype=np.uint8)


def save(path: Path, img: Image.Image, **kwargs) -> Path:
    img.save(path, **kwargs)
    return path


# ---------------------------------------------------------------------------------------------
# read_image


@pytest.mark.parametrize("ext", ["png", "bmp", "tif", "tiff", "webp"])
def test_read_image_lossless_formats_round_trip(tmp_path, ext):
    kwargs = {"lossless": True} if ext == "webp" else {}
    path = save(tmp_path / f"a.{ext}", Image.fromarray(RGB), **kwargs)
    out = io.read_image(path)
    assert out.dtype == np.uint8 and out.shape == (7, 9, 3)
    np.testing.assert_array_equal(out, RGB)


@pytest.mark.parametrize("ext", ["jpg", "jpeg"])
def test_read_image_jpeg(tmp_path, ext):
    flat = np.full((8, 8, 3), (200, 30, 60), dtype=np.uint8)
    out = io.read_image(save(tmp_path / f"a.{ext}", Image.fromarray(flat), quality=95))
    assert out.shape == (8, 8, 3)
    assert np.abs(out.astype(int) - flat).max() <= 3


def test_read_image_grey_rgba_palette(tmp_path):
    grey = RGB[..., 0]
    out = io.read_image(save(tmp_path / "g.png", Image.fromarray(grey)))
    np.testing.assert_array_equal(out, np.repeat(grey[..., None], 3, axis=2))

    rgba = np.dstack([RGB, np.full(RGB.shape[:2], 128, np.uint8)])
    np.testing.assert_array_equal(
        io.read_image(save(tmp_path / "a.png", Image.fromarray(rgba))), RGB
    )

    idx = (RGB[..., 0] % 3).astype(np.uint8)
    pal = Image.fromarray(idx, mode="L")
    pal.putpalette([0, 0, 0, 255, 0, 0, 0, 0, 255])
    out = io.read_image(save(tmp_path / "p.png", pal))
    np.testing.assert_array_equal(out[idx == 1], np.tile([255, 0, 0], ((idx == 1).sum(), 1)))
    np.testing.assert_array_equal(out[idx == 2], np.tile([0, 0, 255], ((idx == 2).sum(), 1)))


def test_read_image_16bit_grey_is_scaled(tmp_path):
    arr = np.array([[0, 65535], [257 * 100, 257 * 200]], dtype=np.uint16)
    out = io.read_image(save(tmp_path / "d.png", Image.fromarray(arr)))
    np.testing.assert_array_equal(out[..., 0], [[0, 255], [100, 200]])


def test_read_image_applies_exif_orientation(tmp_path):
    arr = np.zeros((4, 6, 3), np.uint8)
    arr[0, 0] = 255  # top-left marker
    img = Image.fromarray(arr)
    exif = img.getexif()
    exif[0x0112] = 6  # "rotate 90 CW to display"
    path = save(tmp_path / "r.jpg", img, exif=exif.tobytes(), quality=100)
    out = io.read_image(path)
    assert out.shape == (6, 4, 3)
    assert out[0, -1].mean() > 200  # the marker moved to the top-right corner


def test_read_image_content_sniffed_not_extension(tmp_path):
    """A JPEG saved under a .png name still reads (the content decides the decoder)."""
    path = save(tmp_path / "actually_jpeg.png", Image.fromarray(RGB), format="JPEG")
    assert io.read_image(path).shape == (7, 9, 3)


# ---------------------------------------------------------------------------------------------
# bad input: each gives InputError naming the file


def _truncated_png(tmp_path: Path) -> Path:
    buf = pyio.BytesIO()
    Image.fromarray(RNG.integers(0, 256, (64, 64, 3), dtype=np.uint8)).save(buf, format="PNG")
    path = tmp_path / "cut.png"
    path.write_bytes(buf.getvalue()[: len(buf.getvalue()) // 2])
    return path


@pytest.mark.parametrize(
    "reader", [io.read_image, io.read_mask, io.read_grey, io.read_index_mask, io.read_aux]
)
def test_bad_inputs_raise_one_line_input_error(tmp_path, reader):
    cases = {
        "truncated": _truncated_png(tmp_path),
        "zero bytes": tmp_path / "empty.png",
        "directory": tmp_path / "adir.png",
        "not an image": tmp_path / "text.png",
        "wrong extension": tmp_path / "data.txt",
        "missing": tmp_path / "nope.png",
    }
    cases["zero bytes"].write_bytes(b"")
    cases["directory"].mkdir()
    cases["not an image"].write_text("hello, not a PNG")
    cases["wrong extension"].write_bytes(b"\x89PNG")
    expected = {
        "truncated": "truncated",
        "zero bytes": "empty",
        "directory": "directory",
        "not an image": "not a readable image",
        "wrong extension": "unsupported extension",
        "missing": "no such file",
    }
    for name, path in cases.items():
        with pytest.raises(InputError) as info:
            reader(path)
        err = info.value
        assert err.path == str(path), name
        assert expected[name] in err.reason, (name, err.reason)
        assert "\n" not in str(err)
        assert str(err).startswith(str(path) + ": ")


def test_pixel_limit_refuses_decompression_bombs(tmp_path):
    path = save(tmp_path / "big.png", Image.new("L", (300, 200)))
    with pytest.raises(InputError, match="exceeds the limit"):
        io.read_image(path, max_pixels=300 * 200 - 1)
    assert io.read_image(path, max_pixels=300 * 200).shape == (200, 300, 3)
    np.save(tmp_path / "big.npy", np.zeros((200, 300), np.float32))
    with pytest.raises(InputError, match="exceeds the limit"):
        io.read_aux(tmp_path / "big.npy", max_pixels=1000)


# ---------------------------------------------------------------------------------------------
# read_mask / read_index_mask / read_grey


def test_read_mask_variants(tmp_path):
    binary = np.zeros((5, 5), np.uint8)
    binary[1:3, 1:4] = 255
    expected = binary > 0
    np.testing.assert_array_equal(
        io.read_mask(save(tmp_path / "m.png", Image.fromarray(binary))), expected
    )
    zero_one = (binary > 0).astype(np.uint8)
    np.testing.assert_array_equal(
        io.read_mask(save(tmp_path / "01.png", Image.fromarray(zero_one))), expected
    )
    rgb = np.repeat(binary[..., None], 3, axis=2)
    np.testing.assert_array_equal(
        io.read_mask(save(tmp_path / "rgb.png", Image.fromarray(rgb))), expected
    )
    pal = Image.fromarray(zero_one * 2, mode="L")
    pal.putpalette([0, 0, 0, 0, 0, 0, 200, 0, 0])
    np.testing.assert_array_equal(io.read_mask(save(tmp_path / "p.png", pal)), expected)


def test_read_mask_non_binary(tmp_path):
    grey = np.array([[0, 100, 128], [200, 255, 127]], np.uint8)
    path = save(tmp_path / "soft.png", Image.fromarray(grey))
    np.testing.assert_array_equal(io.read_mask(path), grey > 127)
    with pytest.raises(InputError, match=r"not binary.*100, 127, 128, 200"):
        io.read_mask(path, strict=True)


def test_read_index_mask_palette_and_grey(tmp_path):
    idx = np.array([[0, 1, 2], [3, 0, 255]], np.uint8)
    pal = Image.fromarray(idx, mode="L")
    pal.putpalette([v % 256 for v in range(256 * 3)])
    np.testing.assert_array_equal(io.read_index_mask(save(tmp_path / "p.png", pal)), idx)
    np.testing.assert_array_equal(
        io.read_index_mask(save(tmp_path / "g.png", Image.fromarray(idx))), idx
    )
    colour = np.zeros((2, 2, 3), np.uint8)
    colour[0, 0] = (255, 0, 0)
    with pytest.raises(InputError, match="colour"):
        io.read_index_mask(save(tmp_path / "c.png", Image.fromarray(colour)))


def test_read_grey_converts_colour_with_luma(tmp_path):
    rgb = np.zeros((1, 3, 3), np.uint8)
    rgb[0, 0] = (255, 0, 0)
    rgb[0, 1] = (0, 255, 0)
    rgb[0, 2] = (255, 255, 255)
    out = io.read_grey(save(tmp_path / "c.png", Image.fromarray(rgb)))
    np.testing.assert_array_equal(out, [[76, 150, 255]])


# ---------------------------------------------------------------------------------------------
# read_aux


def test_read_aux_8bit_png_and_jpeg(tmp_path):
    arr = np.array([[10, 20], [30, 110]], np.uint8)
    values, valid = io.read_aux(save(tmp_path / "d.png", Image.fromarray(arr)))
    assert values.dtype == np.float32 and valid.all()
    np.testing.assert_allclose(values, [[0, 0.1], [0.2, 1.0]], atol=1e-6)
    values, valid = io.read_aux(
        save(tmp_path / "d.jpg", Image.fromarray(np.full((8, 8), 90, np.uint8)))
    )
    assert values.shape == (8, 8) and valid.all() and values.max() <= 1


def test_read_aux_16bit_png_keeps_full_precision(tmp_path):
    arr = np.array([[1000, 1001], [1002, 60000]], np.uint16)
    values, valid = io.read_aux(save(tmp_path / "d16.png", Image.fromarray(arr)))
    assert valid.all()
    expected = (arr.astype(np.float64) - 1000) / 59000
    np.testing.assert_allclose(values, expected, rtol=1e-6)
    assert values[0, 1] > 0  # one 16-bit step survives (an 8-bit reduction would lose it)


def test_read_aux_float_tiff_npy_npz(tmp_path):
    arr = np.array([[0.5, 1.5], [2.5, 4.5]], np.float32)
    expected = (arr - 0.5) / 4.0
    values, _ = io.read_aux(save(tmp_path / "d.tif", Image.fromarray(arr)))
    np.testing.assert_allclose(values, expected, rtol=1e-6)
    np.save(tmp_path / "d.npy", arr.astype(np.float64))
    np.testing.assert_allclose(io.read_aux(tmp_path / "d.npy")[0], expected, rtol=1e-6)
    np.savez(tmp_path / "one.npz", depth=arr)
    np.testing.assert_allclose(io.read_aux(tmp_path / "one.npz")[0], expected, rtol=1e-6)
    np.savez(tmp_path / "two.npz", depth=arr, conf=arr)
    np.testing.assert_allclose(
        io.read_aux(tmp_path / "two.npz", key="depth")[0], expected, rtol=1e-6
    )
    with pytest.raises(InputError, match=r"no array 'x' in the \.npz \(it holds conf, depth\)"):
        io.read_aux(tmp_path / "two.npz", key="x")
    # a key is ignored by formats that hold one map
    np.testing.assert_allclose(io.read_aux(tmp_path / "d.npy", key="depth")[0], expected, rtol=1e-6)


def test_read_aux_of_a_many_array_npz_lists_every_key(tmp_path):
    arrays = {f"k{i}": np.ones((2, 2), np.float32) for i in range(7)}
    np.savez(tmp_path / "many.npz", **arrays)
    with pytest.raises(InputError) as caught:
        io.read_aux(tmp_path / "many.npz")  # never the first array by chance
    reason = caught.value.reason
    assert "holds 7 arrays (k0, k1, k2, k3, k4, k5, k6)" in reason
    assert "--aux-key" in reason and "key=" in reason


def test_read_aux_nan_inf_are_invalid_and_excluded(tmp_path):
    arr = np.array([[np.nan, 2.0, 4.0], [np.inf, -np.inf, 3.0]], np.float32)
    np.save(tmp_path / "d.npy", arr)
    values, valid = io.read_aux(tmp_path / "d.npy")
    np.testing.assert_array_equal(valid, [[False, True, True], [False, False, True]])
    np.testing.assert_allclose(values, [[0, 0, 1], [0, 0, 0.5]])
    assert np.isfinite(values).all()


def test_read_aux_zeros_optionally_invalid(tmp_path):
    arr = np.array([[0, 100], [200, 300]], np.uint16)
    path = save(tmp_path / "z.png", Image.fromarray(arr))
    values, valid = io.read_aux(path)
    assert valid.all() and values[0, 0] == 0 and values[1, 1] == 1
    values, valid = io.read_aux(path, zero_is_invalid=True)
    np.testing.assert_array_equal(valid, [[False, True], [True, True]])
    np.testing.assert_allclose(values, [[0, 0], [0.5, 1]])


def test_read_aux_all_zero_map(tmp_path):
    path = save(tmp_path / "zero.png", Image.fromarray(np.zeros((4, 4), np.uint16)))
    values, valid = io.read_aux(path)
    assert valid.all() and not values.any()
    values, valid = io.read_aux(path, zero_is_invalid=True)
    assert not valid.any() and not values.any()


def test_read_aux_rejects_non_numeric_and_pickled_npy(tmp_path):
    np.save(tmp_path / "s.npy", np.array(["a", "b"]))
    with pytest.raises(InputError, match="2-D numeric"):
        io.read_aux(tmp_path / "s.npy")
    np.save(tmp_path / "o.npy", np.array([{"a": 1}], dtype=object), allow_pickle=True)
    with pytest.raises(InputError, match="not a readable numpy file"):
        io.read_aux(tmp_path / "o.npy")


# ---------------------------------------------------------------------------------------------
# writers


def test_write_png_round_trips(tmp_path):
    mask = RGB[..., 0] > 100
    io.write_png(tmp_path / "m.png", mask)
    np.testing.assert_array_equal(io.read_mask(tmp_path / "m.png", strict=True), mask)
    io.write_png(tmp_path / "rgb.png", RGB)
    np.testing.assert_array_equal(io.read_image(tmp_path / "rgb.png"), RGB)
    idx = (RGB[..., 1] % 4).astype(np.uint8)
    io.write_png(
        tmp_path / "i.png",
        idx,
        palette=np.array([[0, 0, 0], [255, 0, 0], [0, 255, 0], [0, 0, 255]]),
    )
    assert Image.open(tmp_path / "i.png").mode == "P"
    np.testing.assert_array_equal(io.read_index_mask(tmp_path / "i.png"), idx)
    deep = np.array([[0, 65535]], np.uint16)
    io.write_png(tmp_path / "d.png", deep)
    np.testing.assert_array_equal(np.asarray(Image.open(tmp_path / "d.png")), deep)
    with pytest.raises(ValueError):
        io.write_png(tmp_path / "bad.png", np.zeros((2, 2), np.float32))


def test_write_json_is_strict_and_atomic(tmp_path):
    target = tmp_path / "sub" / "r.json"
    io.write_json(
        target, {"a": np.float32(0.5), "b": np.arange(3), "nan": float("nan"), "p": Path("x")}
    )
    assert (
        target.read_text()
        == '{\n  "a": 0.5,\n  "b": [\n    0,\n    1,\n    2\n  ],\n  "nan": null,\n  "p": "x"\n}\n'
    )

    class Unserialisable:
        pass

    with pytest.raises(TypeError):
        io.write_json(target, {"x": Unserialisable()})
    # the old file is intact and no temporary file is left behind
    assert '"a": 0.5' in target.read_text()
    assert os.listdir(target.parent) == ["r.json"]


def test_atomic_open_keeps_old_file_on_error(tmp_path):
    target = tmp_path / "t.txt"
    target.write_text("old")
    with pytest.raises(RuntimeError), io.atomic_open(target) as handle:
        handle.write("half")
        raise RuntimeError("killed")
    assert target.read_text() == "old"
    assert os.listdir(tmp_path) == ["t.txt"]
    with pytest.raises(InputError, match="is a directory"):
        io.write_text(tmp_path, "x")
