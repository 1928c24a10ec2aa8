"""Shared pieces of the coseg task tests: a tiny COCO root and a stand-in SSNM.

The stand-in follows the model contract exactly (input ``(B, N, 3, H, W)``, output with
``mask``, ``logits``, ``cls``, ``cls_logits``, ``spatial``) so that the task code is tested
before, and independently of, the real network.
"""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np

from cmseg.io import write_png


def write_tiny_coco(root: Path, *, per_category: int = 8, size: tuple[int, int] = (48, 64)) -> Path:
    """``root/annotations/instances_train2017.json`` and ``root/train2017/``: three categories
    (ids 1, 3, 7) of ``per_category`` images each, one rectangle instance per image, and in
    every image of category 3 a large instance of category 7 as well (a co-category)."""
    h, w = size
    rng = np.random.default_rng(0)
    images, anns = [], []
    (root / "train2017").mkdir(parents=True)
    (root / "annotations").mkdir()
    image_id = 100
    for cat in (1, 3, 7):
        for _ in range(per_category):
            image_id += 1
            name = f"{image_id:012d}.png"
            write_png(root / "train2017" / name, rng.integers(0, 255, (h, w, 3), dtype=np.uint8))
            images.append({"id": image_id, "file_name": name, "height": h, "width": w})
            boxes = [(cat, 2, 2, 30, 40)] + ([(7, 32, 20, 46, 62)] if cat == 3 else [])
            for c, y0, x0, y1, x1 in boxes:
                poly = [x0, y0, x1, y0, x1, y1, x0, y1]
                anns.append(
                    {"id": len(anns) + 1, "image_id": image_id, "category_id": c,
                     "segmentation": [poly], "area": float((y1 - y0) * (x1 - x0)),
                     "bbox": [x0, y0, x1 - x0, y1 - y0], "iscrowd": 0}
                )  # fmt: skip
    categories = [{"id": c, "name": n} for c, n in ((1, "person"), (3, "car"), (7, "train"))]
    data = {"images": images, "annotations": anns, "categories": categories}
    path = root / "annotations" / "instances_train2017.json"
    path.write_text(json.dumps(data))
    return root


#: Options that make the rule fit the tiny COCO (its instances are 300-1100 px).
TINY_COCO_OPTIONS = ("data.options.min_area=200", "data.options.min_images=3")


def stand_in_ssnm(num_classes: int = 78, **options: Any) -> Any:
    """A contract-following stand-in of ``ssnm_tiny``: a 3x3 convolution to two channels per
    pixel and a linear co-category head over the group's mean colour."""
    import torch
    from torch import nn

    class StandIn(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.head = nn.Conv2d(3, 2, 3, padding=1)
            self.classifier = nn.Linear(3, num_classes)
            self.options = options

        def forward(self, images: torch.Tensor) -> Any:
            b, n, _, h, w = images.shape
            if n < 2:
                raise ValueError("a group needs 2 or more images")
            logits = self.head(images.flatten(0, 1)).view(b, n, 2, h, w)
            cls_logits = self.classifier(images.mean(dim=(1, 3, 4)))
            return SimpleNamespace(
                mask=logits.softmax(dim=2)[:, :, 0],
                logits=logits,
                cls=cls_logits.sigmoid(),
                cls_logits=cls_logits,
                spatial=torch.zeros(b, n, h // 32, w // 32),
            )

    return StandIn()
