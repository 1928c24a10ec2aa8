"""The coseg task: options, pre/postprocessing, training groups, the dictionary, training and
validation."""

from __future__ import annotations

import logging
import os
from collections import defaultdict
from pathlib import Path

import numpy as np
import pytest
import torch
from coseg_helpers import TINY_COCO_OPTIONS

from cmseg.config import RunConfig, load_config
from cmseg.engine.checkpoint import load_checkpoint
from cmseg.engine.trainer import Trainer
from cmseg.errors import ConfigError, InputError
from cmseg.metrics.masks import CosegEvaluator
from cmseg.tasks import TASKS
from cmseg.tasks.coseg.data import HELDOUT_SEED, DrawGroup, open_test_set
from cmseg.tasks.coseg.dictionary import cache_path
from cmseg.tasks.coseg.evaluate import ssnm_gt
from cmseg.tasks.coseg.options import CosegOptions
from cmseg.tasks.coseg.process import preprocess_group, resize_mask, restore_map, scoring_pair
from cmseg.tasks.coseg.train import build_coseg_model, build_training
from cmseg.tasks.coseg.validate import CosegValidator

ROOT = Path(__file__).resolve().parents[3]
TINY = ROOT / "configs" / "coseg" / "ssnm_tiny.yaml"
PAPER = ROOT / "configs" / "coseg" / "ssnm_vgg16_coco.yaml"

pytestmark = pytest.mark.usefixtures("one_thread")


def folders_config(root: Path, out: Path, *extra: str) -> RunConfig:
    return load_config(
        RunConfig,
        TINY,
        [
            f"data.root={root}",
            f"output_dir={out}",
            "model.image_size=64",
            "data.batch_size=2",
            "data.num_workers=0",
            "data.options.group_size=3",
            "train.device=cpu",
            "train.max_steps=2",
            "train.eval_every=2",
            "train.tensorboard=false",
            *extra,
        ],
    )


def coco_config(root: Path, out: Path, *extra: str) -> RunConfig:
    return folders_config(
        root,
        out,
        "data.format=coco",
        "data.train_sets=[]",
        "data.val_sets=[]",
        "data.options.heldout_images=6",
        f"data.options.dictionary_cache={out / 'cache'}",
        *TINY_COCO_OPTIONS,
        *extra,
    )


# --------------------------------------------------------------------------------------------
# Options, configs, registration


def test_task_is_registered_with_train_predict_and_demo():
    task = TASKS["coseg"]
    assert task.built("train") and task.built("predict") and task.built("demo")
    assert task.models == ("ssnm_vgg16", "ssnm_tiny")


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"group_sze": 5}, "group_sze"),
        ({"group_size": 1}, "group_size must be >= 2"),
        ({"foreground_weight": "hed"}, "foreground_weight must be one of official, balanced"),
        ({"protocol": "coco"}, "protocol"),
        ({"loss_weights": [1, 1]}, "loss_weights"),
        ({"heldout_images": -1}, "heldout_images"),
    ],
)
def test_bad_options_are_one_line_config_errors(options, message):
    with pytest.raises(ConfigError, match=message) as info:
        CosegOptions.from_config(options)
    assert "\n" not in str(info.value)


def test_paper_config_is_the_official_recipe():
    cfg = load_config(RunConfig, PAPER)
    assert (cfg.task, cfg.model.name, cfg.model.image_size) == ("coseg", "ssnm_vgg16", 224)
    assert (cfg.data.format, cfg.data.batch_size) == ("coco", 4)
    opts = CosegOptions.from_config(cfg.data.options)
    assert (opts.group_size, opts.heldout_images, opts.min_area, opts.min_images) == (
        5, 500, 4000, 100,
    )  # fmt: skip
    assert opts.foreground_weight == "official" and opts.protocol == "ssnm" and not opts.flip
    assert (cfg.optim.name, cfg.optim.lr, cfg.optim.weight_decay) == ("adam", 1e-5, 1e-6)
    assert not cfg.optim.reset_on_decay
    assert (cfg.schedule.name, cfg.schedule.step_size, cfg.schedule.gamma) == ("step", 20000, 0.5)
    assert (cfg.train.max_steps, cfg.train.eval_every, cfg.train.best_metric) == (
        100000, 1000, "heldout/J",
    )  # fmt: skip
    assert cfg.data.val_sets == ["MSRC7", "Internet_Datasets300", "iCoseg8", "PASCAL_VOC"]
    CosegOptions.from_config(load_config(RunConfig, TINY).data.options)
    # the section builds the paper's network (the VGG weights file is not read here)
    model = build_coseg_model(cfg.model, 78, weights=False)
    assert sum(p.numel() for p in model.parameters()) == pytest.approx(40.8e6, rel=0.01)
    with pytest.raises(ConfigError, match="num_classes is set by the task"):
        build_coseg_model({"name": "ssnm_tiny", "options": {"num_classes": 3}}, 3)


# --------------------------------------------------------------------------------------------
# Pre- and postprocessing


def test_preprocess_resizes_every_image_to_the_square_and_normalises():
    images = [np.full((30, 50, 3), 255, np.uint8), np.zeros((70, 20), np.uint8)]
    x = preprocess_group(images, 64)
    assert x.shape == (2, 3, 64, 64) and x.dtype == torch.float32
    assert torch.allclose(x[0, 0], torch.full((64, 64), (1 - 0.485) / 0.229))
    assert torch.allclose(x[1, 2], torch.full((64, 64), -0.406 / 0.225))
    with pytest.raises(ValueError, match="uint8"):
        preprocess_group([np.zeros((4, 4, 3), np.float32)], 32)


def test_masks_are_resized_and_kept_above_half_as_ssnm():
    mask = np.zeros((40, 80), bool)
    mask[10:30, 20:60] = True
    small = resize_mask(mask, 32)
    assert small.shape == (32, 32) and small.dtype == bool
    assert (small == ssnm_gt(mask.astype(np.uint8) * 255, 32)).all()
    ys, xs = np.nonzero(small)
    assert (ys.min(), ys.max(), xs.min(), xs.max()) == (8, 23, 8, 23)


def test_maps_go_back_to_each_image_size_and_score_at_224():
    prob = torch.zeros(64, 64)
    prob[16:48, 16:48] = 1.0
    back = restore_map(prob, (30, 90))
    assert back.shape == (30, 90) and back.dtype == np.float32
    assert 0.0 <= back.min() and back.max() <= 1.0 and back[15, 45] == 1.0
    gt = np.zeros((30, 90), bool)
    gt[8:22, 22:68] = True
    pred, target = scoring_pair(prob, gt.astype(np.uint8) * 255, "ssnm")
    assert pred.shape == target.shape == (224, 224)
    pred, target = scoring_pair(prob, gt, "native")
    assert pred.shape == target.shape == (30, 90)


# --------------------------------------------------------------------------------------------
# Training groups


def test_folder_groups_hold_out_images_and_draw_from_the_rest(synth, tmp_path, stand_in):
    setup = build_training(folders_config(synth, tmp_path))
    pools = setup.train_dataset.pools
    assert pools.classes == sorted(pools.classes) and len(pools.classes) == 3
    for cls in pools.classes:
        held = {it.name for it in pools.heldout[cls]}
        train = {it.name for it in pools.pools[cls]}
        assert len(held) == 5 and len(train) == 10 and not held & train
    # the held-out draw does not depend on train.seed
    again = build_training(folders_config(synth, tmp_path, "train.seed=7")).train_dataset.pools
    assert {c: [i.name for i in v] for c, v in again.heldout.items()} == {
        c: [i.name for i in v] for c, v in pools.heldout.items()
    }
    assert HELDOUT_SEED == 20200207
    # a group is drawn from the generator it is given: same generator, same group
    item = setup.train_dataset[0]
    a = setup.train_transform(item, rng=np.random.default_rng([0, 1, 2]))
    b = setup.train_transform(item, rng=np.random.default_rng([0, 1, 2]))
    assert a["images"].shape == (3, 3, 64, 64) and a["masks"].shape == (3, 64, 64)
    assert torch.equal(a["images"], b["images"]) and torch.equal(a["labels"], b["labels"])
    assert a["labels"].sum() == 1 and set(a["masks"].unique().tolist()) <= {0.0, 1.0}
    batch = torch.utils.data.default_collate([a, b])
    assert batch["images"].shape == (2, 3, 3, 64, 64) and batch["labels"].shape == (2, 3)


def test_folder_classes_option_and_errors(synth, tmp_path, stand_in):
    setup = build_training(folders_config(synth, tmp_path, "data.options.classes=[circle]"))
    assert setup.train_dataset.pools.classes == ["circle"]
    assert setup.checkpoint_extra == {"categories": ["circle"]}
    with pytest.raises(ConfigError, match="no class hexagon"):
        build_training(folders_config(synth, tmp_path, "data.options.classes=[hexagon]"))
    with pytest.raises(ConfigError, match="too few to hold out 14"):
        build_training(folders_config(synth, tmp_path, "data.options.heldout_per_class=14"))
    with pytest.raises(ConfigError, match="task coseg reads coco, folders"):
        build_training(folders_config(synth, tmp_path, "data.format=sod_folders"))
    with pytest.raises(InputError, match="no such set folder"):
        build_training(folders_config(synth, tmp_path, "data.train_sets=[nope]"))


def test_flip_flips_the_whole_group():
    class Pools:
        def draw(self, rng):
            return "a", None

        def load(self, key, members):
            image = np.zeros((8, 16, 3), np.uint8)
            image[:, :4] = 255
            mask = np.zeros((8, 16), bool)
            mask[:, :4] = True
            return {"images": [image, image], "masks": [mask, mask], "label": [1.0]}

    flipped = [
        DrawGroup(32, flip=True)({"pools": Pools()}, rng=np.random.default_rng(s)) for s in range(8)
    ]
    lefts = {bool(f["masks"][0, :, 0].all()) for f in flipped}
    assert lefts == {True, False}  # some groups flipped, some not
    for f in flipped:
        assert torch.equal(f["masks"][0], f["masks"][1])  # both images the same way


# --------------------------------------------------------------------------------------------
# COCO groups and the co-category dictionary


def test_coco_groups_hold_out_images_and_label_co_categories(tiny_coco, tmp_path, stand_in):
    setup = build_training(coco_config(tiny_coco, tmp_path))
    pools = setup.train_dataset.pools
    assert pools.ids == [1, 3, 7] and pools.names == ["person", "car", "train"]
    assert setup.checkpoint_extra == {
        "categories": ["person", "car", "train"],
        "category_ids": [1, 3, 7],
    }
    held = {i for ids in pools.heldout.values() for i in ids}
    assert pools.held_count == 6 and len(held) == 6
    train = {i for ids in pools.coco.index.cat_to_images.values() for i in ids}
    assert not held & train and len(train) + len(held) == 24
    # car images always show a train too: a car group's label holds both
    sample = pools.load(3, pools.coco.index.cat_to_images[3][:3])
    assert sample["label"].tolist() == [0.0, 1.0, 1.0]
    assert all(m[40, 40] and m[10, 10] for m in sample["masks"])  # the union of both
    groups = pools.heldout_groups()
    assert len(groups) and all(len(g[2]) >= 2 for g in groups.groups)
    item = groups[0]
    assert set(item) == {"images", "gts", "names", "class", "keep"}


def test_the_dictionary_is_cached_and_read_back(tiny_coco, tmp_path, stand_in, caplog):
    caplog.set_level(logging.INFO, logger="cmseg")
    cfg = coco_config(tiny_coco, tmp_path)
    build_training(cfg)
    ann = tiny_coco / "annotations" / "instances_train2017.json"
    cached = cache_path(ann, CosegOptions.from_config(cfg.data.options))
    assert cached.is_file() and "by the official rule" in caplog.text
    assert oct(cached.stat().st_mode & 0o777) == oct(0o666 & ~_umask())
    caplog.clear()
    build_training(cfg)
    assert "from the cache" in caplog.text
    # another rule, or an edited annotation file, is never served the old table
    caplog.clear()
    build_training(coco_config(tiny_coco, tmp_path, "data.options.min_area=250"))
    assert "by the official rule" in caplog.text
    os.utime(ann, ns=(1, 1))
    caplog.clear()
    build_training(cfg)
    assert "by the official rule" in caplog.text


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _official_dict(path: Path, table: dict) -> Path:
    np.save(path, defaultdict(list, table), allow_pickle=True)  # how SSNM's dict.npy was written
    return path


def test_the_official_dict_npy_is_read_without_unpickling_code(tiny_coco, tmp_path, stand_in):
    ids = list(range(101, 125))
    table = {1: ids[:8], 3: [np.int64(i) for i in ids[8:16]]}  # np.int64 ids too
    official = _official_dict(tmp_path / "dict.npy", table)
    setup = build_training(coco_config(tiny_coco, tmp_path, f"data.options.dictionary={official}"))
    assert setup.train_dataset.pools.ids == [1, 3]  # the file's categories, not the rule's
    assert setup.checkpoint_extra["categories"] == ["person", "car"]
    bad = _official_dict(tmp_path / "other.npy", {1: [5, 6]})
    with pytest.raises(InputError, match="not in .*instances_train2017.json") as info:
        build_training(coco_config(tiny_coco, tmp_path, f"data.options.dictionary={bad}"))
    assert str(info.value).startswith(str(bad))


def test_a_dict_npy_that_asks_for_code_is_refused(tiny_coco, tmp_path, stand_in):
    import pickle

    marker = tmp_path / "pwned"

    class Evil:
        def __reduce__(self):
            return (os.system, (f"touch {marker}",))

    path = tmp_path / "dict.npy"
    with open(path, "wb") as f:
        np.lib.format.write_array_header_1_0(
            f, {"descr": "|O", "fortran_order": False, "shape": ()}
        )
        f.write(pickle.dumps({1: Evil()}, protocol=3))
    with pytest.raises(InputError, match="system") as info:
        build_training(coco_config(tiny_coco, tmp_path, f"data.options.dictionary={path}"))
    assert str(info.value).startswith(str(path)) and "\n" not in str(info.value)
    assert not marker.exists()


# --------------------------------------------------------------------------------------------
# Training and validation


@pytest.fixture
def trained(synth, tmp_path, monkeypatch) -> Path:
    """ssnm_tiny (the real one) trained 2 steps on the synthetic groups, validated."""
    monkeypatch.setenv("CMSEG_PROGRESS", "0")
    out = tmp_path / "run"
    cfg = folders_config(synth, out)
    torch.manual_seed(0)
    Trainer.from_setup(build_training(cfg), cfg).fit()
    return out


def test_training_stores_the_classes_and_validates_per_set(trained):
    _, meta = load_checkpoint(trained / "last")
    assert meta["extra"]["categories"] == ["circle", "square", "triangle"]
    for name in ("heldout/P", "heldout/J", "test/P", "test/J", "test/J_classes"):
        assert 0.0 <= meta["metrics"][name] <= 1.0, name
    assert not any(k.endswith("num_items") for k in meta["metrics"])
    _, best = load_checkpoint(trained / "best")
    assert best["metrics"]["heldout/J"] == meta["metrics"]["heldout/J"]


def test_coco_training_runs_end_to_end(tiny_coco, tmp_path):
    cfg = coco_config(tiny_coco, tmp_path / "run")
    Trainer.from_setup(build_training(cfg), cfg).fit()
    _, meta = load_checkpoint(tmp_path / "run" / "last")
    assert "heldout/J" in meta["metrics"] and meta["extra"]["category_ids"] == [1, 3, 7]


def test_best_metric_may_name_a_test_set(synth, tmp_path, stand_in):
    cfg = folders_config(synth, tmp_path, "train.best_metric=test/P")
    setup = build_training(cfg)
    trainer = Trainer.from_setup(setup, cfg)
    assert trainer.best_metric == "test/P" and setup.best_metric == "heldout/J"
    no_heldout = build_training(folders_config(synth, tmp_path, "data.options.heldout_per_class=0"))
    assert no_heldout.best_metric == "test/J"


def test_validator_scores_equal_an_evaluator_fed_by_hand(trained, synth):
    from cmseg.predictors import CosegPredictor

    predictor = CosegPredictor.from_checkpoint(trained / "last", device="cpu")
    groups = open_test_set(synth / "test", 3, "ssnm")
    metrics = CosegValidator({"test": groups}, 64, batch_size=3)(predictor.model)
    by_hand = CosegEvaluator()
    for i in range(len(groups)):
        group = groups[i]
        with torch.inference_mode():
            prob = predictor.model(preprocess_group(group["images"], 64)[None]).mask[0]
        members = zip(prob, group["gts"], group["names"], group["keep"], strict=True)
        for p, gt, name, keep in members:
            if keep:
                by_hand.update(*scoring_pair(p, gt, "ssnm"), cls=group["class"], name=name)
    expected = by_hand.compute()
    assert len(by_hand) == 15  # every test image once
    for key in ("P", "J", "P_classes", "J_classes"):
        assert metrics[f"test/{key}"] == pytest.approx(expected[key], abs=1e-12)


@pytest.mark.slow
def test_torchrun_two_cpu_processes_validate_every_group_once(synth, tmp_path):
    """Under torchrun each rank trains on its share and scores every other group; the
    gathered scores equal a one-process validation of the saved weights."""
    import csv
    import subprocess
    import sys

    out = tmp_path / "ddp"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONWARNINGS": "ignore", "CMSEG_PROGRESS": "0"}
    env.pop("WORLD_SIZE", None)
    overrides = [f"data.root={synth}", f"output_dir={out}", "model.image_size=64",
                 "data.batch_size=2", "data.num_workers=0", "data.options.group_size=3",
                 "train.device=cpu", "train.max_steps=2", "train.eval_every=2",
                 "train.tensorboard=false"]  # fmt: skip
    proc = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
         "-m", "cmseg", "train", str(TINY), *overrides],
        env=env, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    with open(out / "metrics.csv", newline="") as f:
        logged = {r["name"]: float(r["value"]) for r in csv.DictReader(f) if r["split"] == "val"}
    from cmseg.predictors import CosegPredictor

    model = CosegPredictor.from_checkpoint(out / "last", device="cpu").model
    alone = build_training(load_config(RunConfig, TINY, overrides)).validate(model)
    assert set(logged) == set(alone) and alone["test/J"] > 0 and alone["heldout/J"] > 0
    for key, value in alone.items():
        assert logged[key] == pytest.approx(value, abs=1e-9), key


def test_a_test_class_of_one_image_is_left_out(synth, tmp_path, caplog):
    import shutil

    root = tmp_path / "set"
    shutil.copytree(synth / "test", root)
    for kind, ext in (("image", "jpg"), ("groundtruth", "png")):
        for extra in sorted((root / kind / "circle").glob(f"*.{ext}"))[1:]:
            extra.unlink()
    groups = open_test_set(root, 3, "ssnm")
    assert {g[0] for g in groups.groups} == {"square", "triangle"}
    assert "circle" in caplog.text and "single image" in caplog.text
