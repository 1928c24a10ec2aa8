"""Predictors (DESIGN §4): numpy in, numpy out, two phases, one class per task.

:class:`SODPredictor` (salient / camouflaged objects from RGB + depth or thermal)::

    from cmseg.predictors import SODPredictor

    predictor = SODPredictor.from_checkpoint("runs/sod/best")   # device="auto": CUDA if present
    predictor.set_image(rgb, depth)          # rgb uint8 (H, W, 3); depth (h, w), any numeric dtype
    saliency = predictor.predict()           # uint8 (H, W), 0..255, at the image's size
    maps = predictor.predict_batch([(rgb1, d1), (rgb2, d2)])  # one forward pass for all

The checkpoint's ``meta.json`` holds the resolved training configuration: the model is built
from it (name, backbone, options, input size, ``data.options.zero_aux``), so the checkpoint
is all a user names. Pre- and postprocessing are those of training's validation
(:func:`cmseg.tasks.sod.process.preprocess` / :func:`~cmseg.tasks.sod.process.postprocess`):
the maps equal what validation scored.

Inside: eval mode, ``torch.inference_mode()``, ``channels_last`` tensors, and on CUDA bfloat16
autocast (``amp="auto"``; ``amp="off"`` keeps float32 everywhere).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import numpy as np
import torch
from torch import nn

from cmseg.engine import inference
from cmseg.engine.inference import AmpMode, DeviceLike, PathLike
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
        self._inputs: tuple[torch.Tensor, torch.Tensor] | None = None
        self._size: tuple[int, int] | None = None
        self._result: np.ndarray | None = None

    @classmethod
    def from_checkpoint(
        cls, path: PathLike, device: DeviceLike = "auto", *, amp: AmpMode = "auto"
    ) -> SODPredictor:
        """Build the model that ``path`` was trained as and load its weights.

        Args:
            path: see :func:`cmseg.engine.inference.load_task_checkpoint`.
            device, amp: see the class.

        Raises:
            InputError: no checkpoint there, a checkpoint of another task, metadata that
                names no model, or weights that do not fit the model.
        """
        # Checkpoints of the first releases name no task: they are sod ones.
        checkpoint = inference.load_task_checkpoint(path, "sod", assume_task="sod")
        section = checkpoint.model_section
        # The checkpoint holds every weight: the backbone file is not needed (nor read).
        model = build_sod_model(section, weights=False)
        inference.load_model_weights(model, checkpoint.state_dict, path)
        return cls(
            model,
            image_size=int(section.get("image_size", 384)),
            zero_aux=bool(checkpoint.data_options.get("zero_aux", False)),
            device=device,
            amp=amp,
        )

    # ----------------------------------------------------------------------------------------
    # Two phases

    def set_image(self, rgb: np.ndarray, aux: np.ndarray | None = None) -> None:
        """Take the inputs of the next :meth:`predict`.

        Args:
            rgb: ``uint8`` ``(H, W, 3)`` image (grey and RGBA are accepted).
            aux: depth or thermal ``(h, w)`` map, any numeric dtype (8/16-bit, float), raw or
                normalised: it is normalised per image over its finite values; NaN and +/-inf
                count as holes (0). A map of another size than the image is resized to it
                (with a warning). None only for a ``zero_aux`` model.

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
        image, aux_t = preprocess(rgb, aux, self.image_size)
        return image, aux_t, (int(rgb.shape[0]), int(rgb.shape[1]))

    def _run(
        self, images: torch.Tensor, auxes: torch.Tensor, sizes: Sequence[tuple[int, int]]
    ) -> list[np.ndarray]:
        images, auxes = self.runtime.to_device(images), self.runtime.to_device(auxes)
        with torch.inference_mode():
            with self.runtime.autocast():
                logits = final_logits(self.model, images, auxes)
            return [postprocess(one, size) for one, size in zip(logits, sizes, strict=True)]
