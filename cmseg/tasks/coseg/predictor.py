"""The co-segmentation predictor (DESIGN §4): numpy in, numpy out, two phases.

:class:`CosegPredictor` segments the object that a group of images shares::

    from cmseg.predictors import CosegPredictor

    predictor = CosegPredictor.from_checkpoint("runs/coseg/best")   # device="auto"
    maps = predictor.predict([img1, img2, img3])   # uint8 (H_i, W_i, 3), any sizes, N >= 2
    # -> [float32 (H_i, W_i) in [0, 1]], each at its image's size
    predictor.set_group([img1, img2]); maps = predictor.predict()   # the two-phase form
    predictor.categories()         # {category: probability} of the last group (co-category head)

The checkpoint is all it needs: the model is rebuilt from the stored configuration (name,
options, input size) and the training classes stored in ``meta.json`` (``extra.categories``,
their number being the classifier's width). Each image is resized to ``model.image_size``
square and normalised as in training (:func:`~cmseg.tasks.coseg.process.preprocess_group`);
each map is resized back bilinearly to its image's size, what SSNM's ``coseg_test.py`` writes
(times 255). The maps equal what validation scores before its resizing to 224.

Inside: eval mode, ``torch.inference_mode()``, and on CUDA bfloat16 autocast (``amp="auto"``;
``amp="off"`` keeps float32).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch import nn

from cmseg.engine import inference
from cmseg.engine.inference import AmpMode, DeviceLike, PathLike
from cmseg.errors import InputError
from cmseg.tasks.coseg.process import (
    check_image_size,
    output_probabilities,
    preprocess_group,
    restore_map,
    same_size_runs,
)
from cmseg.tasks.coseg.train import build_coseg_model

__all__ = ["CosegPredictor"]


class CosegPredictor:
    """Foreground maps of the object shared by a group of images.

    Args:
        model: an SSNM-style network, ``model(images (B, N, 3, S, S))`` with ``.mask``
            ``(B, N, S, S)`` and ``.cls`` ``(B, K)``.
        image_size: the square input side it was trained at (a multiple of 32).
        categories: the names of its ``K`` co-categories (training classes), in label order.
        device: ``auto``, ``cpu``, ``cuda``, ``cuda:N`` or a ``torch.device``.
        amp: ``auto`` (bfloat16 on CUDA when supported), ``off``, ``bf16`` or ``fp16``.
    """

    def __init__(
        self,
        model: nn.Module,
        *,
        image_size: int = 224,
        categories: Sequence[str] = (),
        device: DeviceLike = "auto",
        amp: AmpMode = "auto",
    ) -> None:
        self.runtime = inference.InferenceRuntime(model, device, amp)
        self.model, self.device = self.runtime.model, self.runtime.device
        self.image_size = check_image_size(image_size)
        self.category_names = list(categories)
        self._group: list[np.ndarray] | None = None
        self._maps: list[np.ndarray] | None = None
        self._cls: np.ndarray | None = None

    @classmethod
    def from_checkpoint(
        cls, path: PathLike, device: DeviceLike = "auto", *, amp: AmpMode = "auto"
    ) -> CosegPredictor:
        """Build the model that ``path`` was trained as and load its weights.

        Raises:
            InputError: no checkpoint there, a checkpoint of another task, metadata without
                its training classes, or weights that do not fit.
        """
        checkpoint = inference.load_task_checkpoint(path, "coseg")
        names = (checkpoint.meta.get("extra") or {}).get("categories")
        if not isinstance(names, list) or not names:
            raise InputError(path, "meta.json lists no training classes (extra.categories)")
        section = checkpoint.model_section
        model = build_coseg_model(section, len(names), weights=False)
        inference.load_model_weights(model, checkpoint.state_dict, path)
        return cls(
            model,
            image_size=int(section.get("image_size", 224)),
            categories=[str(n) for n in names],
            device=device,
            amp=amp,
        )

    # ----------------------------------------------------------------------------------------
    # Two phases

    def set_group(self, images: Sequence[np.ndarray]) -> None:
        """Take the group of the next :meth:`predict`.

        Args:
            images: two or more ``uint8 (H_i, W_i, 3)`` images (grey ``(H, W)`` accepted),
                of any sizes.

        Raises:
            ValueError: fewer than two images, or one that is not a uint8 image.
        """
        group = [np.asarray(image) for image in images]
        if len(group) < 2:
            raise ValueError(f"co-segmentation needs a group of 2 or more images, got {len(group)}")
        preprocess_group(group[:1], 32)  # checks dtype and shape before any work
        self._group, self._maps, self._cls = group, None, None

    def predict(self, images: Sequence[np.ndarray] | None = None) -> list[np.ndarray]:
        """The foreground map of every image of the group.

        Args:
            images: the group (as for :meth:`set_group`); None: the group set before.

        Returns:
            One ``float32 (H_i, W_i)`` map in [0, 1] per image, at its own size.

        Raises:
            RuntimeError: no group given and none set.
        """
        if images is not None:
            self.set_group(images)
        if self._group is None:
            raise RuntimeError("CosegPredictor.predict() called without a group (set_group)")
        if self._maps is None:
            ((self._maps, self._cls),) = self._run([self._group])
        return self._maps

    def predict_groups(self, groups: Sequence[Sequence[np.ndarray]]) -> list[list[np.ndarray]]:
        """The maps of several groups; groups of one size share a forward pass. Does not
        change the group of :meth:`set_group`."""
        for group in groups:
            if len(group) < 2:
                raise ValueError(f"co-segmentation needs groups of 2 or more, got {len(group)}")
        return [maps for maps, _ in self._run([[np.asarray(i) for i in g] for g in groups])]

    def categories(self) -> dict[str, float]:
        """``{training class: probability}`` of the co-category head for the last group
        (empty for a model without the semantic modulator, which has no such head)."""
        if self._cls is None:
            self.predict()
        assert self._cls is not None
        return {name: float(p) for name, p in zip(self.category_names, self._cls, strict=False)}

    def reset_group(self) -> None:
        """Forget the group given to :meth:`set_group`."""
        self._group = self._maps = self._cls = None

    # ----------------------------------------------------------------------------------------
    # Internals

    def _run(
        self, groups: Sequence[Sequence[np.ndarray]]
    ) -> list[tuple[list[np.ndarray], np.ndarray]]:
        """``(maps, co-category probabilities)`` of each group; groups of one size share a
        forward pass."""
        results: list[tuple[list[np.ndarray], np.ndarray]] = []
        size = self.image_size
        for run in same_size_runs([len(g) for g in groups]):
            x = torch.stack([preprocess_group(groups[i], size) for i in run])
            with torch.inference_mode():
                with self.runtime.autocast():
                    output = self.model(self.runtime.to_device(x))
                prob = output_probabilities(output, (size, size))
                # no co-category head without the semantic modulator (an ablation)
                cls = (
                    output.cls.float().cpu().numpy()
                    if output.cls is not None
                    else np.zeros((len(run), 0), np.float32)
                )
                for k, i in enumerate(run):
                    maps = [
                        restore_map(p, im.shape[:2])
                        for p, im in zip(prob[k], groups[i], strict=True)
                    ]
                    results.append((maps, cls[k]))
        return results
