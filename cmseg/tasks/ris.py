"""The ``ris`` task: referring image segmentation (one image, one sentence, one mask).

What training, validation and prediction share lives here, so the three can never drift:

* :func:`open_split`: a reader for one split of the configured format: ``refer``
  (RefCOCO / RefCOCO+ / RefCOCOg / refclef, REFER layout), ``referit`` (text_objseg's
  ReferIt) or ``jsonl`` (custom data, one JSON object per line);
* :func:`preprocess`: ``uint8 (H, W, 3)`` image -> the network input: CMPC's
  ``resize_and_pad`` (longer side to ``model.image_size``, centred, zero padding) and ImageNet
  normalisation (timm backbones; the official code subtracts the Caffe BGR mean of its
  DeepLab weights instead);
* :func:`postprocess`: the final logits -> a ``bool (H, W)`` mask at the original size:
  bilinear upsampling to the padded square, the pad cropped away, bilinear resizing to
  ``(H, W)``, then ``logit >= 0`` (sigmoid >= 0.5, CMPC's threshold). The official code
  thresholds at 320 px first and resizes the 0/1 map without re-thresholding (so every
  fractional edge pixel counts as foreground, a slight dilation); resizing the logits
  first is the boundary the model actually predicts;
* :func:`build_ris_model`: the network from the ``model`` section (and the vocabulary);
* :func:`build_ris_training`: the :class:`~cmseg.engine.tasks.TrainingSetup` that
  ``cmseg train`` runs for ``task: ris``.

Data (``data`` section): ``format`` is ``refer`` (default), ``referit`` or ``jsonl``;
``train_sets`` / ``val_sets`` are split names (``refer``: ``train``, ``val``, ``testA``...;
``referit``: ``trainval``, ``test``) or, for ``jsonl``, file names relative to ``data.root``
(``train.jsonl``). Task options (``data.options``):

==================  ==========  ==============================================================
key                 default     meaning
==================  ==========  ==============================================================
``dataset``         refcoco     ``refer``: refcoco, refcoco+, refcocog or refclef
``split_by``        (default)   ``refer``: unc, umd, google, berkeley (default per dataset)
``image_dir``       ""          ``refer``: the images' folder when not REFER's usual place
``sentence_key``    sent        ``refer``: ``sent`` (normalised, CMPC) or ``raw`` (as typed)
``flip``            false       random horizontal flip (p 0.5) that also swaps the words left
                                and right; off in CMPC (no augmentation)
``vocabulary``      ""          a word list file (official ``vocabulary_Gref.txt`` layout);
                                default: built from the training sentences
``min_word_count``  1           words seen fewer times in training become ``<unk>``
``glove``           ""          a GloVe text file to initialise the word embeddings
``convention``      lavt        IoU / prec@X convention of the scores (RISEvaluator)
``loss_reduction``  mean        ``mean`` over pixels, or ``sum`` (the official CMPC loss,
                                summed over the 320 x 320 pixels; :func:`cmpc_loss`)
``freeze_backbone`` false       train the head and the text encoder only (the official run:
                                its ResNet is never updated)
``cache_backbone``  false       with ``freeze_backbone`` and frozen batch norms
``_features``                   (``model.options.freeze_backbone_bn``): compute each image's
                                backbone features once and keep them in memory, up to
                                ``cache_gib`` GiB (:mod:`cmseg.models.feature_cache`); the
                                results do not change, the steps get cheaper
``cache_gib``       2.0         memory budget of that cache
``loss_dice_``       0.0         weight of a soft Dice term on the final map added to CMPC's
``weight``                      loss (not in the paper; :func:`cmseg.models.losses.dice_loss`)
``sentences_per_``  1           k > 1: a training item is an image with k of its sentences
``image``                       (drawn anew each epoch); the backbone runs once per image, so
                                a batch of B images trains k B sentences for little more than
                                the cost of B (``data.batch_size`` counts images then)
==================  ==========  ==============================================================

The word vocabulary (built-in LSTM encoder) is stored in every checkpoint's ``meta.json``
(``extra.vocabulary``) so that a checkpoint is all the predictor needs.

Validation (every ``train.eval_every`` steps and at the end) predicts every sentence of
``data.val_sets`` and scores the masks at the original image size with
:class:`~cmseg.metrics.masks.RISEvaluator`: ``oIoU`` (the headline metric of CMPC's lineage),
``mIoU`` and ``prec@0.5`` ... ``prec@0.9``; under ``torchrun`` the per-sentence counts of all
ranks are combined. The best checkpoint is chosen by ``oIoU``.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from cmseg.data.formats.refer import JsonlRefs, RefCOCO, ReferIt
from cmseg.data.transforms import Compose, HorizontalFlip, ResizePad, ToTensor, pad_placement
from cmseg.engine import distributed
from cmseg.engine.prefetch import threaded_batches
from cmseg.engine.tasks import TrainingSetup
from cmseg.errors import ConfigError
from cmseg.metrics.masks import RIS_CONVENTIONS, RISEvaluator
from cmseg.models import build_model

if TYPE_CHECKING:
    from cmseg.config import ModelConfig, RunConfig
    from cmseg.models.text import Vocabulary

__all__ = [
    "RIS_FORMATS",
    "RISOptions",
    "open_split",
    "preprocess",
    "postprocess",
    "restore_logits",
    "build_ris_model",
    "build_vocabulary",
    "RISValidator",
    "build_ris_training",
    "image_groups",
    "SentenceGroups",
    "PickSentences",
    "collate_groups",
    "train_transforms",
    "parameter_groups",
]

log = logging.getLogger(__name__)

#: Readers of ``data.format``.
RIS_FORMATS = ("refer", "referit", "jsonl")
#: Default training / validation splits per format.
_DEFAULT_TRAIN = {"refer": "train", "referit": "trainval", "jsonl": "train.jsonl"}


@dataclass(frozen=True)
class RISOptions:
    """``data.options`` of the ris task (module docstring)."""

    dataset: str = "refcoco"
    split_by: str | None = None
    image_dir: str = ""
    sentence_key: str = "sent"
    flip: bool = False
    vocabulary: str = ""
    min_word_count: int = 1
    glove: str = ""
    convention: str = "lavt"
    loss_reduction: str = "mean"
    freeze_backbone: bool = False
    cache_backbone_features: bool = False
    cache_gib: float = 2.0
    sentences_per_image: int = 1
    loss_dice_weight: float = 0.0

    @classmethod
    def from_config(cls, options: Mapping[str, Any] | None) -> RISOptions:
        """Read ``data.options``; unknown keys and bad values raise :class:`ConfigError`."""
        options = dict(options or {})
        known = set(cls.__dataclass_fields__)
        unknown = sorted(set(options) - known)
        if unknown:
            raise ConfigError(
                f"data.options: unknown ris option(s) {', '.join(unknown)}; "
                f"known: {', '.join(sorted(known))}"
            )
        opts = cls(**options)
        if opts.convention not in RIS_CONVENTIONS:
            raise ConfigError(
                f"data.options.convention must be one of {', '.join(RIS_CONVENTIONS)}, "
                f"got {opts.convention!r}"
            )
        if opts.loss_reduction not in ("mean", "sum"):
            raise ConfigError(
                f"data.options.loss_reduction must be 'mean' or 'sum', got {opts.loss_reduction!r}"
            )
        if int(opts.sentences_per_image) < 1:
            raise ConfigError(
                f"data.options.sentences_per_image must be >= 1, got {opts.sentences_per_image}"
            )
        if int(opts.min_word_count) < 1:
            raise ConfigError(f"data.options.min_word_count must be >= 1, got {opts.min_word_count}")
        if opts.cache_backbone_features and not opts.freeze_backbone:
            raise ConfigError(
                "data.options.cache_backbone_features needs data.options.freeze_backbone: "
                "the features of a backbone in training change at every step"
            )
        if float(opts.cache_gib) < 0:
            raise ConfigError(f"data.options.cache_gib must be >= 0, got {opts.cache_gib}")
        return opts


# --------------------------------------------------------------------------------------------
# Data


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


class _Concat:
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
        source: the sentence-level samples (a :class:`_Concat` of readers).
        groups: sample indices per image (:meth:`_Concat.image_groups`).
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
        chosen = [int(i) for i in rng.choice(len(members), size=self.k, replace=len(members) < self.k)]
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


@functools.lru_cache(maxsize=8)
def _image_pipeline(size: int) -> Compose:
    return Compose([ResizePad(size), ToTensor()])


def check_image_size(size: Any) -> int:
    """``model.image_size`` as an int, a positive multiple of 8 (CMPC's output stride)."""
    try:
        value = int(size)
    except (TypeError, ValueError):
        raise ConfigError(f"model.image_size must be an integer, got {size!r}") from None
    if value < 32 or value % 8:
        raise ConfigError(f"model.image_size must be a multiple of 8 and >= 32, got {value}")
    return value


def preprocess(image: np.ndarray, size: int) -> torch.Tensor:
    """The network input for one image: ``float32 (3, size, size)``, ImageNet-normalised.

    Args:
        image: ``uint8 (H, W, 3)`` RGB (a grey ``(H, W)`` image is repeated to 3 channels).
        size: the model's input side.
    """
    image = np.asarray(image)
    if image.ndim == 2:
        image = np.repeat(image[..., None], 3, axis=2)
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8 or 0 in image.shape:
        raise ValueError(f"expected a uint8 (H, W, 3) image, got {image.dtype} {image.shape}")
    return _image_pipeline(int(size))({"image": image})["image"]


def restore_logits(logits: torch.Tensor, hw: Sequence[int], size: int) -> torch.Tensor:
    """Logits on the padded square -> ``float32 (H, W)`` logits on the original image.

    Bilinear (``align_corners=False``) upsampling to ``size x size`` (the network input, as
    CMPC upsamples to 320 before thresholding), the padding cropped away, and bilinear
    resizing to ``(H, W)``.

    Args:
        logits: ``(h, w)``, ``(1, h, w)`` or ``(1, 1, h, w)`` square logits of one image.
        hw: ``(H, W)`` of the original image.
        size: the network's input side.
    """
    x = logits.detach().float()
    if x.ndim < 2 or x.numel() != x.shape[-1] * x.shape[-2] or x.shape[-1] != x.shape[-2]:
        raise ValueError(f"expected the square logits of one image, got {tuple(logits.shape)}")
    x = upsample_logits(x.reshape(1, 1, *x.shape[-2:]), int(size))
    height, width = int(hw[0]), int(hw[1])
    top, left, inner_h, inner_w = pad_placement((height, width), int(size))
    x = x[..., top : top + inner_h, left : left + inner_w]
    if (inner_h, inner_w) != (height, width):
        x = F.interpolate(x, size=(height, width), mode="bilinear", align_corners=False)
    return x[0, 0]


def postprocess(logits: torch.Tensor, hw: Sequence[int], size: int) -> np.ndarray:
    """Logits of one image -> ``bool (H, W)`` mask at the original size: :func:`restore_logits`
    then ``logit >= 0`` (sigmoid >= 0.5, CMPC's threshold; see the module docstring)."""
    return (restore_logits(logits, hw, size) >= 0).cpu().numpy()


def upsample_logits(logits: torch.Tensor, size: int) -> torch.Tensor:
    """``B x 1 x h x w`` -> ``B x 1 x size x size`` (bilinear, ``align_corners=False``)."""
    if logits.shape[-2:] == (size, size):
        return logits
    return F.interpolate(logits.float(), size=(size, size), mode="bilinear", align_corners=False)


# --------------------------------------------------------------------------------------------
# Model


def build_vocabulary(sentences: Sequence[str], opts: RISOptions) -> Vocabulary:
    """The word vocabulary: ``opts.vocabulary`` when it names a file, else built from
    ``sentences`` (the training sentences) keeping words seen ``min_word_count`` times."""
    from cmseg.models.text import Vocabulary

    if opts.vocabulary:
        return Vocabulary.from_file(opts.vocabulary)
    return Vocabulary.build(sentences, min_count=int(opts.min_word_count))


def uses_vocabulary(model_cfg: ModelConfig) -> bool:
    """Whether the model reads words through cmseg's own vocabulary (the LSTM encoder) rather
    than a Hugging Face tokenizer (``model.options.text_encoder`` names a local folder)."""
    return str((model_cfg.options or {}).get("text_encoder", "lstm")) == "lstm"


def build_ris_model(
    model_cfg: ModelConfig, vocabulary: Vocabulary | None, *, glove: str = ""
) -> nn.Module:
    """Build a ris network from a ``model`` section.

    Args:
        model_cfg: name, backbone, backbone_weights and options (keyword arguments of the
            builder, e.g. ``text_encoder``, ``lateral_channels``).
        vocabulary: the word vocabulary of the LSTM text encoder (None with a Hugging Face
            text encoder).
        glove: optional GloVe text file for the word embeddings.

    Raises:
        ConfigError: unknown model name, or an option the builder does not take.
    """
    if not model_cfg.name:
        raise ConfigError("model.name is not set (e.g. cmpc_tiny or cmpc_resnet101)")
    kwargs = dict(model_cfg.options or {})
    if model_cfg.backbone:
        kwargs["backbone"] = model_cfg.backbone
    if model_cfg.backbone_weights:
        kwargs["backbone_weights"] = model_cfg.backbone_weights
    if vocabulary is not None:
        kwargs["vocabulary"] = vocabulary
    if glove:
        kwargs["glove"] = glove
    try:
        return build_model(model_cfg.name, **kwargs)
    except TypeError as err:
        first = str(err).strip().splitlines()[0]
        raise ConfigError(
            f"model.options: {model_cfg.name} does not take these arguments ({first}); "
            "task options such as flip go under data.options"
        ) from None


def final_logits(model: nn.Module, images: torch.Tensor, sentences: Sequence[str]) -> torch.Tensor:
    """The prediction logits ``B x 1 x h x w`` of a CMPC-style model's output."""
    output = model(images, list(sentences))
    return output.final if hasattr(output, "final") else output


# --------------------------------------------------------------------------------------------
# Validation


class _ValImages:
    """Validation images, each with all its sentences:
    ``(image 3 x S x S, [sentence], [gt bool (H, W)], [name])``."""

    def __init__(self, reader: Any, groups: Sequence[Sequence[int]], size: int) -> None:
        self.reader, self.groups, self.size = reader, [list(g) for g in groups], size

    def __len__(self) -> int:
        return len(self.groups)

    def __getitem__(self, i: int) -> tuple[Any, ...]:
        samples = [self.reader[j] for j in self.groups[i]]
        return (
            preprocess(samples[0]["image"], self.size),
            [s["sentence"] for s in samples],
            [s["mask"] for s in samples],
            [s["name"] for s in samples],
        )


def image_groups(reader: Any) -> list[list[int]]:
    """Sample indices of ``reader`` grouped by image, in first-seen order."""
    groups: dict[Any, list[int]] = {}
    for i, key in enumerate(_reader_image_keys(reader)):
        groups.setdefault(key, []).append(i)
    return list(groups.values())


class RISValidator:
    """``validate(model) -> metrics`` over ris splits (see the module docstring).

    Each image is encoded once for all its sentences (the model takes one image with n
    sentences, as :class:`~cmseg.models.cmpc.CMPC` does). Under ``torchrun`` each rank
    predicts every ``world_size``-th image; the per-sentence intersection and union counts are
    gathered so every rank returns the scores of the whole split.

    Args:
        readers: ``{split name: reader}``.
        image_size: the model's input side.
        batch_size: images read ahead, and sentences per forward pass.
        num_workers: threads reading and preprocessing the images (0: the calling thread).
        convention: see :class:`RISEvaluator`.
    """

    def __init__(
        self,
        readers: Mapping[str, Any],
        image_size: int,
        *,
        batch_size: int = 8,
        num_workers: int = 0,
        convention: str = "lavt",
    ) -> None:
        self.readers = dict(readers)
        self.image_size = check_image_size(image_size)
        self.batch_size = max(1, int(batch_size))
        self.num_workers = max(0, int(num_workers))
        self.convention = convention

    def evaluate(self, model: nn.Module) -> dict[str, RISEvaluator]:
        """One evaluator per split, holding every sentence of the split (all ranks')."""
        device = next(model.parameters()).device
        rank, world = distributed.rank(), distributed.world_size()
        evaluators: dict[str, RISEvaluator] = {}
        for split, reader in self.readers.items():
            local = RISEvaluator(self.convention)
            items = _ValImages(reader, image_groups(reader)[rank::world], self.image_size)
            for batch in threaded_batches(items, self.batch_size, self.num_workers, list):
                for image, sentences, gts, names in batch:
                    image = image[None].to(device)
                    # one image, its sentences in chunks: the model shares the image features
                    for start in range(0, len(sentences), self.batch_size):
                        chunk = slice(start, start + self.batch_size)
                        logits = final_logits(model, image, sentences[chunk])
                        for one, gt, name in zip(logits, gts[chunk], names[chunk], strict=True):
                            local.update(postprocess(one, gt.shape, self.image_size), gt, name=name)
            evaluators[split] = _gather(local)
        return evaluators

    def __call__(self, model: nn.Module) -> dict[str, float]:
        per_split = {
            split: ev.compute() for split, ev in self.evaluate(model).items() if len(ev)
        }
        if len(per_split) == 1:
            return {k: float(v) for k, v in next(iter(per_split.values())).items()}
        names = [k for k in next(iter(per_split.values())) if k != "num_items"]
        metrics = {k: float(np.mean([m[k] for m in per_split.values()])) for k in names}
        for split, values in per_split.items():
            metrics.update({f"{split}/{k}": float(v) for k, v in values.items()})
        return metrics


def _gather(local: RISEvaluator) -> RISEvaluator:
    """``local``'s items merged over the ranks (rank order); ``local`` itself when alone."""
    if not distributed.is_distributed():
        return local
    merged = RISEvaluator(local.convention)
    for part in distributed.all_gather_objects(local.per_item()):
        for item in part:
            merged.update_counts(item["intersection"], item["union"], item["name"])
    return merged


# --------------------------------------------------------------------------------------------
# Training


def _forward(model: nn.Module, batch: Mapping[str, Any]) -> Any:
    return model(batch["image"], list(batch["sentence"]))


def _loss(
    output: Any, batch: Mapping[str, Any], *, reduction: str, dice_weight: float
) -> tuple[torch.Tensor, dict[str, Any]]:
    from cmseg.models.cmpc.loss import cmpc_loss
    from cmseg.models.losses import dice_loss

    total, parts = cmpc_loss(output, batch["mask"], reduction=reduction)
    if dice_weight:
        dice = dice_loss(output.final, batch["mask"])
        total = total + dice_weight * dice
        parts = {**parts, "dice": dice.detach()}
    return total, parts


def _readers(cfg: RunConfig, splits: Sequence[str], opts: RISOptions) -> dict[str, Any]:
    return {split: open_split(cfg.data.root, cfg.data.format, split, opts) for split in splits}


def build_ris_training(cfg: RunConfig) -> TrainingSetup:
    """The training run of ``task: ris`` (CMPC on a referring dataset; module docstring).

    Raises:
        ConfigError: a bad option, format, model name or image size.
        InputError: the dataset files are missing or malformed.
    """
    opts = RISOptions.from_config(cfg.data.options)
    if cfg.data.format not in ("",) + RIS_FORMATS:
        raise ConfigError(
            f"data.format: task ris reads {', '.join(RIS_FORMATS)}; got {cfg.data.format!r}"
        )
    if not cfg.data.root:
        raise ConfigError("data.root is not set (the dataset folder)")
    size = check_image_size(cfg.model.image_size)
    data_format = cfg.data.format or "refer"
    train_splits = list(cfg.data.train_sets) or [_DEFAULT_TRAIN[data_format]]
    train_set = _Concat(list(_readers(cfg, train_splits, opts).values()))

    vocabulary = None
    extra: dict[str, Any] = {}
    if uses_vocabulary(cfg.model):
        vocabulary = build_vocabulary(train_set.sentences(), opts)
        extra["vocabulary"] = vocabulary.words
    model = build_ris_model(cfg.model, vocabulary, glove=opts.glove)

    validate = None
    if cfg.data.val_sets:
        validate = RISValidator(
            _readers(cfg, cfg.data.val_sets, opts),
            size,
            batch_size=cfg.data.batch_size,
            num_workers=cfg.data.num_workers,
            convention=opts.convention,
        )
    log.info(
        "ris: %s, %d training sentences (%s)%s%s",
        cfg.model.name,
        len(train_set),
        ", ".join(train_splits),
        f", a vocabulary of {len(vocabulary)} words" if vocabulary is not None else "",
        f", validating on {', '.join(cfg.data.val_sets)}" if validate is not None else ", no validation",
    )
    if opts.freeze_backbone:
        model.backbone.requires_grad_(False)
    if opts.cache_backbone_features:
        _attach_feature_cache(model, float(opts.cache_gib))
    k = int(opts.sentences_per_image)
    return TrainingSetup(
        model=model,
        loss_fn=functools.partial(
            _loss, reduction=opts.loss_reduction, dice_weight=float(opts.loss_dice_weight)
        ),
        train_dataset=SentenceGroups(train_set, train_set.image_groups()) if k > 1 else train_set,
        forward_fn=_forward,
        collate_fn=collate_groups if k > 1 else None,
        train_transform=train_transforms(size, flip=opts.flip, sentences_per_image=k),
        validate=validate,
        best_metric="oIoU",
        higher_is_better=True,
        model_name=cfg.model.name,
        checkpoint_extra=extra,
        param_groups=parameter_groups(model, cfg.optim.weight_decay),
    )


def _attach_feature_cache(model: nn.Module, gib: float) -> None:
    """Give ``model`` (a CMPC) a :class:`~cmseg.models.feature_cache.FeatureCache` of its
    frozen backbone, or raise :class:`ConfigError` when the model cannot use one."""
    from cmseg.models.feature_cache import FeatureCache

    if not hasattr(model, "backbone_cache"):
        raise ConfigError(
            f"data.options.cache_backbone_features: {type(model).__name__} has no backbone cache"
        )
    if not getattr(model, "freeze_backbone_bn", False):
        raise ConfigError(
            "data.options.cache_backbone_features needs model.options.freeze_backbone_bn: true "
            "(batch norms in training mode make an image's features depend on its batch)"
        )
    model.backbone_cache = FeatureCache(max_bytes=int(gib * 2**30))


def parameter_groups(model: nn.Module, weight_decay: float) -> list[dict[str, Any]]:
    """Optimizer groups: weight decay on the head's kernels only.

    The official L2 term covers the ``DW`` kernels of the head's convolutions; biases, norm
    scales, the word embeddings, the LSTM and the backbone are not decayed. Frozen parameters
    are left out.
    """
    decay, no_decay = [], []
    for name, param in model.named_parameters():
        if not param.requires_grad:
            continue
        head = not name.startswith(("backbone.", "text_encoder."))
        (decay if head and param.ndim >= 2 else no_decay).append(param)
    groups = [{"params": decay, "weight_decay": float(weight_decay)}]
    if no_decay:
        groups.append({"params": no_decay, "weight_decay": 0.0})
    return groups
