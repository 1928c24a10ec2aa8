"""RGB-D / RGB-T salient and camouflaged object datasets in their release folders.

Layout (the SPNet RGB-D zips, VT821/VT1000/VT5000, and the COD sets with depth)::

    <root>/                      one set: <root> itself holds the three folders, or
    <root>/<set>/                several sets side by side (NJU2K, NLPR, SIP, STERE, ...)
        RGB/      <name>.jpg     RGB image; folder also spelled Image, Images, Imgs, img
        depth/    <name>.png     depth map (RGB-D); or T/ or thermal/ (RGB-T); any case
        GT/       <name>.png     ground truth; also GT_Object, Mask, Masks, GroundTruth

Files are paired **by name stem** (``0001.jpg`` <-> ``0001.bmp`` <-> ``0001.png``), never by
sorted position as SPNet's loader does; any image extension cmseg reads is accepted (depth maps
also ``.npy``/``.npz``/16-bit PNG/TIFF). Folder names are matched without regard to case.

Sample dict (:class:`SODFolders`)::

    image      uint8 (H, W, 3)     RGB
    aux        float32 (H, W)      depth/thermal in [0, 1] (aux_normalisation: min-max per
                                   image, or div255 as the official loader)
    aux_valid  bool (H, W)         False where the map is NaN/inf (or 0 with zero_is_invalid)
    mask       bool (H, W)         GT > 128 (absent with require_gt=False and no GT folder)
    name       str                 file stem
    set        str                 set folder name

Soft (anti-aliased) GT is thresholded at :data:`cmseg.io.SOD_GT_THRESHOLD` (``> 128``), the
threshold of ``evaluate sod`` (PySODMetrics) and ``data check sod``; XMSNet trains on the soft
values instead (reference xmsnet.md §3.3) - read them with :func:`cmseg.io.read_grey` if needed.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cmseg.data.formats import (
    CHECK_HINT,
    Problems,
    Reader,
    Transform,
    find_child,
    require_folder,
    same_size,
)
from cmseg.data.pairing import index_by_stem
from cmseg.errors import InputError
from cmseg.io import (
    AUX_EXTENSIONS,
    IMAGE_EXTENSIONS,
    SOD_GT_THRESHOLD,
    AuxNormalisation,
    check_aux_normalisation,
    read_aux,
    read_image,
    read_mask,
)

__all__ = [
    "RGB_NAMES",
    "AUX_NAMES",
    "GT_NAMES",
    "SODSample",
    "SODFolders",
    "find_sets",
    "index_sod",
]

#: Accepted spellings of the three folders (matched ignoring case; the first found wins).
RGB_NAMES = ("RGB", "Image", "Images", "Imgs", "img", "imgs")
AUX_NAMES = ("depth", "depths", "T", "thermal", "TIR", "infrared")
GT_NAMES = ("GT", "GT_Object", "GT_Objects", "Mask", "Masks", "GroundTruth", "Ground_Truth")


@dataclass(frozen=True)
class SODSample:
    """One (RGB, aux, GT) triple found on disk."""

    set: str
    name: str
    image: Path
    aux: Path
    gt: Path | None


def _is_set(folder: Path) -> bool:
    return find_child(folder, RGB_NAMES) is not None


def find_sets(root: Path, sets: Sequence[str] | None = None) -> list[Path]:
    """The set folders under ``root``: ``root`` itself when it holds an RGB folder, otherwise
    each sub-folder that does (sorted by name), optionally restricted to ``sets``."""
    require_folder(root, "dataset root")
    if _is_set(root):
        found = [root]
    else:
        found = [
            p
            for p in sorted(root.iterdir())
            if p.is_dir() and not p.name.startswith(".") and _is_set(p)
        ]
    if not found:
        raise InputError(
            root,
            f"no RGB folder (looked for {', '.join(RGB_NAMES)}, any case) in the root or in any sub-folder; "
            "expected <root>/{RGB,depth,GT}/ or <root>/<set>/{RGB,depth,GT}/",
        )
    if sets is not None:
        by_name = {p.name: p for p in found}
        unknown = [s for s in sets if s not in by_name]
        if unknown:
            raise InputError(
                root, f"no set named {', '.join(unknown)} (found {', '.join(by_name)})"
            )
        found = [by_name[s] for s in sets]
    return found


def index_sod(
    root: Path,
    sets: Sequence[str] | None = None,
    *,
    require_gt: bool = True,
    problems: Problems | None = None,
) -> list[SODSample]:
    """List every sample of every set, paired by stem.

    A missing depth/thermal or GT partner is a (fatal) problem; a depth or GT file without an
    RGB image is reported only when collecting (it is never read).
    """
    problems = problems if problems is not None else Problems(strict=True)
    samples: list[SODSample] = []
    for set_dir in find_sets(Path(root), sets):
        rgb_dir = find_child(set_dir, RGB_NAMES)
        aux_dir = find_child(set_dir, AUX_NAMES)
        gt_dir = find_child(set_dir, GT_NAMES)
        if aux_dir is None:
            problems.add(
                set_dir, f"no depth/thermal folder (looked for {', '.join(AUX_NAMES)}, any case)"
            )
            continue
        if gt_dir is None and require_gt:
            problems.add(set_dir, f"no GT folder (looked for {', '.join(GT_NAMES)}, any case)")
            continue
        assert rgb_dir is not None
        dupes: list[str] = []
        rgb = index_by_stem(rgb_dir, extensions=IMAGE_EXTENSIONS, problems=dupes)
        aux = index_by_stem(aux_dir, extensions=AUX_EXTENSIONS, problems=dupes)
        gt = index_by_stem(gt_dir, extensions=IMAGE_EXTENSIONS, problems=dupes) if gt_dir else {}
        for line in dupes:
            path, _, reason = line.partition(": ")
            problems.add(path, reason, fatal=False)
        if not rgb:
            problems.add(rgb_dir, "RGB folder holds no image")
        for stem, rgb_path in rgb.items():
            ok = True
            if stem not in aux:
                problems.add(rgb_path, f"no depth/thermal map named {stem}.* in {aux_dir.name}/")
                ok = False
            if gt_dir is not None and stem not in gt:
                problems.add(rgb_path, f"no GT mask named {stem}.* in {gt_dir.name}/")
                ok = False
            if ok:
                samples.append(SODSample(set_dir.name, stem, rgb_path, aux[stem], gt.get(stem)))
        for side in (aux, gt):
            for stem in sorted(set(side) - set(rgb)):
                problems.add(
                    side[stem], f"no RGB image named {stem}.* in {rgb_dir.name}/", fatal=False
                )
    return samples


class SODFolders(Reader):
    """Salient / camouflaged object sets with depth or thermal maps (layout in the module doc).

    Args:
        root: the dataset root (one set, or a folder of sets).
        sets: set folder names to read (default: all found, sorted by name).
        zero_is_invalid: treat depth value 0 as "no measurement" (``aux_valid`` False there).
        aux_key: the array to read from ``.npz`` maps that hold several
            (:func:`cmseg.io.read_aux`); None reads the only one.
        require_gt: when False a set without a GT folder is accepted (samples have no ``mask``).
        aux_normalisation: how a map becomes [0, 1] (:func:`cmseg.io.normalise_aux`):
            ``minmax`` per image, or ``div255``, the official XMSNet reading.
        transform: called on each sample dict.

    Raises:
        InputError: no set found, a missing folder, or an RGB image without its depth/GT partner.
        ValueError: an unknown ``aux_normalisation``.
    """

    def __init__(
        self,
        root: str | Path,
        *,
        sets: Sequence[str] | None = None,
        zero_is_invalid: bool = False,
        aux_key: str | None = None,
        require_gt: bool = True,
        aux_normalisation: AuxNormalisation = "minmax",
        transform: Transform | None = None,
    ) -> None:
        self.root = Path(root)
        self.zero_is_invalid = zero_is_invalid
        self.aux_key = aux_key or None
        self.aux_normalisation = check_aux_normalisation(aux_normalisation)
        self.transform = transform
        try:
            self.samples = index_sod(self.root, sets, require_gt=require_gt)
        except InputError as err:
            raise InputError(
                err.path, f"{err.reason} ({CHECK_HINT.format(task='sod', root=self.root)})"
            ) from None
        if not self.samples:
            raise InputError(self.root, "no samples found")
        self.sets = sorted({s.set for s in self.samples})

    def __len__(self) -> int:
        return len(self.samples)

    def _load(self, index: int) -> dict[str, Any]:
        s = self.samples[index]
        image = read_image(s.image)
        aux, valid = read_aux(
            s.aux,
            zero_is_invalid=self.zero_is_invalid,
            key=self.aux_key,
            normalisation=self.aux_normalisation,
        )
        same_size(s.image, image.shape, s.aux, aux.shape, "depth/thermal map")
        out: dict[str, Any] = {
            "image": image,
            "aux": aux,
            "aux_valid": valid,
            "name": s.name,
            "set": s.set,
        }
        if s.gt is not None:
            mask = read_mask(s.gt, threshold=SOD_GT_THRESHOLD)
            same_size(s.image, image.shape, s.gt, mask.shape, "GT mask")
            out["mask"] = mask
        return out
