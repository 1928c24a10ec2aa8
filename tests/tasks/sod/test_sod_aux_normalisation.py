"""``data.options.aux_normalisation``: ``div255`` (the official XMSNet input) through training's
reader, validation, the checkpoint, ``SODPredictor`` and ``cmseg predict sod``; the paper
configs use it, the CPU/demo configs keep ``minmax``; a converted official checkpoint receives
exactly the tensor the official test loader builds."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
import yaml
from PIL import Image
from torchvision import transforms

from cmseg.cli import main
from cmseg.config import RunConfig, load_config, to_dict
from cmseg.data.formats.sod_folders import SODFolders
from cmseg.data.synthetic import write_synthetic
from cmseg.engine.checkpoint import save_checkpoint
from cmseg.errors import ConfigError, InputError
from cmseg.io import read_aux, read_grey, write_png
from cmseg.models import build_model
from cmseg.predictors import SODPredictor
from cmseg.tasks.sod.options import SODOptions
from cmseg.tasks.sod.process import preprocess
from cmseg.tasks.sod.train import build_training

ROOT = Path(__file__).resolve().parents[3]
TINY = ROOT / "configs" / "sod" / "xmsnet_tiny.yaml"

pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py


def _official_layout():
    """tests/models/xmsnet/test_convert.py's `_official_state`: a model's weights under the
    official XMSNet names, written from the official sources (not from the converter)."""
    path = ROOT / "tests" / "models" / "xmsnet" / "test_convert.py"
    spec = importlib.util.spec_from_file_location("_xmsnet_official_layout", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module._official_state


def official_grey(path: Path) -> np.ndarray:
    """PIL's 'L' reading of a map / 255, ``float32`` (H, W)."""
    with Image.open(path) as img:
        return np.asarray(img.convert("L"), dtype=np.float32) / np.float32(255)


def official_test_aux(path: Path, size: int = 384) -> torch.Tensor:
    """The official test loader's depth tensor (XMSNet/SPNet ``test_dataset``): PIL 'L',
    ``transforms.Resize((size, size))`` (PIL bilinear on the 8-bit map), ``ToTensor``."""
    with Image.open(path) as img:
        grey = img.convert("L")
    pipeline = transforms.Compose([transforms.Resize((size, size)), transforms.ToTensor()])
    return pipeline(grey)


# --------------------------------------------------------------------------------------------
# Options, configs, the training reader and validation


def test_option_is_checked_and_defaults_to_minmax():
    assert SODOptions().aux_normalisation == "minmax"
    assert SODOptions.from_config({"aux_normalisation": "div255"}).aux_normalisation == "div255"
    with pytest.raises(ConfigError, match="data.options.aux_normalisation.*'minmax', 'div255'"):
        SODOptions.from_config({"aux_normalisation": "zscore"})


def test_paper_configs_use_div255_and_cpu_configs_minmax():
    for path in sorted((ROOT / "configs" / "sod").glob("*.yaml")):
        options = yaml.safe_load(path.read_text())["data"].get("options") or {}
        expected = "div255" if path.name.startswith("xmsnet_pvt_v2_b5_") else "minmax"
        assert options.get("aux_normalisation", "minmax") == expected, path.name


@pytest.fixture(scope="module")
def synth(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("synth_sod")
    write_synthetic("sod", root, n=8, size=64, seed=0)
    return root


def test_training_reader_and_validation_follow_the_option(synth, tmp_path):
    cfg = load_config(
        RunConfig,
        TINY,
        [
            f"data.root={synth}",
            f"output_dir={tmp_path / 'run'}",
            "data.train_sets=[train]",
            "data.val_sets=[test]",
            "model.image_size=64",
            "data.batch_size=2",
            "data.num_workers=0",
            "data.options.aux_normalisation=div255",
        ],
    )
    setup = build_training(cfg)
    train_set, validator = setup.train_dataset, setup.validate
    assert train_set.aux_normalisation == "div255"
    assert validator.dataset.aux_normalisation == "div255"
    sample = train_set[0]
    path = train_set.samples[0].aux
    raw = read_grey(path)
    np.testing.assert_array_equal(sample["aux"], raw.astype(np.float32) / np.float32(255))
    # validation feeds that map resized, not stretched again (preprocess with the same mode)
    val_sample = validator.dataset[0]
    _, expected = preprocess(val_sample["image"], val_sample["aux"], 64, aux_normalisation="div255")
    from cmseg.tasks.sod.validate import _ValItems

    _, fed, _, _ = _ValItems(validator.dataset, [0], 64)[0]
    assert torch.equal(fed, expected)
    stretched = preprocess(val_sample["image"], val_sample["aux"], 64)[1]
    assert not torch.equal(fed, stretched)
    # minmax (the default) reads the same file stretched over its range
    assert SODFolders(synth, sets=["train"]).aux_normalisation == "minmax"


# --------------------------------------------------------------------------------------------
# The predictor: a converted official checkpoint receives the official tensor


@pytest.fixture(scope="module")
def official_state():
    torch.manual_seed(0)
    model = build_model("xmsnet_tiny", official=True)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.02)
    return _official_layout()(model)


def write_maps(folder: Path, size: int) -> tuple[Path, Path, Path]:
    """An RGB image, an 8-bit depth PNG and a colour (RGB) thermal PNG of ``size``."""
    rng = np.random.default_rng(size)
    folder.mkdir(parents=True, exist_ok=True)
    rgb = folder / "rgb.png"
    write_png(rgb, rng.integers(0, 256, (size, size, 3), dtype=np.uint8))
    depth = np.zeros((size, size), np.uint8)
    depth[size // 4 : 3 * size // 4, size // 3 :] = 180
    depth += rng.integers(0, 60, (size, size), dtype=np.uint8)
    write_png(folder / "depth.png", depth)
    thermal = rng.integers(0, 256, (size, size, 3), dtype=np.uint8)
    thermal[size // 3 :, : size // 2] = (250, 120, 30)  # a warm, coloured region
    write_png(folder / "thermal.png", thermal)
    return rgb, folder / "depth.png", folder / "thermal.png"


def captured_aux(predictor: SODPredictor, rgb: np.ndarray, aux: np.ndarray) -> torch.Tensor:
    """The aux tensor the network's forward receives, caught with a forward pre-hook."""
    seen: list[torch.Tensor] = []
    handle = predictor.model.register_forward_pre_hook(
        lambda module, args: seen.append(args[1].detach().clone())
    )
    try:
        predictor.set_image(rgb, aux)
        predictor.predict()
    finally:
        handle.remove()
    assert len(seen) == 1
    return seen[0][0].float().contiguous()


def test_official_checkpoint_receives_the_official_tensor(official_state, tmp_path):
    pth = tmp_path / "XMSNet_epoch_best.pth"
    torch.save({f"module.{k}": v for k, v in official_state.items()}, pth)  # DataParallel
    predictor = SODPredictor.from_official(pth, device="cpu", model="xmsnet_tiny", amp="off")
    assert predictor.aux_normalisation == "div255" and predictor.image_size == 384
    for size, exact in ((384, True), (192, False)):
        rgb_path, depth_path, thermal_path = write_maps(tmp_path / str(size), size)
        rgb = np.asarray(Image.open(rgb_path).convert("RGB"))
        for path in (depth_path, thermal_path):
            official = official_test_aux(path)
            as_stored = np.asarray(Image.open(path))  # uint8 (H, W) or colour (H, W, 3)
            assert as_stored.ndim == (2 if path == depth_path else 3)
            # the raw array (the API) and read_aux's output (the CLI) are fed alike
            for given in (as_stored, read_aux(path, normalisation="div255")[0]):
                fed = captured_aux(predictor, rgb, given)
                assert fed.shape == official.shape == (1, 384, 384)
                if exact:  # no resize: value / 255 of PIL's 'L', to the last bit
                    assert torch.equal(fed, official), path.name
                else:
                    # cmseg: bilinear (align_corners=False) resize of value / 255 in float ...
                    grey = torch.from_numpy(official_grey(path))[None, None]
                    exact_resize = F.interpolate(
                        grey, size=(384, 384), mode="bilinear", align_corners=False
                    )[0]
                    assert (fed - exact_resize).abs().max() < 1e-6, path.name
                    # ... the official: PIL's resize of the 8-bit map, two passes each rounded
                    # to 8 bits: the same geometry, within 1/255
                    diff = (fed - official).abs()
                    assert diff.max() <= 1 / 255 + 1e-6 and diff.mean() < 0.5 / 255, path.name
    # the minmax reading is a different tensor (it stretches the map over its own range)
    minmax = SODPredictor(predictor.model, image_size=384, device="cpu", amp="off")
    assert not torch.equal(captured_aux(minmax, rgb, as_stored), official)


def test_official_checkpoint_errors_name_the_file(official_state, tmp_path):
    broken = dict(official_state)
    del broken["fu_2.layer_att.0.weight"]
    pth = tmp_path / "broken.pth"
    torch.save(broken, pth)
    with pytest.raises(InputError, match=r"broken\.pth: .*1 missing"):
        SODPredictor.from_official(pth, device="cpu", model="xmsnet_tiny")
    with pytest.raises(InputError, match="weights file not found"):
        SODPredictor.from_official(tmp_path / "none.pth", device="cpu", model="xmsnet_tiny")


# --------------------------------------------------------------------------------------------
# The checkpoint records the option; from_checkpoint and `cmseg predict sod` follow it


def checkpoint(folder: Path, *overrides: str) -> Path:
    cfg = load_config(RunConfig, TINY, ["model.image_size=64", *overrides])
    torch.manual_seed(0)
    model = build_model("xmsnet_tiny")
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.01)
    return save_checkpoint(
        folder, model.state_dict(), step=1, model_name="xmsnet_tiny", config=to_dict(cfg)
    )


def test_from_checkpoint_and_predict_follow_the_checkpoint(tmp_path, caplog):
    div = checkpoint(tmp_path / "div", "data.options.aux_normalisation=div255")
    old = checkpoint(tmp_path / "old")  # no key: written as before the option existed
    assert SODPredictor.from_checkpoint(div, device="cpu").aux_normalisation == "div255"
    assert SODPredictor.from_checkpoint(old, device="cpu").aux_normalisation == "minmax"
    forced = SODPredictor.from_checkpoint(old, device="cpu", aux_normalisation="div255")
    assert forced.aux_normalisation == "div255" and "trained with aux_normalisation" in caplog.text
    with pytest.raises(ValueError, match="div255"):
        SODPredictor(forced.model, aux_normalisation="zscore")  # type: ignore[arg-type]

    rgb_path, depth_path, thermal_path = write_maps(tmp_path / "maps", 48)
    rgb = np.asarray(Image.open(rgb_path).convert("RGB"))
    predictor = SODPredictor.from_checkpoint(div, device="cpu", amp="off")
    for path in (depth_path, thermal_path):
        out = tmp_path / f"out_{path.stem}"
        code = main(
            ["predict", "sod", "--checkpoint", str(div), "--rgb", str(rgb_path),
             "--aux", str(path), "--out", str(out), "--device", "cpu"]
        )  # fmt: skip
        assert code == 0
        predictor.set_image(rgb, np.asarray(Image.open(path)))
        assert np.array_equal(read_grey(out / "rgb.png"), predictor.predict()), path.name
    # a hand-edited meta.json with an unknown value is one line naming the checkpoint
    meta = div / "meta.json"
    meta.write_text(meta.read_text().replace('"div255"', '"zscore"'))
    with pytest.raises(InputError, match="aux_normalisation"):
        SODPredictor.from_checkpoint(div, device="cpu")
