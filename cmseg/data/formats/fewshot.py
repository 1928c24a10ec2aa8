"""Few-shot referring video segmentation: Mini-Ref-YouTube-VOS and Mini-Ref-SAIL-VOS episodes.

Benchmarks of CMA (ICCV 2023; reference cma_fsrvos.md §2).

**Mini-Ref-YouTube-VOS**, read by :class:`MiniRefYouTubeVOS` (the layout CMA's code reads; a
subset of Ref-YouTube-VOS train in the same format, see :mod:`.ytvos`)::

    <root>/
        meta_expressions/train/meta_expressions.json    (or train/meta_expressions.json)
        train/JPEGImages/<video>/<frame>.jpg
        train/Annotations/<video>/<frame>.png           palette PNG, value = obj_id
        train/meta.json                                 objects -> category (required)

48 classes with ids 1..48 in the order of CMA's ``datasets/categories.py``
(:data:`MINI_REF_YTVOS_CLASSES`). Fold ``g`` (1..4) tests the classes with
``(id - 1) % 4 == g - 1`` and trains on the other 36. A video's class is the category (from
``meta.json``) of the object of its *last* expression.

Class ids of other data (the synthetic benchmark, a custom benchmark in this layout): an
optional ``<root>/categories.json`` ``{name: id}`` (ids 1..N; CMA keeps this table in code as
``datasets/categories.py``) defines them; without it, the official 48 are used when every
category found is one of them, else the categories found, sorted by name, get ids 1..N.

**Mini-Ref-SAIL-VOS**, read by :class:`MiniRefSAILVOS` (test only; classes dog = 1, car = 2,
person = 3)::

    <root>/
        Images/<video>/<frame>.bmp
        Annotations/<video>/<frame>.png     binarised: every non-zero value is the object
        meta.json                           objects -> category
        meta_expressions.json

Episodes (1-way; the "shot" is one support clip of ``support_frames`` contiguous frames with
masks and its sentence, from a different video of the query's class):

* training (``split="train"``): ``episodes_per_class`` episodes per training class, run class
  by class as CMA's loader does; episode ``i`` draws from ``(seed, epoch, i)`` a query video and
  ``shots`` other support videos of the class, in each a random object then a random
  expression of it, and a random window of contiguous annotated frames (``query_frames`` for the
  query, ``support_frames`` for the support; short videos padded with their last frame).
* test (``split="test"``, and SAIL): for each test class, in ascending id, the support video(s),
  object, expression and window are drawn once from seed ``42 + run`` (CMA's ``main(args, r)``);
  every (video, expression) of the class's *other* videos is then one query over the whole
  video (CMA runs it in chunks of 10 frames; chunking is the predictor's business). The draw
  uses numpy, not Python's ``random``, so the support videos are not the ones CMA's script
  picks, but they are fixed for a given ``run``.

Sample dict::

    support   list of clip dicts (``shots`` of them)
    query     clip dict
    class     str
    class_id  int

where a clip dict is :mod:`.ytvos`'s: ``frames`` uint8 (T, H, W, 3), ``masks`` bool (T, H, W),
``sentence``, ``video``, ``exp_id``, ``frame_ids``, ``obj_ids``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from cmseg.data.formats import (
    CHECK_HINT,
    Problems,
    Reader,
    Transform,
    frame_window,
    load_json,
    require_folder,
    seeded_rng,
)
from cmseg.data.formats.ytvos import (
    Video,
    VideoIndex,
    index_videos,
    read_frames,
    read_index_masks,
    ytvos_paths,
)
from cmseg.errors import InputError

__all__ = [
    "MINI_REF_YTVOS_CLASSES",
    "SAIL_CLASSES",
    "fold_class_ids",
    "class_table",
    "read_categories",
    "CATEGORIES_FILE",
    "index_fewshot",
    "mini_ytvos_index",
    "sail_index",
    "MiniRefYouTubeVOS",
    "MiniRefSAILVOS",
]

_FOLDS = (
    (
        "hat",
        "raccoon",
        "crocodile",
        "hedgehog",
        "elephant",
        "shark",
        "cat",
        "bear",
        "fox",
        "sedan",
        "rabbit",
        "parrot",
    ),
    (
        "plant",
        "squirrel",
        "penguin",
        "lion",
        "mouse",
        "giraffe",
        "dolphin",
        "zebra",
        "turtle",
        "sheep",
        "duck",
        "lizard",
    ),
    (
        "hand",
        "bus",
        "motorbike",
        "earless_seal",
        "snail",
        "tiger",
        "cow",
        "airplane",
        "deer",
        "fish",
        "snake",
        "giant_panda",
    ),
    (
        "horse",
        "boat",
        "truck",
        "whale",
        "camel",
        "frog",
        "dog",
        "leopard",
        "train",
        "bird",
        "monkey",
        "person",
    ),
)
#: The 48 classes of Mini-Ref-YouTube-VOS; class id = position + 1. Rebuilt from the fold
#: lists of the reference notes (fold g holds ids g, g+4, g+8, ...).
MINI_REF_YTVOS_CLASSES: tuple[str, ...] = tuple(_FOLDS[i % 4][i // 4] for i in range(48))
#: Optional class table beside the data: ``{name: id}`` with ids 1..N.
CATEGORIES_FILE = "categories.json"
#: Mini-Ref-SAIL-VOS classes; class id = position + 1.
SAIL_CLASSES: tuple[str, ...] = ("dog", "car", "person")


def fold_class_ids(fold: int, n_classes: int) -> tuple[list[int], list[int]]:
    """``(train ids, test ids)`` of fold 1..4: test ids are those with ``(id - 1) % 4 == fold - 1``."""
    if fold not in (1, 2, 3, 4):
        raise ValueError("fold must be 1, 2, 3 or 4")
    ids = list(range(1, n_classes + 1))
    test = [i for i in ids if (i - 1) % 4 == fold - 1]
    return [i for i in ids if i not in test], test


def read_categories(path: Path) -> list[str]:
    """A ``categories.json`` ``{name: id}`` table (ids 1..N, CMA's ``categories.py`` as data)
    as the class list in id order."""
    data = load_json(path)
    if not isinstance(data, Mapping) or not data:
        raise InputError(path, "expected a non-empty object {class name: id}")
    ids = list(data.values())
    if any(isinstance(i, bool) or not isinstance(i, int) for i in ids) or sorted(ids) != list(
        range(1, len(ids) + 1)
    ):
        raise InputError(path, f"class ids must be the integers 1..{len(ids)}, each once")
    return [name for name, _ in sorted(data.items(), key=lambda kv: kv[1])]


def class_table(
    found: set[str], official: Sequence[str], categories: Sequence[str] | None
) -> list[str]:
    """The class list (id = position + 1): ``categories`` if given, else ``official`` when every
    category found is in it, else the categories found, sorted (a custom dataset)."""
    if categories is not None:
        return list(categories)
    if found <= set(official):
        return list(official)
    return sorted(found)


@dataclass
class FewShotIndex:
    index: VideoIndex
    classes: list[str]
    by_class: dict[int, list[str]]  # class id -> sorted video ids (videos with expressions)
    binarise: bool


def index_fewshot(
    index: VideoIndex,
    official: Sequence[str],
    categories: Sequence[str] | None,
    *,
    binarise: bool,
    problems: Problems | None = None,
) -> FewShotIndex:
    """Give every video its class (category of its last expression's object, from meta.json)."""
    problems = problems if problems is not None else Problems(strict=True)
    video_class: dict[str, str] = {}
    for vid, video in sorted(index.videos.items()):
        if not video.expressions:
            problems.add(index.meta_expressions, f"video {vid!r} has no expression", fatal=False)
            continue
        last = list(video.expressions.values())[-1]
        obj = last.obj_ids[0] if last.obj_ids else None
        info = video.objects.get(obj) if obj is not None else None
        if info is None or info[0] is None:
            where = index.meta or index.meta_expressions
            problems.add(
                where,
                f"video {vid!r}: no category for object {obj!r} of its last expression in meta.json",
            )
            continue
        video_class[vid] = info[0]
    classes = class_table(set(video_class.values()), official, categories)
    ids = {name: i + 1 for i, name in enumerate(classes)}
    by_class: dict[int, list[str]] = {}
    for vid, name in video_class.items():
        if name not in ids:
            problems.add(
                index.meta or index.meta_expressions,
                f"video {vid!r}: category {name!r} is not a known class",
                fatal=False,
            )
            continue
        by_class.setdefault(ids[name], []).append(vid)
    for cid, vids in sorted(by_class.items()):
        vids.sort()
        if len(vids) < 2:
            problems.add(
                index.meta or index.meta_expressions,
                f"class {classes[cid - 1]!r} has a single video ({vids[0]}); an episode needs a support and a query video",
                fatal=False,
            )
    return FewShotIndex(index, classes, by_class, binarise)


def mini_ytvos_index(root: Path, problems: Problems | None = None) -> VideoIndex:
    meta_exp, frames, ann, meta = ytvos_paths(Path(root), "train")
    if ann is None:
        raise InputError(Path(root) / "train", "no Annotations/ folder")
    if meta is None:
        raise InputError(
            Path(root) / "train" / "meta.json", "no such file (needed for the video classes)"
        )
    return index_videos(meta_exp, frames, ann, meta_file=meta, problems=problems)


def sail_index(root: Path, problems: Problems | None = None) -> VideoIndex:
    root = require_folder(Path(root), "dataset root")
    frames = require_folder(root / "Images", "Images")
    ann = require_folder(root / "Annotations", "Annotations")
    meta_exp = root / "meta_expressions.json"
    meta = root / "meta.json"
    for path in (meta_exp, meta):
        if not path.is_file():
            raise InputError(path, "no such file")
    return index_videos(meta_exp, frames, ann, meta_file=meta, problems=problems)


def _categories(root: Path, categories: Sequence[str] | None) -> Sequence[str] | None:
    """Explicit ``categories``, else ``<root>/categories.json`` when present, else None."""
    if categories is not None:
        return categories
    path = root / CATEGORIES_FILE
    return read_categories(path) if path.is_file() else None


@dataclass(frozen=True)
class _ClipSpec:
    vid: str
    exp_id: str
    indices: tuple[int, ...]


class _Episodes(Reader):
    """Shared episode machinery."""

    def _init(
        self,
        fs: FewShotIndex,
        class_ids: list[int],
        split: str,
        *,
        support_frames: int,
        query_frames: int,
        shots: int,
        episodes_per_class: int,
        seed: int,
        run: int,
    ) -> None:
        if split not in ("train", "test"):
            raise ValueError("split must be 'train' or 'test'")
        if shots < 1 or support_frames < 1 or query_frames < 1:
            raise ValueError("shots, support_frames and query_frames must be >= 1")
        self.fs = fs
        self.videos = fs.index.videos
        self.classes = fs.classes
        self.split = split
        self.support_frames = support_frames
        self.query_frames = query_frames
        self.shots = shots
        self.episodes_per_class = episodes_per_class
        self.seed = seed
        self.run = run
        self.epoch = 0
        usable = [c for c in class_ids if len(fs.by_class.get(c, [])) >= 2]
        self.class_ids = usable
        if not usable:
            raise InputError(fs.index.meta_expressions, f"no {split} class with two or more videos")
        self._episodes: list[tuple[int, tuple[_ClipSpec, ...], _ClipSpec]] = []
        if split == "test":
            for cid in usable:
                rng = seeded_rng(42 + run, cid)
                vids = fs.by_class[cid]
                n_support = min(shots, len(vids) - 1)
                chosen = [
                    vids[int(i)] for i in rng.choice(len(vids), size=n_support, replace=False)
                ]
                supports = tuple(self._random_clip(rng, v, support_frames) for v in chosen)
                for vid in vids:
                    if vid in chosen:
                        continue
                    video = self.videos[vid]
                    for exp_id in video.expressions:
                        self._episodes.append(
                            (cid, supports, _ClipSpec(vid, exp_id, tuple(range(len(video.frames)))))
                        )
        self._cache: tuple[tuple[_ClipSpec, ...], list[dict[str, Any]]] | None = None

    def set_epoch(self, epoch: int) -> None:
        """Draw different training episodes (call once per epoch)."""
        self.epoch = int(epoch)

    def _random_clip(self, rng: np.random.Generator, vid: str, length: int) -> _ClipSpec:
        video = self.videos[vid]
        by_obj: dict[int, list[str]] = {}
        for exp_id, exp in video.expressions.items():
            by_obj.setdefault(exp.obj_ids[0] if exp.obj_ids else 0, []).append(exp_id)
        objs = sorted(by_obj)
        obj = objs[int(rng.integers(len(objs)))]
        exp_id = by_obj[obj][int(rng.integers(len(by_obj[obj])))]
        n = len(video.frames)
        start = int(rng.integers(max(1, n - length + 1)))
        return _ClipSpec(vid, exp_id, tuple(frame_window(n, start, length)))

    def __len__(self) -> int:
        if self.split == "test":
            return len(self._episodes)
        return len(self.class_ids) * self.episodes_per_class

    def episode(self, index: int) -> tuple[int, tuple[_ClipSpec, ...], _ClipSpec]:
        """``(class id, support clip specs, query clip spec)`` of an episode (nothing read)."""
        if self.split == "test":
            return self._episodes[index]
        cid = self.class_ids[index // self.episodes_per_class]
        rng = seeded_rng(self.seed, self.epoch, index)
        vids = self.fs.by_class[cid]
        order = rng.permutation(len(vids))
        query_vid = vids[int(order[0])]
        support_vids = [vids[int(i)] for i in order[1 : 1 + self.shots]]
        query = self._random_clip(rng, query_vid, self.query_frames)
        supports = tuple(self._random_clip(rng, v, self.support_frames) for v in support_vids)
        return cid, supports, query

    def _clip(self, spec: _ClipSpec) -> dict[str, Any]:
        video: Video = self.videos[spec.vid]
        exp = video.expressions[spec.exp_id]
        indices = list(spec.indices)
        frames = read_frames(video, indices)
        index_masks = read_index_masks(video, indices, frames.shape[1:3])
        if self.fs.binarise:
            masks = index_masks > 0
        else:
            masks = index_masks == (exp.obj_ids[0] if exp.obj_ids else -1)
        return {
            "frames": frames,
            "masks": masks,
            "sentence": exp.sentence,
            "video": spec.vid,
            "exp_id": spec.exp_id,
            "frame_ids": [video.frames[i] for i in indices],
            "obj_ids": list(exp.obj_ids),
        }

    def _load(self, index: int) -> dict[str, Any]:
        cid, supports, query = self.episode(index)
        if self._cache is not None and self._cache[0] == supports:
            support = self._cache[1]
        else:
            support = [self._clip(s) for s in supports]
            self._cache = (supports, support)
        return {
            "support": [dict(c) for c in support],
            "query": self._clip(query),
            "class": self.classes[cid - 1],
            "class_id": cid,
        }


class MiniRefYouTubeVOS(_Episodes):
    """Mini-Ref-YouTube-VOS episodes of one fold (module doc).

    Args:
        root: folder holding ``train/`` and ``meta_expressions/``.
        fold: 1..4.
        split: ``train`` (the fold's 36 base classes) or ``test`` (its 12 novel classes).
        support_frames, query_frames: clip lengths (5 and 5; test queries are whole videos).
        shots: support clips per episode (1, each from a different video).
        episodes_per_class: training episodes per class and epoch (100).
        seed: training episodes draw from ``(seed, epoch, index)``.
        run: test episodes draw from seed ``42 + run``.
        categories: class names in id order (default: the 48 official ones, or the sorted
            categories found when the data uses others).
        transform: called on each episode dict.
    """

    def __init__(
        self,
        root: str | Path,
        fold: int = 1,
        split: str = "train",
        *,
        support_frames: int = 5,
        query_frames: int = 5,
        shots: int = 1,
        episodes_per_class: int = 100,
        seed: int = 0,
        run: int = 0,
        categories: Sequence[str] | None = None,
        transform: Transform | None = None,
    ) -> None:
        self.root = Path(root)
        self.fold = fold
        self.transform = transform
        try:
            categories = _categories(self.root, categories)
            fs = index_fewshot(
                mini_ytvos_index(self.root), MINI_REF_YTVOS_CLASSES, categories, binarise=False
            )
        except InputError as err:
            raise InputError(
                err.path, f"{err.reason} ({CHECK_HINT.format(task='fsrvos', root=self.root)})"
            ) from None
        train_ids, test_ids = fold_class_ids(fold, len(fs.classes))
        self._init(
            fs,
            train_ids if split == "train" else test_ids,
            split,
            support_frames=support_frames,
            query_frames=query_frames,
            shots=shots,
            episodes_per_class=episodes_per_class,
            seed=seed,
            run=run,
        )


class MiniRefSAILVOS(_Episodes):
    """Mini-Ref-SAIL-VOS test episodes over its three classes (module doc).

    Args:
        root: folder holding ``Images/``, ``Annotations/``, ``meta.json`` and
            ``meta_expressions.json``.
        support_frames, shots, run, categories, transform: as :class:`MiniRefYouTubeVOS`.
    """

    def __init__(
        self,
        root: str | Path,
        *,
        support_frames: int = 5,
        shots: int = 1,
        run: int = 0,
        categories: Sequence[str] | None = None,
        transform: Transform | None = None,
    ) -> None:
        self.root = Path(root)
        self.transform = transform
        try:
            categories = _categories(self.root, categories)
            fs = index_fewshot(sail_index(self.root), SAIL_CLASSES, categories, binarise=True)
        except InputError as err:
            raise InputError(
                err.path, f"{err.reason} ({CHECK_HINT.format(task='fsrvos', root=self.root)})"
            ) from None
        self._init(
            fs,
            list(range(1, len(fs.classes) + 1)),
            "test",
            support_frames=support_frames,
            query_frames=support_frames,
            shots=shots,
            episodes_per_class=0,
            seed=0,
            run=run,
        )
