"""`read_aux` / `normalise_aux` with ``div255``, the official XMSNet reading of a depth or
thermal map (``Image.open(p).convert('L')`` then ``ToTensor``: value / 255), against PIL itself;
``minmax`` stays cmseg's default."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from cmseg import io
from cmseg.errors import InputError


def save(path: Path, img: Image.Image) -> Path:
    img.save(path)
    return path


def official(path: Path) -> np.ndarray:
    """What the official loader feeds: PIL's 'L' conversion, then ToTensor's float32 / 255."""
    with Image.open(path) as img:
        return np.asarray(img.convert("L"), dtype=np.float32) / np.float32(255)


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("channels", [3, 4])
def test_pil_luma_is_pil_bit_for_bit(seed, channels):
    rng = np.random.default_rng(seed)
    rgb = rng.integers(0, 256, (37 + seed, 53, channels), dtype=np.uint8)
    if seed == 0:  # the extremes and the rounding edges of every channel
        rgb[0, :3, :3] = [[255, 255, 255], [0, 0, 0], [1, 1, 1]]
    mode = "RGB" if channels == 3 else "RGBA"
    expected = np.asarray(Image.fromarray(rgb, mode).convert("L"))
    out = io.pil_luma(rgb)
    assert out.dtype == np.uint8
    np.testing.assert_array_equal(out, expected)


def test_pil_luma_covers_every_grey_and_channel_value():
    # every value of each channel alone, and every grey: the 3 x 256 + 256 rounding cases
    levels = np.arange(256, dtype=np.uint8)
    rgb = np.zeros((4, 256, 3), np.uint8)
    for c in range(3):
        rgb[c, :, c] = levels
    rgb[3] = levels[:, None]
    np.testing.assert_array_equal(io.pil_luma(rgb), np.asarray(Image.fromarray(rgb).convert("L")))


def test_div255_8bit_png_is_the_official_value(tmp_path):
    rng = np.random.default_rng(0)
    arr = rng.integers(0, 256, (20, 30), dtype=np.uint8)
    arr[0, 0], arr[0, 1] = 0, 255
    path = save(tmp_path / "d.png", Image.fromarray(arr))
    values, valid = io.read_aux(path, normalisation="div255")
    assert values.dtype == np.float32 and valid.all()
    np.testing.assert_array_equal(values, official(path))  # bit for bit, no stretching
    # minmax (the default) stretches the same map
    narrow = save(tmp_path / "n.png", Image.fromarray(np.array([[50, 100]], np.uint8)))
    np.testing.assert_array_equal(io.read_aux(narrow)[0], [[0, 1]])
    np.testing.assert_array_equal(io.read_aux(narrow, normalisation="div255")[0], official(narrow))


@pytest.mark.parametrize("mode", ["RGB", "RGBA", "P", "LA"])
def test_div255_colour_thermal_maps_go_through_pils_luma(tmp_path, mode):
    rng = np.random.default_rng(1)
    rgb = rng.integers(0, 256, (16, 24, 3), dtype=np.uint8)
    img = Image.fromarray(rgb)
    if mode == "P":
        img = img.quantize(64)
    elif mode != "RGB":
        img = img.convert(mode)
    path = save(tmp_path / "t.png", img)
    values, valid = io.read_aux(path, normalisation="div255")
    assert valid.all()
    np.testing.assert_array_equal(values, official(path))
    # the same colour map given as an array (the predictor's path) gives the same values
    if mode == "RGB":
        array_values, _ = io.normalise_aux(rgb, mode="div255")
        np.testing.assert_array_equal(array_values, values)
    # minmax keeps its own reading: the channel mean, stretched
    if mode == "RGB":
        mean = rgb.astype(np.float64).mean(axis=2)
        expected = (mean - mean.min()) / (mean.max() - mean.min())
        np.testing.assert_allclose(io.read_aux(path)[0], expected, rtol=1e-6)


def test_div255_16bit_float_and_holes(tmp_path):
    # 16-bit: the full range 0..65535 (PIL's 'L' conversion would clip at 255: not reproduced)
    arr16 = np.array([[0, 1000], [32768, 65535]], np.uint16)
    values, valid = io.read_aux(
        save(tmp_path / "d16.png", Image.fromarray(arr16)), normalisation="div255"
    )
    assert valid.all()
    np.testing.assert_array_equal(values, arr16.astype(np.float32) / np.float32(65535))
    # other integer arrays: 0..255 as 8 bits, up to 65535 as 16 bits, anything else refused
    ints = np.array([[0, 51], [102, 255]], np.int64)
    np.testing.assert_array_equal(
        io.normalise_aux(ints, mode="div255")[0], ints.astype(np.float32) / np.float32(255)
    )
    with pytest.raises(ValueError, match="minmax"):
        io.normalise_aux(np.array([[-1, 3]], np.int32), mode="div255")
    with pytest.raises(ValueError, match="minmax"):
        io.normalise_aux(np.array([[0, 70000]], np.int32), mode="div255")
    # float maps in [0, 1] as they are; NaN/inf are holes (0, invalid); zeros optionally too
    floats = np.array([[0.0, 0.25, np.nan], [1.0, np.inf, 0.5]], np.float32)
    np.save(tmp_path / "f.npy", floats)
    values, valid = io.read_aux(tmp_path / "f.npy", normalisation="div255")
    np.testing.assert_array_equal(valid, [[True, True, False], [True, False, True]])
    np.testing.assert_array_equal(values, [[0, 0.25, 0], [1, 0, 0.5]])
    values, valid = io.read_aux(tmp_path / "f.npy", normalisation="div255", zero_is_invalid=True)
    assert not valid[0, 0] and values[0, 0] == 0
    # a float map outside [0, 1] (metres, or 0..255) has no div255 reading: one line
    np.save(tmp_path / "m.npy", np.array([[0.5, 7.25], [1.0, 2.0]], np.float32))
    with pytest.raises(InputError, match=r"m\.npy: .*outside \[0, 1\].*minmax"):
        io.read_aux(tmp_path / "m.npy", normalisation="div255")
    # bool maps are 0/1
    np.testing.assert_array_equal(
        io.normalise_aux(np.array([[True, False]]), mode="div255")[0], [[1, 0]]
    )


def test_unknown_normalisation_is_refused(tmp_path):
    path = save(tmp_path / "d.png", Image.fromarray(np.zeros((2, 2), np.uint8)))
    with pytest.raises(ValueError, match="div255"):
        io.read_aux(path, normalisation="zscore")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="minmax"):
        io.normalise_aux(np.zeros((2, 2)), mode="max")  # type: ignore[arg-type]
    assert io.AUX_NORMALISATIONS == ("minmax", "div255")
