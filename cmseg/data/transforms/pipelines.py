"""Ready-made training pipelines (the sod recipe of XMSNet/SPNet)."""

from __future__ import annotations

from cmseg.data.transforms.base import Compose, Transform
from cmseg.data.transforms.geometric import HorizontalFlip, RandomCenterCrop, RandomRotation
from cmseg.data.transforms.noise import AuxNoise, MaskPepper
from cmseg.data.transforms.photometric import ColorJitter
from cmseg.data.transforms.resize import Resize
from cmseg.data.transforms.to_tensor import ToTensor


def sod_train_transforms(
    size: int = 384,
    *,
    mask_pepper: bool = True,
    aux_noise: float = 0.0,
    to_tensor: bool = True,
) -> Compose:
    """The XMSNet/SPNet training augmentation (reference xmsnet.md §3.3), for sod samples.

    Steps: horizontal flip (p 0.5) -> centred random crop (up to 30 px less per axis) ->
    rotation (p 0.2, whole degrees -15..14) -> resize to ``size`` x ``size`` -> colour
    enhancement on RGB (brightness 0.5..1.5, contrast 0.5..1.5, colour 0..2, sharpness 0..3,
    steps of 0.1) -> pepper noise on the GT (0.15 % of the pixels set to 0 or 1) ->
    ``ToTensor`` (RGB ImageNet-normalised, aux in [0, 1] unnormalised, mask 0/1 float).

    Departures from the released code, all for speed or for cmseg's conventions:

    * flip, crop, rotation and resize are one bilinear warp (PIL rotates with bicubic and
      torchvision resizes with antialiased bilinear; the geometry is the same);
    * masks are warped nearest-neighbour and stay binary, where the reference resizes and
      rotates the GT bilinearly/bicubically and trains on soft values;
    * colour enhancement and pepper noise run after the resize (on the ``size`` image)
      instead of before it at the original resolution, so the pepper count is
      ``int(0.0015 * size**2)`` and its pixels stay hard 0/1 instead of being blurred by the
      later resize;
    * the three colour enhancers are clipped once, not after each step (see
      :class:`ColorJitter`);
    * ``aux_noise`` (off by default, not in the reference) adds :class:`AuxNoise` with that
      maximum std; ``mask_pepper=False`` drops the label noise;
    * the aux map arrives in [0, 1] from the reader, normalised the way
      ``SODFolders(aux_normalisation=...)`` says: ``minmax`` per image by default, or
      ``div255``, the reference's ``value / 255`` of PIL's 8-bit 'L' map (see
      :func:`cmseg.io.normalise_aux`); the warp then resizes it in float, where the reference
      resizes the 8-bit map (a difference of at most 1/255).
    """
    steps: list[Transform] = [
        HorizontalFlip(p=0.5),
        RandomCenterCrop(max_shrink=30),
        RandomRotation(degrees=(-15, 14), p=0.2, integer=True),
        Resize(size),
        ColorJitter(
            brightness=(0.5, 1.5),
            contrast=(0.5, 1.5),
            saturation=(0.0, 2.0),
            sharpness=(0.0, 3.0),
            step=0.1,
        ),
    ]
    if aux_noise > 0:
        steps.append(AuxNoise(std=(0.0, aux_noise)))
    if mask_pepper:
        steps.append(MaskPepper(fraction=0.0015))
    if to_tensor:
        steps.append(ToTensor())
    return Compose(steps)
