"""The ``sod`` task: salient / camouflaged object segmentation from RGB + depth or thermal.

What training, validation and prediction share lives here, so the three can never drift:

* :func:`preprocess`: ``(rgb uint8 HxWx3, aux HxW, size)`` -> the network's input tensors
  (the same resize and normalisation as the last steps of the training pipeline,
  :func:`cmseg.data.transforms.sod_train_transforms`);
* :func:`postprocess`: the final logits -> a ``uint8`` map at the original size, as the official
  ``test.py`` writes it (reference xmsnet.md §2.4, §5.2): bilinear upsampling
  (``align_corners=False``) of the logits to the original size, sigmoid, per-image min-max
  ``(p - min) / (max - min + 1e-8)``, times 255, rounded;
* :func:`build_sod_model`: a model from the ``model`` section of a configuration;
* :func:`build_sod_training`: the :class:`~cmseg.engine.tasks.TrainingSetup` that
  ``cmseg train`` runs for ``task: sod`` (registered in
  :data:`cmseg.engine.tasks.TASK_BUILDERS`).

Task options (``data.options`` in the YAML; ``model.options`` goes to the model builder only):

====================  =======  ================================================================
key                   default  meaning
====================  =======  ================================================================
``zero_aux``          false    feed an all-zero aux map instead of the depth/thermal map, in
                               training, validation and prediction: an RGB-only baseline trained
                               exactly like the cross-modal model (the predictor follows the
                               checkpoint's setting and then needs no aux map)
``zero_is_invalid``   false    depth value 0 means "no measurement" (excluded from the per-image
                               normalisation and set to 0)
``val_root``          ""       folder holding ``data.val_sets`` when it is not ``data.root``
                               (SPNet's zips keep ``TrainDataset/`` and ``TestingSet/<set>/``
                               apart)
``mask_pepper``       true     XMSNet's label noise on the training GT (``randomPeper``)
``aux_noise``         0.0      extra Gaussian noise (max std) on the training aux maps
``loss_kl_weight``    0.5      weight of each cross-layer KL term of :func:`xmsnet_loss`
``loss_official``     false    the released code's objective (plain-mean BCE, zero KL terms)
====================  =======  ================================================================

``data.train_sets`` empty reads every set under ``data.root`` (or ``data.root`` itself when it
is one set); ``data.val_sets`` empty means no validation.

Validation (every ``train.eval_every`` steps and at the end) predicts ``data.val_sets`` at
``model.image_size``, brings each map to its GT's size with :func:`postprocess` and scores
it with :class:`~cmseg.metrics.sod.SODEvaluator` (PySODMetrics conventions). Metrics: ``sm``,
``mae``, ``wfm``, ``maxF``, ``meanF``, ``adpF``, ``maxE``, ``meanE``, ``adpE``; with several
validation sets the plain names are the means over the sets and ``<set>/<metric>`` are added.
Validation images are read by ``data.num_workers`` threads (not processes; see
:mod:`cmseg.engine.prefetch`).
The best checkpoint is chosen by ``sm`` (higher is better) unless ``train.best_metric`` says
otherwise.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from cmseg.config import from_dict
from cmseg.data.formats.sod_folders import SODFolders
from cmseg.data.transforms import Compose, Resize, ToTensor, sod_train_transforms
from cmseg.engine import distributed
from cmseg.engine.prefetch import threaded_batches
from cmseg.engine.tasks import TrainingSetup
from cmseg.errors import ConfigError
from cmseg.io import normalise_aux
from cmseg.metrics.sod import CURVE_NAMES, NUM_LEVELS, SCALAR_NAMES, SODEvaluator
from cmseg.models import build_model
from cmseg.models.xmsnet.loss import XMSNET_SIDE_WEIGHTS, deep_supervision_loss, xmsnet_loss

if TYPE_CHECKING:
    from cmseg.config import RunConfig

__all__ = [
    "SODOptions",
    "METRIC_NAMES",
    "check_image_size",
    "as_rgb",
    "as_aux",
    "preprocess",
    "postprocess",
    "final_logits",
    "build_sod_model",
    "SODValidator",
    "build_sod_training",
    "deep_supervision_loss",
]

log = logging.getLogger(__name__)

#: Validation metrics, in the order they are reported.
METRIC_NAMES = ("sm", "mae", "wfm", "maxF", "meanF", "adpF", "maxE", "meanE", "adpE")

#: Added to the min-max denominator, as the official ``test.py`` does.
MINMAX_EPS = 1e-8


@dataclass(frozen=True)
class SODOptions:
    """The sod task options (``data.options``); see the module docstring."""

    zero_aux: bool = False
    zero_is_invalid: bool = False
    val_root: str = ""
    mask_pepper: bool = True
    aux_noise: float = 0.0
    loss_kl_weight: float = 0.5
    loss_official: bool = False

    @classmethod
    def from_config(cls, options: Mapping[str, Any] | None) -> SODOptions:
        """Parse ``data.options``; an unknown key or a wrong type raises a one-line
        :class:`~cmseg.errors.ConfigError` (``data.options.<key>: ...``)."""
        opts = from_dict(cls, dict(options or {}), prefix="data.options.")
        if opts.aux_noise < 0:
            raise ConfigError(f"data.options.aux_noise must be >= 0, got {opts.aux_noise}")
        if opts.loss_kl_weight < 0:
            raise ConfigError(
                f"data.options.loss_kl_weight must be >= 0, got {opts.loss_kl_weight}"
            )
        return opts


def check_image_size(size: Any) -> int:
    """``model.image_size`` as an int: positive and divisible by 32 (XMSNet's coarsest stride)."""
    if isinstance(size, bool) or not isinstance(size, (int, np.integer)) or size < 32 or size % 32:
        raise ConfigError(f"model.image_size must be a multiple of 32 (>= 32), got {size!r}")
    return int(size)


# --------------------------------------------------------------------------------------------
# Pre- and postprocessing (shared by validation and the predictor)


def as_rgb(rgb: Any) -> np.ndarray:
    """An image as ``uint8`` ``(H, W, 3)``: grey ``(H, W)`` / ``(H, W, 1)`` is repeated, the
    alpha channel of RGBA dropped.

    Raises:
        ValueError: another dtype or shape.
    """
    arr = np.asarray(rgb)
    if arr.dtype != np.uint8:
        raise ValueError(f"rgb must be a uint8 image (0..255), got dtype {arr.dtype}")
    if arr.ndim == 2:
        arr = arr[:, :, None]
    if arr.ndim != 3 or arr.shape[2] not in (1, 3, 4) or min(arr.shape[:2]) < 1:
        raise ValueError(f"rgb must be (H, W, 3) (or grey / RGBA), got shape {arr.shape}")
    if arr.shape[2] == 1:
        arr = np.repeat(arr, 3, axis=2)
    elif arr.shape[2] == 4:
        arr = arr[:, :, :3]
    return arr


def as_aux(aux: Any) -> np.ndarray:
    """A depth/thermal map as ``float32`` ``(H, W)`` in [0, 1], exactly as
    :func:`cmseg.io.read_aux` leaves a file: normalised per image over its finite values;
    NaN and +/-inf become 0. Any numeric dtype; ``(H, W, 1)`` and colour maps (averaged over
    the channels) are accepted. A map already produced by ``read_aux`` comes back unchanged.

    Raises:
        ValueError: not a 2-D numeric map.
    """
    arr = np.asarray(aux)
    if arr.ndim == 3 and arr.shape[2] == 1:
        arr = arr[:, :, 0]
    elif arr.ndim == 3 and arr.shape[2] in (3, 4):
        arr = arr[:, :, :3].astype(np.float64).mean(axis=2)
    if arr.ndim != 2 or min(arr.shape) < 1 or arr.dtype.kind not in "biuf":
        raise ValueError(f"aux must be a numeric (H, W) map, got shape {arr.shape} {arr.dtype}")
    if arr.dtype.kind == "b":
        arr = arr.astype(np.uint8)
    return normalise_aux(arr)[0]


@functools.lru_cache(maxsize=8)
def _resize_to_tensor(size: int) -> Compose:
    # The last two steps of sod_train_transforms: Resize(size) then ToTensor (ImageNet mean/std).
    return Compose([Resize(size), ToTensor()])


def preprocess(rgb: Any, aux: Any | None, size: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The network input for one image.

    The image and the aux map are each resized to ``size x size`` (bilinear, area-averaged
    when shrinking by more than 2x: the training pipeline's resampling); maps of different
    sizes are thereby aligned as if the aux map had first been resized to the image size.

    Args:
        rgb: ``uint8`` ``(H, W, 3)`` image (see :func:`as_rgb`).
        aux: depth/thermal ``(h, w)`` map of any numeric dtype (see :func:`as_aux`; NaN/inf
            allowed), or None for an all-zero map.
        size: the model's input side, a multiple of 32.

    Returns:
        ``(image, aux)``: ``float32`` ``(3, size, size)`` ImageNet-normalised and ``float32``
        ``(1, size, size)`` in [0, 1]. Stack them for a batch.
    """
    pipeline = _resize_to_tensor(int(size))
    image = pipeline({"image": as_rgb(rgb)})["image"]
    if aux is None:
        aux_t = torch.zeros((1, int(size), int(size)), dtype=torch.float32)
    else:
        aux_t = pipeline({"aux": as_aux(aux)})["aux"]
    return image, aux_t


def final_logits(model: nn.Module, image: torch.Tensor, aux: torch.Tensor) -> torch.Tensor:
    """The prediction logits ``B x 1 x S x S`` (XMSNet's last side output, S6)."""
    outputs = model(image, aux)
    return outputs[-1] if isinstance(outputs, (list, tuple)) else outputs


def postprocess(logits: torch.Tensor, size: Sequence[int]) -> np.ndarray:
    """Logits of one image -> ``uint8`` ``(H, W)`` map 0..255 at the original size.

    As the official ``test.py``: bilinear upsampling of the logits (``align_corners=False``) to
    ``size``, sigmoid, per-image min-max ``(p - min) / (max - min + 1e-8)``, times 255 and
    rounded (cv2's float -> uint8 conversion). Every map therefore spans 0..255, even one
    with no object.

    Args:
        logits: ``(h, w)``, ``(1, h, w)`` or ``(1, 1, h, w)``, any float dtype and device.
        size: ``(H, W)`` of the output.
    """
    x = logits.detach().float()
    if x.ndim < 2 or x.numel() != x.shape[-1] * x.shape[-2]:
        raise ValueError(f"expected the logits of one image, got shape {tuple(logits.shape)}")
    x = x.reshape(1, 1, *x.shape[-2:])
    height, width = int(size[0]), int(size[1])
    if x.shape[-2:] != (height, width):
        x = F.interpolate(x, size=(height, width), mode="bilinear", align_corners=False)
    p = x.sigmoid()
    p = (p - p.min()) / (p.max() - p.min() + MINMAX_EPS)
    out = (p * 255).round_().clamp_(0, 255).to(torch.uint8)
    return out[0, 0].cpu().numpy()


# --------------------------------------------------------------------------------------------
# Model


def build_sod_model(
    name: str,
    *,
    backbone: str = "",
    backbone_weights: str | None = None,
    options: Mapping[str, Any] | None = None,
) -> nn.Module:
    """Build a sod network from the fields of a ``model`` section.

    ``backbone`` (empty: the builder's default) and ``backbone_weights`` are passed only when
    set; ``options`` become keyword arguments of the builder.

    Raises:
        ConfigError: unknown model name, or an option the builder does not take.
    """
    if not name:
        raise ConfigError("model.name is not set (e.g. xmsnet_tiny or xmsnet_pvt_v2_b5)")
    kwargs = dict(options or {})
    if backbone:
        kwargs["backbone"] = backbone
    if backbone_weights:
        kwargs["backbone_weights"] = backbone_weights
    try:
        return build_model(name, **kwargs)
    except TypeError as err:
        first = str(err).strip().splitlines()[0]
        raise ConfigError(
            f"model.options: {name} does not take these arguments ({first}); "
            "task options such as zero_aux go under data.options"
        ) from None


# --------------------------------------------------------------------------------------------
# Validation


class _ValItems:
    """Preprocessed validation samples: ``(image, aux, gt uint8, set, name)``."""

    def __init__(self, reader: SODFolders, indices: Sequence[int], size: int) -> None:
        self.reader, self.indices, self.size = reader, list(indices), size

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, i: int) -> tuple[Any, ...]:
        sample = self.reader[self.indices[i]]
        image, aux = preprocess(sample["image"], sample["aux"], self.size)
        gt = sample["mask"].astype(np.uint8) * np.uint8(255)
        return image, aux, gt, sample["set"], sample["name"]


def _collate_val(items: list[tuple[Any, ...]]) -> tuple[Any, ...]:
    images, auxes, gts, sets, names = zip(*items, strict=True)
    return torch.stack(images), torch.stack(auxes), list(gts), list(sets), list(names)


def _flat_metrics(result: Mapping[str, Any]) -> dict[str, float]:
    return {
        "sm": result["sm"],
        "mae": result["mae"],
        "wfm": result["wfm"],
        "maxF": result["fm"]["max"],
        "meanF": result["fm"]["mean"],
        "adpF": result["fm"]["adp"],
        "maxE": result["em"]["max"],
        "meanE": result["em"]["mean"],
        "adpE": result["em"]["adp"],
    }


def _all_reduce(evaluators: dict[str, SODEvaluator]) -> None:
    """Sum the evaluators' additive state over the ranks (in place; per-image lists stay local)."""
    if not distributed.is_distributed():
        return
    n_scalar, n_curve = len(SCALAR_NAMES), len(CURVE_NAMES) * NUM_LEVELS
    flat: dict[str, float] = {}
    for name, ev in evaluators.items():
        st = ev.state
        flat[f"{name}#count"] = float(st.count)
        flat.update({f"{name}#s{i}": float(v) for i, v in enumerate(st.scalar_sums)})
        flat.update({f"{name}#c{i}": float(v) for i, v in enumerate(st.curve_sums.ravel())})
    total = distributed.all_reduce_sums(flat)
    for name, ev in evaluators.items():
        st = ev.state
        st.count = int(round(total[f"{name}#count"]))
        st.scalar_sums = np.array([total[f"{name}#s{i}"] for i in range(n_scalar)])
        curves = np.array([total[f"{name}#c{i}"] for i in range(n_curve)])
        st.curve_sums = curves.reshape(len(CURVE_NAMES), NUM_LEVELS)


class SODValidator:
    """``validate(model) -> metrics`` over SOD sets (see the module docstring).

    Under ``torchrun`` each rank predicts every ``world_size``-th image and the evaluators'
    sums are all-reduced, so every rank returns the metrics of the whole set.

    Args:
        dataset: the validation sets (no transform).
        image_size: the model's input side.
        batch_size: images per forward pass.
        num_workers: threads reading and preprocessing the images (0: in the calling thread).
        zero_aux: feed all-zero aux maps (the RGB-only baseline).
    """

    def __init__(
        self,
        dataset: SODFolders,
        image_size: int,
        *,
        batch_size: int = 8,
        num_workers: int = 0,
        zero_aux: bool = False,
    ) -> None:
        self.dataset = dataset
        self.image_size = check_image_size(image_size)
        self.batch_size = max(1, int(batch_size))
        self.num_workers = max(0, int(num_workers))
        self.zero_aux = zero_aux

    def __call__(self, model: nn.Module) -> dict[str, float]:
        device = next(model.parameters()).device
        rank, world = distributed.rank(), distributed.world_size()
        items = _ValItems(self.dataset, range(rank, len(self.dataset), world), self.image_size)
        evaluators = {name: SODEvaluator() for name in self.dataset.sets}
        for images, auxes, gts, sets, names in threaded_batches(
            items, self.batch_size, self.num_workers, _collate_val
        ):
            if self.zero_aux:
                auxes.zero_()
            logits = final_logits(model, images.to(device), auxes.to(device))
            for one, gt, set_name, name in zip(logits, gts, sets, names, strict=True):
                evaluators[set_name].update(postprocess(one, gt.shape), gt, name=name)
        _all_reduce(evaluators)
        per_set = {name: _flat_metrics(ev.compute()) for name, ev in evaluators.items() if len(ev)}
        if len(per_set) == 1:
            return next(iter(per_set.values()))
        metrics = {k: float(np.mean([m[k] for m in per_set.values()])) for k in METRIC_NAMES}
        for name, values in per_set.items():
            metrics.update({f"{name}/{k}": v for k, v in values.items()})
        return metrics


# --------------------------------------------------------------------------------------------
# Training


def _forward(model: nn.Module, batch: Mapping[str, Any], *, zero_aux: bool) -> Any:
    aux = torch.zeros_like(batch["aux"]) if zero_aux else batch["aux"]
    return model(batch["image"], aux)


def _loss(
    outputs: Any, batch: Mapping[str, Any], *, kl_weight: float, official: bool
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    outputs = list(outputs) if isinstance(outputs, (list, tuple)) else [outputs]
    if len(outputs) == len(XMSNET_SIDE_WEIGHTS):
        return xmsnet_loss(outputs, batch["mask"], kl_weight=kl_weight, official=official)
    return deep_supervision_loss(outputs, batch["mask"])


def build_sod_training(cfg: RunConfig) -> TrainingSetup:
    """The training run of ``task: sod`` (XMSNet on SOD folders; see the module docstring).

    Model ``build_model(cfg.model.name, backbone=..., backbone_weights=...,
    **cfg.model.options)``; training set ``SODFolders(cfg.data.root, sets=cfg.data.train_sets)``
    with :func:`sod_train_transforms` at ``cfg.model.image_size``; loss :func:`xmsnet_loss`
    for models with XMSNet's seven side outputs, :func:`deep_supervision_loss` otherwise;
    validation :class:`SODValidator` on ``cfg.data.val_sets``, best checkpoint by ``sm``.

    Raises:
        ConfigError: a bad option, model name, image size or batch size.
        InputError: the dataset folders are missing or incomplete.
    """
    opts = SODOptions.from_config(cfg.data.options)
    if cfg.data.format not in ("", "sod_folders"):
        raise ConfigError(f"data.format: task sod reads 'sod_folders', got {cfg.data.format!r}")
    if not cfg.data.root:
        raise ConfigError("data.root is not set (the dataset folder)")
    if cfg.data.batch_size < 2:
        raise ConfigError(
            f"data.batch_size must be >= 2 for XMSNet (BatchNorm over 1x1 channel descriptors), "
            f"got {cfg.data.batch_size}"
        )
    size = check_image_size(cfg.model.image_size)
    model = build_sod_model(
        cfg.model.name,
        backbone=cfg.model.backbone,
        backbone_weights=cfg.model.backbone_weights,
        options=cfg.model.options,
    )
    train_set = SODFolders(
        cfg.data.root, sets=cfg.data.train_sets or None, zero_is_invalid=opts.zero_is_invalid
    )
    validate = None
    if cfg.data.val_sets:
        val_set = SODFolders(
            opts.val_root or cfg.data.root,
            sets=cfg.data.val_sets,
            zero_is_invalid=opts.zero_is_invalid,
        )
        validate = SODValidator(
            val_set,
            size,
            batch_size=cfg.data.batch_size,
            num_workers=cfg.data.num_workers,
            zero_aux=opts.zero_aux,
        )
    log.info(
        "sod: %s, %d training images (%s)%s%s",
        cfg.model.name,
        len(train_set),
        ", ".join(train_set.sets),
        f", validating on {len(validate.dataset)} ({', '.join(validate.dataset.sets)})"
        if validate is not None
        else ", no validation",
        ", aux input zeroed (RGB-only)" if opts.zero_aux else "",
    )
    return TrainingSetup(
        model=model,
        loss_fn=functools.partial(
            _loss, kl_weight=opts.loss_kl_weight, official=opts.loss_official
        ),
        train_dataset=train_set,
        forward_fn=functools.partial(_forward, zero_aux=opts.zero_aux),
        train_transform=sod_train_transforms(
            size, mask_pepper=opts.mask_pepper, aux_noise=opts.aux_noise
        ),
        validate=validate,
        best_metric="sm",
        higher_is_better=True,
        model_name=cfg.model.name,
    )
