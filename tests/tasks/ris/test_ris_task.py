"""The ris task: resize-and-pad geometry, postprocessing, training, the predictor, the CLI."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from cmseg.config import RunConfig, load_config
from cmseg.data.synthetic import write_synthetic
from cmseg.data.transforms import ResizePad, pad_placement
from cmseg.engine.checkpoint import load_checkpoint
from cmseg.engine.trainer import Trainer
from cmseg.errors import ConfigError, InputError
from cmseg.io import read_image, read_mask
from cmseg.metrics.masks import RISEvaluator
from cmseg.predictors import RISPredictor
from cmseg.tasks import TASKS
from cmseg.tasks.ris.data import open_split
from cmseg.tasks.ris.model import parameter_groups
from cmseg.tasks.ris.options import RISOptions
from cmseg.tasks.ris.process import postprocess, preprocess
from cmseg.tasks.ris.train import build_training as build_ris_training
from cmseg.tasks.ris.validate import RISValidator

ROOT = Path(__file__).resolve().parents[3]
TINY = ROOT / "configs" / "ris" / "cmpc_tiny.yaml"

pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py


@pytest.fixture(scope="module")
def synth(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("synth_ris")
    write_synthetic("ris", root, n=20, size=64, seed=0)
    return root


def tiny_config(root: Path, out: Path, *extra: str) -> RunConfig:
    return load_config(
        RunConfig,
        TINY,
        [
            f"data.root={root}",
            f"output_dir={out}",
            "model.image_size=64",
            "data.batch_size=4",
            "data.num_workers=0",
            "train.device=cpu",
            "train.max_steps=2",
            "train.eval_every=2",
            "train.tensorboard=false",
            *extra,
        ],
    )


@pytest.fixture(scope="module")
def trained(synth, tmp_path_factory) -> Path:
    """A run folder of cmpc_tiny trained 2 steps on the synthetic set (val validated)."""
    out = tmp_path_factory.mktemp("ris_run")
    cfg = tiny_config(synth, out)
    torch.manual_seed(0)
    setup = build_ris_training(cfg)
    Trainer.from_setup(setup, cfg).fit()
    return out


# --------------------------------------------------------------------------------------------
# Geometry


@pytest.mark.parametrize(
    ("hw", "size", "expected"),
    [
        ((60, 100), 50, (10, 0, 30, 50)),
        ((100, 60), 50, (0, 10, 50, 30)),
        ((40, 40), 32, (0, 0, 32, 32)),
        ((3, 1000), 64, (31, 0, 1, 64)),
    ],
)
def test_pad_placement_by_hand(hw, size, expected):
    assert pad_placement(hw, size) == expected


def test_resize_pad_centres_the_image_and_pads_with_zeros():
    image = np.full((60, 100, 3), 200, np.uint8)
    mask = np.zeros((60, 100), bool)
    mask[10:30, 20:50] = True
    out = ResizePad(50)({"image": image, "mask": mask, "sentence": "the left one"})
    assert out["image"].shape == (50, 50, 3) and out["mask"].dtype == bool
    assert (out["image"][:10] == 0).all() and (out["image"][40:] == 0).all()
    assert (out["image"][11:39] == 200).all()
    ys, xs = np.nonzero(out["mask"])
    assert (ys.min(), ys.max(), xs.min(), xs.max()) == (15, 24, 10, 24)  # (10..29) / 2 + 10
    assert out["sentence"] == "the left one"


@pytest.mark.parametrize("hw", [(48, 80), (80, 48), (64, 64), (37, 91)])
def test_postprocess_inverts_resize_pad(hw):
    rng = np.random.default_rng(0)
    mask = np.zeros(hw, bool)
    y0, x0 = hw[0] // 4, hw[1] // 5
    mask[y0 : y0 + hw[0] // 2, x0 : x0 + hw[1] // 2] = True
    padded = ResizePad(64)({"mask": mask})["mask"]
    logits = torch.from_numpy(np.where(padded, 8.0, -8.0).astype(np.float32))
    # at the input resolution and at stride 8 (as the model predicts)
    back = postprocess(logits, hw, 64)
    inter, union = (back & mask).sum(), (back | mask).sum()
    assert back.shape == hw and inter / union > 0.9
    low = torch.nn.functional.avg_pool2d(logits[None, None], 8)[0, 0]
    back_low = postprocess(low, hw, 64)
    assert (back_low & mask).sum() / (back_low | mask).sum() > 0.6
    assert rng is not None


def test_preprocess_shape_and_grey_input():
    x = preprocess(np.zeros((30, 50), np.uint8), 64)
    assert x.shape == (3, 64, 64) and x.dtype == torch.float32
    with pytest.raises(ValueError, match="uint8"):
        preprocess(np.zeros((30, 50, 3), np.float32), 64)


# --------------------------------------------------------------------------------------------
# Options and data


def test_unknown_and_bad_options_are_config_errors():
    with pytest.raises(ConfigError, match="unknown ris option"):
        RISOptions.from_config({"datset": "refcoco"})
    with pytest.raises(ConfigError, match="convention"):
        RISOptions.from_config({"convention": "coco"})
    with pytest.raises(ConfigError, match="loss_reduction"):
        RISOptions.from_config({"loss_reduction": "max"})


def test_open_split_reads_refer_and_jsonl(synth, tmp_path):
    opts = RISOptions()
    refer = open_split(synth, "refer", "val", opts)
    sample = refer[0]
    assert sample["image"].dtype == np.uint8 and sample["mask"].shape == sample["image"].shape[:2]
    # the same samples as JSON lines (mask PNGs)
    lines = []
    for i in range(3):
        s = refer[i]
        from cmseg.io import write_png

        write_png(tmp_path / f"img{i}.png", s["image"])
        write_png(tmp_path / f"m{i}.png", s["mask"])
        lines.append(
            json.dumps(
                {
                    "image": f"img{i}.png",
                    "mask": f"m{i}.png",
                    "sentence": s["sentence"],
                    "id": f"s{i}",
                }
            )
        )
    (tmp_path / "val.jsonl").write_text("\n".join(lines) + "\n")
    jsonl = open_split(tmp_path, "jsonl", "val.jsonl", opts)
    assert len(jsonl) == 3 and jsonl[1]["sentence"] == refer[1]["sentence"]
    assert (jsonl[2]["mask"] == refer[2]["mask"]).all()
    with pytest.raises(ConfigError, match="task ris reads"):
        open_split(synth, "coco", "val", opts)


# --------------------------------------------------------------------------------------------
# Training


def test_task_is_registered():
    assert TASKS["ris"].built("train")


def test_training_writes_the_vocabulary_and_validation_metrics(trained):
    _, meta = load_checkpoint(trained / "last")
    words = meta["extra"]["vocabulary"]
    assert words[:4] == ["<pad>", "<go>", "<eos>", "<unk>"] and "circle" in words
    for key in ("oIoU", "mIoU", "prec@0.5", "prec@0.9"):
        assert 0.0 <= meta["metrics"][key] <= 1.0
    assert (trained / "best" / "meta.json").is_file()


def test_parameter_groups_decay_head_kernels_only(synth, tmp_path):
    cfg = tiny_config(
        synth, tmp_path, "data.options.freeze_backbone=true", "optim.weight_decay=5e-4"
    )
    setup = build_ris_training(cfg)
    model = setup.model
    ids = {id(p): n for n, p in model.named_parameters()}
    decay, no_decay = setup.param_groups
    assert decay["weight_decay"] == 5e-4 and no_decay["weight_decay"] == 0.0
    names_decay = [ids[id(p)] for p in decay["params"]]
    names_rest = [ids[id(p)] for p in no_decay["params"]]
    assert all(not n.startswith(("backbone.", "text_encoder.")) for n in names_decay)
    assert all(p.ndim >= 2 for p in decay["params"])
    assert not any(n.startswith("backbone.") for n in names_decay + names_rest)  # frozen
    assert any(n.startswith("text_encoder.") for n in names_rest)
    assert parameter_groups(torch.nn.Linear(2, 2), 0.1)[0]["params"]


def test_validator_scores_equal_an_evaluator_fed_by_hand(trained, synth):
    predictor = RISPredictor.from_checkpoint(trained / "last", device="cpu")
    reader = open_split(synth, "refer", "val", RISOptions())
    metrics = RISValidator({"val": reader}, 64, batch_size=3)(predictor.model)
    by_hand = RISEvaluator()
    for i in range(len(reader)):
        s = reader[i]
        predictor.set_image(s["image"])
        by_hand.update(predictor.predict(s["sentence"]), s["mask"])
    expected = by_hand.compute()
    for key in ("oIoU", "mIoU", "prec@0.5"):
        assert metrics[key] == pytest.approx(expected[key], abs=1e-9)


# --------------------------------------------------------------------------------------------
# Predictor


def test_predictor_reuses_features_and_matches_the_full_forward(trained, synth):
    predictor = RISPredictor.from_checkpoint(trained / "last", device="cpu")
    reader = open_split(synth, "refer", "val", RISOptions())
    sample = reader[0]
    with pytest.raises(RuntimeError, match="before set_image"):
        predictor.predict("anything")
    predictor.set_image(sample["image"])
    sentences = ["the red circle", "big blue square left of the star", "ünïcode wörds"]
    cached = predictor.predict_sentences(sentences)
    for sentence, mask in zip(sentences, cached, strict=True):
        assert mask.shape == sample["image"].shape[:2] and mask.dtype == bool
        with torch.inference_mode():
            x = preprocess(sample["image"], 64)[None]
            full = predictor.model(x, [sentence]).final[0]
        assert (postprocess(full, mask.shape, 64) == mask).all()
    prob = predictor.predict_probability(sentences[0])
    assert prob.dtype == np.float32 and ((prob >= 0.5) == cached[0]).all()


def test_predictor_refuses_a_checkpoint_of_another_task(trained, tmp_path):
    meta = json.loads((trained / "last" / "meta.json").read_text())
    meta["config"]["task"] = "sod"
    (tmp_path / "model.safetensors").write_bytes(
        (trained / "last" / "model.safetensors").read_bytes()
    )
    (tmp_path / "meta.json").write_text(json.dumps(meta))
    with pytest.raises(InputError, match="not a 'ris' one"):
        RISPredictor.from_checkpoint(tmp_path, device="cpu")


# --------------------------------------------------------------------------------------------
# CLI


def cmseg(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    env_cmd = [sys.executable, "-m", "cmseg", *args]
    return subprocess.run(
        env_cmd,
        capture_output=True,
        text=True,
        cwd=cwd,
        env={"OMP_NUM_THREADS": "1", **__import__("os").environ},
    )


def test_cli_predict_one_image_writes_mask_overlay_and_index(trained, synth, tmp_path):
    image = next((synth / "images" / "train2014").glob("*.jpg"))
    out = tmp_path / "out"
    done = cmseg(
        "predict",
        "ris",
        "--checkpoint",
        str(trained / "last"),
        "--image",
        str(image),
        "--sentence",
        "the red circle",
        "--sentence",
        "the blue star",
        "--out",
        str(out),
        "-q",
    )
    assert done.returncode == 0, done.stderr
    for k in (0, 1):
        mask = read_mask(out / f"{image.stem}_{k}.png")
        assert mask.shape == read_image(image).shape[:2]
        assert read_image(out / f"{image.stem}_{k}_overlay.png").shape == read_image(image).shape
    rows = [json.loads(line) for line in (out / "predictions.jsonl").read_text().splitlines()]
    assert [r["sentence"] for r in rows] == ["the red circle", "the blue star"]


def test_cli_predict_a_refer_split_then_evaluate(trained, synth, tmp_path):
    out, gt = tmp_path / "pred", tmp_path / "gt"
    done = cmseg(
        "predict",
        "ris",
        "--checkpoint",
        str(trained / "last"),
        "--input",
        str(synth),
        "--split",
        "val",
        "--out",
        str(out),
        "--gt-out",
        str(gt),
        "-q",
    )
    assert done.returncode == 0, done.stderr
    reader = open_split(synth, "refer", "val", RISOptions())
    assert len(list(gt.glob("*.png"))) == len(reader)
    assert len([p for p in out.glob("*.png")]) == len(reader)
    scored = cmseg(
        "evaluate",
        "ris",
        "--pred",
        str(out),
        "--gt",
        str(gt),
        "--out",
        str(tmp_path / "r.json"),
        "-q",
    )
    assert scored.returncode == 0, scored.stderr
    result = json.loads((tmp_path / "r.json").read_text())
    # the same numbers as validation (the run validated on val at its last step)
    _, meta = load_checkpoint(trained / "last")
    metrics = result["metrics"] if "metrics" in result else result["results"][0]["metrics"]
    assert metrics["oIoU"] == pytest.approx(meta["metrics"]["oIoU"], abs=1e-9)


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ([], "give at least one --sentence"),
        (["--sentence", "x", "--gt-out", "g"], "--gt-out needs a dataset"),
    ],
)
def test_cli_predict_errors_are_one_line(trained, synth, tmp_path, extra, message):
    image = next((synth / "images" / "train2014").glob("*.jpg"))
    done = cmseg(
        "predict",
        "ris",
        "--checkpoint",
        str(trained / "last"),
        "--image",
        str(image),
        "--out",
        str(tmp_path / "o"),
        *extra,
    )
    assert done.returncode == 2 and message in done.stderr
    assert done.stderr.count("\n") == 1 and "Traceback" not in done.stderr


def test_cli_predict_a_refer_root_needs_a_split(trained, synth, tmp_path):
    done = cmseg(
        "predict",
        "ris",
        "--checkpoint",
        str(trained / "last"),
        "--input",
        str(synth),
        "--out",
        str(tmp_path / "o"),
    )
    assert done.returncode == 2 and "--split" in done.stderr


# --------------------------------------------------------------------------------------------
# Several sentences per image


def test_grouped_training_items_and_batches(synth, tmp_path):
    cfg = tiny_config(synth, tmp_path, "data.options.sentences_per_image=3")
    setup = build_ris_training(cfg)
    groups = setup.train_dataset
    reader = groups.source
    assert sum(len(g) for g in groups.groups) == len(reader)
    # every sentence of an item belongs to its image
    item = groups[0]
    members = [reader[i] for i in item["members"]]
    assert all(m["mask"].shape == members[0]["image"].shape[:2] for m in members)
    assert all((m["image"] == members[0]["image"]).all() for m in members)
    assert len(item["members"]) == len(groups.groups[0]) and item["source"] is reader
    picked = [setup.train_transform(groups[i], rng=np.random.default_rng(i)) for i in range(2)]
    for p in picked:
        assert p["image"].shape == (3, 64, 64) and p["masks"].shape == (3, 1, 64, 64)
        assert len(p["sentences"]) == 3
    batch = setup.collate_fn(picked)
    assert batch["image"].shape == (2, 3, 64, 64) and batch["mask"].shape == (6, 1, 64, 64)
    assert batch["sentence"] == picked[0]["sentences"] + picked[1]["sentences"]
    # k sentences per image give the same logits as the images repeated per sentence
    model = setup.model.eval()
    with torch.no_grad():
        grouped = model(batch["image"], batch["sentence"]).final
        repeated = model(batch["image"].repeat_interleave(3, dim=0), batch["sentence"]).final
    assert torch.allclose(grouped, repeated, atol=1e-5)
    loss, _ = setup.loss_fn(model(batch["image"], batch["sentence"]), batch)
    assert torch.isfinite(loss)


def test_grouped_training_runs_end_to_end(synth, tmp_path):
    cfg = tiny_config(synth, tmp_path, "data.options.sentences_per_image=2", "data.val_sets=[]")
    setup = build_ris_training(cfg)
    Trainer.from_setup(setup, cfg).fit()
    assert (tmp_path / "last" / "model.safetensors").is_file()


def test_cached_backbone_features_train_end_to_end(synth, tmp_path):
    frozen = ("data.options.freeze_backbone=true", "data.options.cache_backbone_features=true")
    with pytest.raises(ConfigError, match="freeze_backbone_bn"):
        build_ris_training(tiny_config(synth, tmp_path, *frozen))
    cfg = tiny_config(
        synth, tmp_path, *frozen, "model.options.freeze_backbone_bn=true",
        "data.options.sentences_per_image=2", "data.val_sets=[]", "train.max_steps=4",
    )  # fmt: skip
    setup = build_ris_training(cfg)
    Trainer.from_setup(setup, cfg).fit()
    cache = setup.model.backbone_cache
    assert cache.misses >= 1 and cache.hits >= 1  # 4 steps of 4 images over 14 images
    assert len(cache) == cache.misses  # each image computed once


@pytest.mark.parametrize(
    "path", sorted((ROOT / "configs" / "ris").glob("*.yaml")), ids=lambda p: p.name
)
def test_shipped_configs_are_valid(path):
    from cmseg.engine.schedules import make_lr_lambda
    from cmseg.models import MODELS

    cfg = load_config(RunConfig, path)
    assert cfg.task == "ris" and cfg.model.name in MODELS
    RISOptions.from_config(cfg.data.options)
    make_lr_lambda(
        name=cfg.schedule.name,
        base_lr=cfg.optim.lr,
        max_steps=cfg.train.max_steps,
        warmup_steps=cfg.schedule.warmup_steps,
        power=cfg.schedule.power,
        min_lr=cfg.schedule.min_lr,
        decay_steps=cfg.schedule.decay_steps,
    )


def test_paper_config_is_the_official_recipe():
    cfg = load_config(RunConfig, ROOT / "configs" / "ris" / "cmpc_resnet101_refcoco.yaml")
    assert (cfg.model.name, cfg.model.image_size, cfg.data.batch_size) == ("cmpc_resnet101", 320, 1)
    assert (cfg.optim.name, cfg.optim.lr, cfg.optim.weight_decay) == ("adam", 2.5e-4, 5e-4)
    assert (cfg.schedule.name, cfg.schedule.power, cfg.schedule.min_lr) == ("poly", 0.9, 1e-5)
    assert (cfg.schedule.decay_steps, cfg.train.max_steps) == (800_000, 700_000)
    assert cfg.data.options["freeze_backbone"] and cfg.data.options["loss_reduction"] == "sum"


def write_tiny_bert(folder: Path, words: list[str], *, hidden: int = 16) -> Path:
    """A one-layer BERT of ``hidden`` channels and its WordPiece tokenizer of ``words`` (the
    special tokens first), saved in ``folder`` as a local transformers model."""
    from transformers import BertConfig, BertModel, BertTokenizer

    (folder / "vocab.txt").write_text("\n".join(words) + "\n")
    BertTokenizer(str(folder / "vocab.txt")).save_pretrained(folder)
    torch.manual_seed(0)
    config = BertConfig(
        vocab_size=len(words),
        hidden_size=hidden,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=2 * hidden,
        max_position_embeddings=64,
    )
    BertModel(config).save_pretrained(folder)
    return folder


def test_a_hugging_face_text_encoder_trains_and_predicts(synth, tmp_path):
    """model.options.text_encoder = a local transformers folder: no cmseg vocabulary."""
    folder = tmp_path / "tiny_bert"
    folder.mkdir()
    words = [
        "[PAD]",
        "[UNK]",
        "[CLS]",
        "[SEP]",
        "[MASK]",
        "the",
        "red",
        "blue",
        "circle",
        "star",
        "left",
        "of",
    ]
    write_tiny_bert(folder, words)
    out = tmp_path / "run"
    cfg = tiny_config(synth, out, f"model.options.text_encoder={folder}", "data.val_sets=[]")
    setup = build_ris_training(cfg)
    assert setup.checkpoint_extra == {}  # the tokenizer lives in the folder, not in cmseg
    Trainer.from_setup(setup, cfg).fit()
    predictor = RISPredictor.from_checkpoint(out / "last", device="cpu")
    sample = open_split(synth, "refer", "val", RISOptions())[0]
    predictor.set_image(sample["image"])
    assert predictor.predict("the red circle left of the blue star").shape == sample["mask"].shape


def test_torchrun_two_cpu_processes_validate_every_sentence_once(synth, tmp_path):
    """Under torchrun each rank predicts half of the sentences; the gathered scores equal a
    one-process validation of the same weights."""
    import csv
    import os

    out = tmp_path / "ddp"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONWARNINGS": "ignore", "CMSEG_PROGRESS": "0"}
    env.pop("WORLD_SIZE", None)
    proc = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
         "-m", "cmseg", "train", str(TINY), f"data.root={synth}", f"output_dir={out}",
         "model.image_size=64", "data.batch_size=2", "data.num_workers=0", "train.device=cpu",
         "train.max_steps=2", "train.eval_every=2", "train.tensorboard=false"],
        env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    with open(out / "metrics.csv", newline="") as f:
        logged = {r["name"]: float(r["value"]) for r in csv.DictReader(f) if r["split"] == "val"}
    predictor = RISPredictor.from_checkpoint(out / "last", device="cpu")
    reader = open_split(synth, "refer", "val", RISOptions())
    alone = RISValidator({"val": reader}, 64, batch_size=3)(predictor.model)
    # every sentence once on one of the ranks: the gathered scores equal one process's; the
    # number of sentences is not logged as a metric (issue 15)
    assert "num_items" not in logged and "num_items" not in alone
    # not all-empty masks (those agree whatever the weights): each rank scored its share with
    # the saved model's BN statistics (broadcast before validation)
    assert alone["oIoU"] > 0
    for key in ("oIoU", "mIoU", "prec@0.5", "prec@0.6", "prec@0.7", "prec@0.8", "prec@0.9"):
        assert logged[key] == pytest.approx(alone[key], abs=1e-9), key
