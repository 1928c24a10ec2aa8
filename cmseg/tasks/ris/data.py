"""The training and validation data of the ``ris`` task: the readers of each ``data.format``
(``refer``: RefCOCO / RefCOCO+ / RefCOCOg / refclef in the REFER layout; ``referit``:
text_objseg's ReferIt; ``jsonl``: custom data, one JSON object per line), the samples grouped
by image (several sentences of one image share one backbone pass), and the training pipeline.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from cmseg.data.formats.refer import JsonlRefs, RefCOCO, ReferIt
from cmseg.data.transforms import Compose, HorizontalFlip, ResizePad, ToTensor
from cmseg.errors import ConfigError
from cmseg.tasks.ris.options import RIS_FORMATS, RISOptions

__all__ = [
    "DEFAULT_TRAIN",
    "open_split",
    "ConcatReaders",
    "SentenceGroups",
    "PickSentences",
    "collate_groups",
    "train_transforms",
    "image_groups",
]

#: Default training split per format.
DEFAULT_TRAIN = {"refer": "train", "referit": "trainval", "jsonl": "train.jsonl"}


def open_split(root: str | Path, data_format: str, split: str, opts: RISOptions) -> Any:
    """The reader of one split (samples ``{image, mask, sentence, name, ...}``, no transform).

    Raises:
        ConfigError: an unknown format.
        InputError: the files are missing or malformed (one line naming the file).
    """
    data_format = data_format or "refer"
    if data_format == "refer":
        return RefCOCO(
            root,
            opts.dataset,
            split,
            split_by=opts.split_by,
            image_dir=opts.image_dir or None,
            sentence_key=opts.sentence_key,
        )
    if data_format == "referit":
        return ReferIt(root, split)
    if data_format == "jsonl":
        path = Path(split)
        return JsonlRefs(path if path.is_absolute() else Path(root) / path, root=root)
    raise ConfigError(f"data.format: task ris reads {', '.join(RIS_FORMATS)}; got {data_format!r}")


class ConcatReaders:
    """Several readers seen as one sequence."""

    def __init__(self, readers: Sequence[Any]) -> None:
        self.readers = list(readers)
        self.offsets = np.cumsum([0] + [len(r) for r in self.readers])

    def __len__(self) -> int:
        return int(self.offsets[-1])

    def __getitem__(self, index: int) -> Any:
        if not 0 <= index < len(self):
            raise IndexError(index)
        which = int(np.searchsorted(self.offsets, index, side="right")) - 1
        return self.readers[which][index - int(self.offsets[which])]

    def sentences(self) -> list[str]:
        """Every sentence, without reading an image."""
        return [s for r in self.readers for s in _reader_sentences(r)]

    def image_groups(self) -> list[list[int]]:
        """Sample indices grouped by image (first-seen order), without reading an image."""
        return [
            [int(offset) + i for i in group]
            for offset, reader in zip(self.offsets[:-1], self.readers, strict=True)
            for group in image_groups(reader)
        ]


def _reader_image_keys(reader: Any) -> list[Any]:
    """One key per sample, equal for the samples of one image."""
    if isinstance(reader, RefCOCO):
        ix = reader.index
        return [ix.refs[ref_pos]["image_id"] for ref_pos, _ in ix.samples]
    return [str(s.image) for s in reader.samples]


class SentenceGroups:
    """Training items that are images: item i names the sentences of image i.

    ``{"source": source, "members": [sample index, ...]}``; :class:`PickSentences` draws k
    of the members and reads only those from ``source`` (which a caller may replace by an
    in-memory copy of it), so an image with many sentences costs k reads, not all of them.

    Args:
        source: the sentence-level samples (a :class:`ConcatReaders` of readers).
        groups: sample indices per image (:meth:`ConcatReaders.image_groups`).
    """

    def __init__(self, source: Any, groups: Sequence[Sequence[int]]) -> None:
        self.source = source
        self.groups = [list(g) for g in groups]

    def __len__(self) -> int:
        return len(self.groups)

    def __getitem__(self, index: int) -> dict[str, Any]:
        return {"source": self.source, "members": self.groups[index]}


class PickSentences:
    """Read ``k`` of an image's sentences (with their masks) from a :class:`SentenceGroups`
    item, drawn without replacement when the image has at least ``k``, else with
    replacement."""

    def __init__(self, k: int) -> None:
        self.k = int(k)

    def __call__(self, item: Mapping[str, Any], rng: np.random.Generator) -> dict[str, Any]:
        members = item["members"]
        chosen = [
            int(i) for i in rng.choice(len(members), size=self.k, replace=len(members) < self.k)
        ]
        read = {i: item["source"][members[i]] for i in set(chosen)}  # a repeat is read once
        samples = [read[i] for i in chosen]
        return {
            "image": samples[0]["image"],
            "masks": np.stack([s["mask"] for s in samples]),
            "sentences": [s["sentence"] for s in samples],
        }


def collate_groups(items: list[dict[str, Any]]) -> dict[str, Any]:
    """Batch of image items: ``image`` B x 3 x S x S, ``mask`` (k B) x 1 x S x S and ``sentence``
    (k B strings), sentences grouped by image as :meth:`CMPC.forward` expects."""
    return {
        "image": torch.stack([it["image"] for it in items]),
        "mask": torch.cat([it["masks"] for it in items]),
        "sentence": [s for it in items for s in it["sentences"]],
    }


def _reader_sentences(reader: Any) -> list[str]:
    """The sentences of a reader in sample order, from its index (no image is decoded)."""
    if isinstance(reader, RefCOCO):
        ix = reader.index
        return [
            ix.refs[ref_pos]["sentences"][sent_pos][reader.sentence_key]
            for ref_pos, sent_pos in ix.samples
        ]
    return [s.sentence for s in reader.samples]


def _training_sample(sample: Mapping[str, Any]) -> dict[str, Any]:
    """The keys a training batch needs (the readers add ids that do not collate)."""
    return {"image": sample["image"], "mask": sample["mask"], "sentence": sample["sentence"]}


def train_transforms(size: int, *, flip: bool = False, sentences_per_image: int = 1) -> Compose:
    """Training pipeline: [pick k sentences,] [flip with left/right swapped,] resize-and-pad,
    tensors.

    CMPC trains without augmentation (``flip=False``); the flip swaps "left" and "right" in
    the sentences so that they still name the same objects.
    """
    steps: list[Any] = [
        PickSentences(sentences_per_image) if sentences_per_image > 1 else _training_sample
    ]
    if flip:
        steps.append(HorizontalFlip(0.5))
    steps += [ResizePad(size), ToTensor()]
    return Compose(steps)


def image_groups(reader: Any) -> list[list[int]]:
    """Sample indices of ``reader`` grouped by image, in first-seen order."""
    groups: dict[Any, list[int]] = {}
    for i, key in enumerate(_reader_image_keys(reader)):
        groups.setdefault(key, []).append(i)
    return list(groups.values())
