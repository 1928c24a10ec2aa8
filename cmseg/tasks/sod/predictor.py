"""Predictors (DESIGN §4): numpy in, numpy out, two phases, one class per task.

:class:`SODPredictor` (salient / camouflaged objects from RGB + depth or thermal)::

    from cmseg.predictors import SODPredictor

    predictor = SODPredictor.from_checkpoint("runs/sod/best")   # device="auto": CUDA if present
    predictor.set_image(rgb, depth)          # rgb uint8 (H, W, 3); depth (h, w), any numeric dtype
    saliency = predictor.predict()           # uint8 (H, W), 0..255, at the image's size
    maps = predictor.predict_batch([(rgb1, d1), (rgb2, d2)])  # one forward pass for all

The checkpoint's ``meta.json`` holds the resolved training configuration: the model is built
from it (name, backbone, options, input size, ``data.options.zero_aux`` and
``data.options.aux_normalisation``), so the checkpoint is all a user names. A checkpoint of the
official XMSNet code is read by :meth:`SODPredictor.from_official` (converted, built with every
official quirk, fed value / 255 as the official ``test.py``). Pre- and postprocessing are those
of training's validation
(:func:`cmseg.tasks.sod.process.preprocess` / :func:`~cmseg.tasks.sod.process.postprocess`):
the maps equal what validation scored.

Inside: eval mode, ``torch.inference_mode()``, ``channels_last`` tensors, and on CUDA bfloat16
autocast (``amp="auto"``; ``amp="off"`` keeps float32 everywhere).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence

import numpy as np
import torch
from torch import nn

from cmseg.engine import inference
from cmseg.engine.inference import AmpMode, DeviceLike, PathLike
from cmseg.errors import ConfigError, InputError
from cmseg.io import AuxNormalisation, check_aux_normalisation
from cmseg.models.backbones import read_state_dict
from cmseg.models.weights import StateDictError, load_strict
from cmseg.models.xmsnet import convert_official_xmsnet
from cmseg.tasks.sod.options import aux_normalisation_of
from cmseg.tasks.sod.process import as_rgb, check_image_size, final_logits, postprocess, preprocess
from cmseg.tasks.sod.train import build_sod_model

__all__ = ["SODPredictor"]

log = logging.getLogger(__name__)


class SODPredictor:
    """Saliency maps from an RGB image and a depth or thermal map.

    Two phases: :meth:`set_image` takes the inputs, :meth:`predict` returns the map (computed
    once per image and cached). :meth:`predict_batch` runs many pairs in one forward pass.

    Args:
        model: the network, ``model(rgb, aux) -> list of logits`` (last = prediction).
        image_size: the square input side the model was trained at (multiple of 32).
        zero_aux: the model was trained with an all-zero aux map (RGB-only baseline): the
            aux input is ignored and may be omitted.
        aux_normalisation: how a map becomes the network's [0, 1] input, as in training
            (``data.options.aux_normalisation``): ``minmax`` per image, or ``div255``, the
            official XMSNet input (8-bit value / 255, colour through PIL's luma; see
            :func:`cmseg.io.normalise_aux`). A model converted from the official code wants
            ``div255`` (:meth:`from_official` sets it).
        device: ``auto``, ``cpu``, ``cuda``, ``cuda:N`` or a ``torch.device``.
        amp: ``auto`` (bfloat16 on CUDA when supported, float32 on CPU), ``off``, ``bf16`` or
            ``fp16`` (CUDA only; ignored on CPU).
    """

    def __init__(
        self,
        model: nn.Module,
        *,
        image_size: int = 384,
        zero_aux: bool = False,
        aux_normalisation: AuxNormalisation = "minmax",
        device: DeviceLike = "auto",
        amp: AmpMode = "auto",
    ) -> None:
        self.runtime = inference.InferenceRuntime(model, device, amp)
        self.device, self.model, self.amp_dtype = (
            self.runtime.device,
            self.runtime.model,
            self.runtime.amp_dtype,
        )
        self.image_size = check_image_size(image_size)
        self.zero_aux = bool(zero_aux)
        self.aux_normalisation = check_aux_normalisation(aux_normalisation)
        self._inputs: tuple[torch.Tensor, torch.Tensor] | None = None
        self._size: tuple[int, int] | None = None
        self._result: np.ndarray | None = None

    @classmethod
    def from_checkpoint(
        cls,
        path: PathLike,
        device: DeviceLike = "auto",
        *,
        amp: AmpMode = "auto",
        aux_normalisation: AuxNormalisation | None = None,
    ) -> SODPredictor:
        """Build the model that ``path`` was trained as and load its weights.

        Args:
            path: see :func:`cmseg.engine.inference.load_task_checkpoint`.
            device, amp: see the class.
            aux_normalisation: None (the default) follows the checkpoint's
                ``data.options.aux_normalisation`` (``minmax`` when it has none); a value
                overrides it, with a warning when it differs from training.

        Raises:
            InputError: no checkpoint there, a checkpoint of another task, metadata that
                names no model or an unknown aux normalisation, or weights that do not fit.
        """
        # Checkpoints of the first releases name no task: they are sod ones.
        checkpoint = inference.load_task_checkpoint(path, "sod", assume_task="sod")
        section = checkpoint.model_section
        # The checkpoint holds every weight: the backbone file is not needed (nor read).
        model = build_sod_model(section, weights=False)
        inference.load_model_weights(model, checkpoint.state_dict, path)
        try:
            trained = aux_normalisation_of(checkpoint.data_options)
        except ConfigError as err:
            raise InputError(path, f"meta.json: {err}") from None
        if aux_normalisation is not None and aux_normalisation != trained:
            log.warning(
                "%s was trained with aux_normalisation %s; predicting with %s as asked",
                path,
                trained,
                aux_normalisation,
            )
        return cls(
            model,
            image_size=int(section.get("image_size", 384)),
            zero_aux=bool(checkpoint.data_options.get("zero_aux", False)),
            aux_normalisation=aux_normalisation or trained,
            device=device,
            amp=amp,
        )

    @classmethod
    def from_official(
        cls,
        weights: PathLike | Mapping[str, torch.Tensor],
        device: DeviceLike = "auto",
        *,
        model: str = "xmsnet_pvt_v2_b5",
        image_size: int = 384,
        amp: AmpMode = "auto",
        aux_normalisation: AuxNormalisation = "div255",
    ) -> SODPredictor:
        """A checkpoint of the official XMSNet code, run as its ``test.py`` runs it.

        The state dict (``torch.save(model.state_dict())`` in Zongwei97/XMSNet, e.g.
        ``XMSNet_epoch_best.pth``; read without unpickling code) goes through
        :func:`~cmseg.models.xmsnet.convert_official_xmsnet` into ``model`` built with
        ``official=True`` (every official quirk of the network), loaded strictly; the maps are
        fed as the official test loader feeds them: ``image_size`` 384 and ``div255``
        (the 8-bit map / 255, colour thermal maps through PIL's luma).

        Args:
            weights: the ``.pth`` file, or its state dict.
            model: the cmseg builder of the same network (``xmsnet_tiny`` for tests).
            image_size: the official ``--trainsize``, also its test size.
            device, amp, aux_normalisation: see the class.

        Raises:
            InputError: an unreadable file, or weights that do not fit the official layout.
        """
        if isinstance(weights, Mapping):
            state, source = dict(weights), "state dict"
        else:
            state, source = read_state_dict(weights), str(weights)
        network = build_sod_model({"name": model, "options": {"official": True}}, weights=False)
        try:
            converted = convert_official_xmsnet(state)
        except StateDictError as err:
            raise StateDictError(source, err.reason) from None
        load_strict(network, converted, source=source)
        return cls(
            network,
            image_size=image_size,
            aux_normalisation=aux_normalisation,
            device=device,
            amp=amp,
        )

    # ----------------------------------------------------------------------------------------
    # Two phases

    def set_image(self, rgb: np.ndarray, aux: np.ndarray | None = None) -> None:
        """Take the inputs of the next :meth:`predict`.

        Args:
            rgb: ``uint8`` ``(H, W, 3)`` image (grey and RGBA are accepted).
            aux: depth or thermal ``(h, w)`` map (or an RGB thermal image), any numeric dtype
                (8/16-bit, float), raw or as ``read_aux`` left it: it is normalised the
                :attr:`aux_normalisation` way (per image over its finite values, or value /
                255); NaN and +/-inf count as holes (0). A map of another size than the image
                is resized to it (with a warning). None only for a ``zero_aux`` model.

        Raises:
            ValueError: bad arrays, or no aux map for a model that needs one.
        """
        image, aux_t, size = self._prepare(rgb, aux)
        self._inputs = (image[None], aux_t[None])
        self._size = size
        self._result = None

    def predict(self) -> np.ndarray:
        """The saliency map of the image given to :meth:`set_image`.

        Returns:
            ``uint8`` ``(H, W)``, 0..255, at the image's original size.

        Raises:
            RuntimeError: :meth:`set_image` was not called first.
        """
        if self._inputs is None or self._size is None:
            raise RuntimeError("SODPredictor.predict() called before set_image(rgb, aux)")
        if self._result is None:
            self._result = self._run(*self._inputs, [self._size])[0]
        return self._result

    def predict_batch(
        self,
        pairs: Sequence[tuple[np.ndarray, np.ndarray | None]],
        *,
        names: Sequence[str] | None = None,
    ) -> list[np.ndarray]:
        """Maps of many ``(rgb, aux)`` pairs (any sizes) in one forward pass.

        Does not change what :meth:`set_image` set.

        Args:
            pairs: ``(rgb, aux)`` as for :meth:`set_image`.
            names: optional label of each pair (e.g. its file) used in warnings.

        Returns:
            One ``uint8`` ``(H, W)`` map per pair, each at its image's size.
        """
        if not pairs:
            return []
        labels = list(names) if names is not None else [None] * len(pairs)
        if len(labels) != len(pairs):
            raise ValueError(f"{len(pairs)} pairs but {len(labels)} names")
        prepared = [
            self._prepare(rgb, aux, label) for (rgb, aux), label in zip(pairs, labels, strict=True)
        ]
        images = torch.stack([p[0] for p in prepared])
        auxes = torch.stack([p[1] for p in prepared])
        return self._run(images, auxes, [p[2] for p in prepared])

    def reset_image(self) -> None:
        """Forget the inputs given to :meth:`set_image`."""
        self._inputs = self._size = self._result = None

    # ----------------------------------------------------------------------------------------
    # Internals

    def _prepare(
        self, rgb: np.ndarray, aux: np.ndarray | None, label: str | None = None
    ) -> tuple[torch.Tensor, torch.Tensor, tuple[int, int]]:
        rgb = as_rgb(rgb)
        if self.zero_aux:
            aux = None  # the model never saw a map; preprocess gives zeros
        elif aux is None:
            raise ValueError(
                "this model needs a depth/thermal map: set_image(rgb, aux) "
                "(only a model trained with data.options.zero_aux=true takes none)"
            )
        else:
            shape = np.shape(aux)[:2]
            if tuple(shape) != rgb.shape[:2]:
                log.warning(
                    "%saux map %dx%d differs from the image %dx%d (width x height): "
                    "resized to the image size",
                    f"{label}: " if label else "",
                    shape[1] if len(shape) > 1 else 0,
                    shape[0] if shape else 0,
                    rgb.shape[1],
                    rgb.shape[0],
                )
        image, aux_t = preprocess(
            rgb, aux, self.image_size, aux_normalisation=self.aux_normalisation
        )
        return image, aux_t, (int(rgb.shape[0]), int(rgb.shape[1]))

    def _run(
        self, images: torch.Tensor, auxes: torch.Tensor, sizes: Sequence[tuple[int, int]]
    ) -> list[np.ndarray]:
        images, auxes = self.runtime.to_device(images), self.runtime.to_device(auxes)
        with torch.inference_mode():
            with self.runtime.autocast():
                logits = final_logits(self.model, images, auxes)
            return [postprocess(one, size) for one, size in zip(logits, sizes, strict=True)]
