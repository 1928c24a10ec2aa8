"""``cmseg evaluate``: pairing by name, problems, parallel workers, reports, for every task."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from cmseg.engine.evaluate import evaluate_folders
from cmseg.errors import CmsegError, InputError
from cmseg.io import read_grey, write_png
from cmseg.tasks import load_evaluation

REPO = Path(__file__).resolve().parents[2]
PALETTE = np.array([[0, 0, 0], [255, 0, 0], [0, 255, 0], [0, 0, 255]])


def cli(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, PYTHONPATH=str(REPO), CMSEG_PROGRESS="0")
    return subprocess.run(
        [sys.executable, "-m", "cmseg", "evaluate", *args],
        capture_output=True,
        text=True,
        env=env,
        cwd=cwd,
        timeout=300,
    )


def blob(rng: np.random.Generator, shape: tuple[int, int]) -> np.ndarray:
    mask = np.zeros(shape, bool)
    h, w = shape
    y, x = rng.integers(0, h // 2), rng.integers(0, w // 2)
    mask[y : y + rng.integers(2, h // 2), x : x + rng.integers(2, w // 2)] = True
    return mask


def make_sod(root: Path, n: int = 12, seed: int = 0) -> tuple[Path, Path]:
    rng = np.random.default_rng(seed)
    for i in range(n):
        gt = blob(rng, (36, 48))
        soft = np.clip(gt * 180 + rng.normal(40, 30, gt.shape), 0, 255).astype(np.uint8)
        write_png(root / "gt" / f"img{i:02d}.png", gt)
        # predictions use another extension for some files and a smaller size for one
        if i == 3:
            soft = soft[::2, ::2].copy()
        ext = "bmp" if i % 4 == 1 else "png"
        if ext == "png":
            write_png(root / "pred" / f"img{i:02d}.png", soft)
        else:
            from PIL import Image

            (root / "pred").mkdir(parents=True, exist_ok=True)
            Image.fromarray(soft).save(root / "pred" / f"img{i:02d}.bmp")
    return root / "pred", root / "gt"


# ---------------------------------------------------------------------------------------------
# sod


def test_sod_pairs_by_name_and_matches_the_metric_module(tmp_path):
    from cmseg.metrics.sod import SODEvaluator, resize_to

    pred, gt = make_sod(tmp_path)
    report = evaluate_folders(load_evaluation("sod"), pred, gt, workers=1)
    assert report.problems() == [] and report.num_scored == 12
    direct = SODEvaluator()
    for i in range(12):
        g = read_grey(gt / f"img{i:02d}.png")
        p_path = next(pred.glob(f"img{i:02d}.*"))
        p = read_grey(p_path)
        direct.update(resize_to(p, g.shape) if p.shape != g.shape else p, g, name=f"img{i:02d}")
    assert report.result["metrics"] == direct.compute()
    assert set(report.result) >= {"task", "protocol", "num_items", "metrics", "per_item", "curves"}


def test_sod_workers_do_not_change_the_numbers(tmp_path):
    pred, gt = make_sod(tmp_path, n=40)
    one = evaluate_folders(load_evaluation("sod"), pred, gt, workers=1).result
    two = evaluate_folders(load_evaluation("sod"), pred, gt, workers=2).result
    assert one == two


def test_sod_cli_missing_extra_unreadable_and_allow_missing(tmp_path):
    pred, gt = make_sod(tmp_path)
    (pred / "img04.png").unlink()
    write_png(pred / "stray.png", np.zeros((4, 4), np.uint8))
    (pred / "img07.png").write_bytes(b"garbage")
    out = cli("sod", "--pred", str(pred), "--gt", str(gt), cwd=tmp_path)
    assert out.returncode == 2
    lines = out.stderr.strip().splitlines()
    assert any("img04" in line and "no prediction" in line for line in lines)
    assert any("stray.png" in line and "no ground truth" in line for line in lines)
    assert lines[-1].startswith("error: pred: 1 missing, 1 extra")
    assert "Traceback" not in out.stderr

    out = cli(
        "sod",
        "--pred",
        str(pred),
        "--gt",
        str(gt),
        "--allow-missing",
        "--out",
        "r.json",
        "--workers",
        "2",
        cwd=tmp_path,
    )
    assert out.returncode == 0, out.stderr
    result = json.loads((tmp_path / "r.json").read_text())
    assert result["num_items"] == 10  # 12 - missing - unreadable
    assert (
        len(result["problems"]["unreadable"]) == 1
        and "img07.png" in result["problems"]["unreadable"][0]
    )
    assert result["problems"]["missing"] and result["problems"]["extra"]


def test_sod_cli_reports_several_methods(tmp_path):
    pred, gt = make_sod(tmp_path)
    pred_b, _ = make_sod(tmp_path / "b", seed=1)
    out = cli(
        "sod",
        "--pred",
        f"ours={pred}",
        "--pred",
        f"other={pred_b}",
        "--gt",
        str(gt),
        "--out",
        "r.json",
        "--csv",
        "r.csv",
        "--markdown",
        "r.md",
        "--plots",
        "plots",
        cwd=tmp_path,
    )
    assert out.returncode == 0, out.stderr
    assert "ours" in out.stdout and "other" in out.stdout and "maxF" in out.stdout
    payload = json.loads((tmp_path / "r.json").read_text())
    assert set(payload["methods"]) == {"ours", "other"}
    ours = payload["methods"]["ours"]
    assert set(ours["metrics"]) >= {"mae", "sm", "wfm", "em", "fm", "iou", "dice"}
    assert set(ours["metrics"]["em"]) == {"adp", "mean", "max"}
    assert len(ours["curves"]["precision"]) == 256
    rows = list(csv.reader((tmp_path / "r.csv").open()))
    assert rows[0][:2] == ["method", "n"] and [r[0] for r in rows[1:]] == ["ours", "other"]
    assert float(rows[1][rows[0].index("S")]) == ours["metrics"]["sm"]  # full precision in CSV
    assert (tmp_path / "r.md").read_text().startswith("| method | n |")
    for name in ("pr_curve.png", "fmeasure_curve.png"):
        assert (tmp_path / "plots" / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_sod_spnet_protocol_runs(tmp_path):
    pred, gt = make_sod(tmp_path)
    result = evaluate_folders(load_evaluation("sod"), pred, gt, protocol="spnet", workers=1).result
    assert result["protocol"] == "spnet"
    assert set(result["metrics"]) == {"mae", "sm", "maxf", "maxe"}


def test_bad_folders_and_protocols(tmp_path):
    with pytest.raises(InputError, match="prediction folder does not exist"):
        evaluate_folders(load_evaluation("sod"), tmp_path / "nope", tmp_path)
    with pytest.raises(CmsegError, match="unknown protocol 'matlab'.*pysodmetrics, spnet"):
        evaluate_folders(load_evaluation("sod"), tmp_path, tmp_path, protocol="matlab")
    out = cli("sod", "--pred", "nope", "--gt", ".", cwd=tmp_path)
    assert out.returncode == 2 and out.stderr == "error: nope: prediction folder does not exist\n"
    out = cli("ris", "--pred", ".", "--gt", ".", "--bound-th", "3", cwd=tmp_path)
    assert (
        out.returncode == 2 and "--bound-th applies to the rvos and fsrvos tasks only" in out.stderr
    )


# ---------------------------------------------------------------------------------------------
# ris and coseg


def test_ris_and_coseg_folders(tmp_path):
    rng = np.random.default_rng(3)
    inter = union = 0
    for i in range(8):
        gt = blob(rng, (30, 30))
        pred = np.roll(gt, i % 3, axis=1)
        write_png(tmp_path / "ris_gt" / f"{i}.png", gt)
        write_png(tmp_path / "ris_pred" / f"{i}.png", pred)
        write_png(tmp_path / "co_gt" / f"class{i % 2}" / f"{i}.png", gt)
        write_png(tmp_path / "co_pred" / f"class{i % 2}" / f"{i}.png", pred)
        inter += (gt & pred).sum()
        union += (gt | pred).sum()
    ris = evaluate_folders(
        load_evaluation("ris"), tmp_path / "ris_pred", tmp_path / "ris_gt", workers=2
    ).result
    assert ris["metrics"]["oIoU"] == pytest.approx(inter / union, abs=1e-12)
    assert set(ris["per_item"]) == {str(i) for i in range(8)}
    co = evaluate_folders(
        load_evaluation("coseg"),
        tmp_path / "co_pred",
        tmp_path / "co_gt",
        workers=1,
        options={"threshold": 0.5},
    ).result
    assert set(co["per_class"]) == {"class0", "class1"}
    assert set(co["per_item"]) == {f"class{i % 2}/{i}" for i in range(8)}


# ---------------------------------------------------------------------------------------------
# rvos / fsrvos


def _write_video(root: Path, video: str, frames: list[np.ndarray], *, expressions: bool) -> None:
    for t, frame in enumerate(frames):
        if expressions:
            for obj in (1, 2):
                write_png(root / video / str(obj - 1) / f"{t:05d}.png", frame == obj)
        else:
            write_png(root / video / f"{t:05d}.png", frame, palette=PALETTE)


def _videos(seed: int = 0) -> dict[str, tuple[list[np.ndarray], list[np.ndarray]]]:
    rng = np.random.default_rng(seed)
    videos = {}
    for v in range(3):
        gts, preds = [], []
        for t in range(7):
            g = np.zeros((40, 60), np.uint8)
            g[5 : 15 + t, 5 + t : 25 + t] = 1
            g[25:35, 30:50] = 2
            p = np.roll(g, int(rng.integers(0, 3)), axis=int(rng.integers(0, 2)))
            gts.append(g)
            preds.append(p)
        videos[f"video{v}"] = (gts, preds)
    return videos


@pytest.mark.parametrize(
    ("task", "layout", "protocol"),
    [
        ("rvos", "indexed", "davis"),
        ("rvos", "expressions", "ytvos"),
        ("fsrvos", "expressions", "ytvos"),
        ("fsrvos", "expressions", "cma"),
        ("rvos", "expressions", "mevis"),
    ],
)
def test_vos_folders_match_the_metric_module(tmp_path, task, layout, protocol):
    from cmseg.metrics.vos import VOSEvaluator

    expressions = layout == "expressions"
    direct = VOSEvaluator(protocol, bound_th=0.010 if task == "fsrvos" else 0.008)
    for video, (gts, preds) in _videos().items():
        _write_video(tmp_path / "gt", video, gts, expressions=expressions)
        _write_video(tmp_path / "pred", video, preds, expressions=expressions)
        if expressions:
            for obj in (1, 2):
                direct.update(np.stack(preds) == obj, np.stack(gts) == obj, f"{video}/{obj - 1}")
        else:
            direct.update(np.stack(preds), np.stack(gts), video)
    # davis, ytvos (rvos) and cma (fsrvos) are chosen from the layout
    chosen = protocol if protocol == "mevis" or (task, protocol) == ("fsrvos", "ytvos") else None
    result = evaluate_folders(
        load_evaluation(task), tmp_path / "pred", tmp_path / "gt", protocol=chosen, workers=2
    ).result
    assert result["protocol"] == protocol
    assert result["metrics"] == direct.compute()
    assert "per_sequence" in result


def test_vos_missing_frames(tmp_path):
    for video, (gts, preds) in _videos().items():
        _write_video(tmp_path / "gt", video, gts, expressions=False)
        _write_video(tmp_path / "pred", video, preds, expressions=False)
    (tmp_path / "pred" / "video1" / "00003.png").unlink()
    report = evaluate_folders(
        load_evaluation("rvos"), tmp_path / "pred", tmp_path / "gt", workers=1, allow_missing=True
    )
    assert report.num_scored == 3
    assert "1 frame(s) without prediction (scored as empty)" in report.missing[0]
    strict = evaluate_folders(
        load_evaluation("rvos"), tmp_path / "pred", tmp_path / "gt", workers=1, allow_missing=False
    )
    # the same problems with and without --allow-missing (issue 15, item 7)
    assert strict.missing == report.missing and not strict.unreadable and not strict.other
    out = cli("rvos", "--pred", "pred", "--gt", "gt", cwd=tmp_path)
    assert out.returncode == 2 and "frame(s) without prediction" in out.stderr


# ---------------------------------------------------------------------------------------------
# a2d


def test_a2d_json_files(tmp_path):
    from cmseg.metrics.coco import encode_rle

    gt_mask = np.zeros((20, 30), bool)
    gt_mask[2:12, 3:20] = True
    images, annotations, results = [], [], []
    for i in range(3):
        images.append({"id": f"v_{i}", "height": 20, "width": 30})
        annotations.append(
            {
                "id": i + 1,
                "image_id": f"v_{i}",
                "category_id": 1,
                "segmentation": encode_rle(gt_mask),
                "area": int(gt_mask.sum()),
                "bbox": [3, 2, 17, 10],
                "iscrowd": 0,
            }
        )
        results.append(
            {
                "image_id": f"v_{i}",
                "category_id": 1,
                "segmentation": encode_rle(gt_mask),
                "score": 0.9,
            }
        )
    (tmp_path / "gt.json").write_text(
        json.dumps(
            {
                "images": images,
                "annotations": annotations,
                "categories": [{"id": 1, "name": "object"}],
            }
        )
    )
    (tmp_path / "res.json").write_text(json.dumps(results))
    out = cli("a2d", "--pred", "res.json", "--gt", "gt.json", "--out", "a.json", cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    metrics = json.loads((tmp_path / "a.json").read_text())["metrics"]
    assert metrics["mAP"] == pytest.approx(1.0) and metrics["oIoU"] == pytest.approx(1.0)
