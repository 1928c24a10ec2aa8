"""The options of the ``sod`` task, ``data.options`` in a run's YAML (``model.options`` goes to
the model builder only).

=====================  =======  ================================================================
key                    default  meaning
=====================  =======  ================================================================
``zero_aux``           false    feed an all-zero aux map instead of the depth/thermal map, in
                                training, validation and prediction: an RGB-only baseline trained
                                exactly like the cross-modal model (the predictor follows the
                                checkpoint's setting and then needs no aux map)
``zero_is_invalid``    false    depth value 0 means "no measurement" (excluded from the per-image
                                normalisation and set to 0)
``aux_key``            ""       the array to read from ``.npz`` aux maps holding several
                                (``cmseg predict sod --aux-key`` at prediction); "" reads the
                                only one
``aux_normalisation``  minmax   how a depth/thermal map becomes [0, 1], in training, validation
                                and prediction (the predictor follows the checkpoint):
                                ``minmax`` stretches each map over its own range (colour maps:
                                the channel mean); ``div255`` is the official XMSNet input,
                                PIL's ``convert('L')`` (colour: ITU-R 601 luma) then / 255
                                (16-bit maps / 65535, float maps in [0, 1] as they are;
                                :func:`cmseg.io.normalise_aux`). A checkpoint without the key
                                was trained with ``minmax``
``val_root``           ""       folder holding ``data.val_sets`` when it is not ``data.root``
                                (SPNet's zips keep ``TrainDataset/`` and ``TestingSet/<set>/``
                                apart)
``mask_pepper``        true     XMSNet's label noise on the training GT (``randomPeper``)
``aux_noise``          0.0      extra Gaussian noise (max std) on the training aux maps
``loss_kl_weight``     0.5      weight of each cross-layer KL term of :func:`xmsnet_loss`
``loss_official``      false    the released code's objective (plain-mean BCE, zero KL terms)
=====================  =======  ================================================================
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from cmseg.config import from_dict
from cmseg.errors import ConfigError
from cmseg.io import AUX_NORMALISATIONS, AuxNormalisation

__all__ = ["SODOptions", "aux_normalisation_of"]


@dataclass(frozen=True)
class SODOptions:
    """The sod task options (``data.options``); see the module docstring."""

    zero_aux: bool = False
    zero_is_invalid: bool = False
    aux_key: str = ""
    aux_normalisation: AuxNormalisation = "minmax"
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


def aux_normalisation_of(options: Mapping[str, Any]) -> AuxNormalisation:
    """The ``aux_normalisation`` of a run's (or a checkpoint's) ``data.options``: ``minmax``
    when absent (every checkpoint written before the option existed).

    Raises:
        ConfigError: a value that is not one of :data:`cmseg.io.AUX_NORMALISATIONS`.
    """
    value = options.get("aux_normalisation", "minmax")
    if value not in AUX_NORMALISATIONS:
        raise ConfigError(
            f"data.options.aux_normalisation must be one of {', '.join(AUX_NORMALISATIONS)}, "
            f"got {value!r}"
        )
    return value  # type: ignore[no-any-return]
