"""``data check sod``: SOD folders (RGB, depth/thermal map and GT of every sample)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from cmseg.data.check.common import CheckResult, parallel, read_mask_checked, size_problem, try_read
from cmseg.data.formats import Problems
from cmseg.io import SOD_GT_THRESHOLD, read_aux, read_image


def check_sod(root: Path, result: CheckResult, workers: int) -> None:
    """Index the SOD folders under ``root`` (one set or several) and open every RGB image,
    aux map and GT mask: readable, aux with valid pixels, GT not empty, sizes that agree."""
    from cmseg.data.formats.sod_folders import find_sets, index_sod

    problems = Problems(strict=False)
    sets = find_sets(root)
    samples = index_sod(root, problems=problems)
    result.layout = f"SOD folders, {len(sets)} set{'s' if len(sets) != 1 else ''}"
    result.items = len(samples)
    result.problems.extend(problems.items)

    def one(s: Any) -> list[str]:
        out: list[str] = []
        image = try_read(out, read_image, s.image)
        aux = try_read(out, read_aux, s.aux)
        gt = None
        if s.gt:  # SOD GT may be soft (not binary), but must not be empty (> 128)
            gt = read_mask_checked(
                out, s.gt, binary=False, nonempty=True, what="GT mask", threshold=SOD_GT_THRESHOLD
            )
        if aux is not None and not aux[1].any():
            out.append(f"{s.aux}: depth/thermal map has no valid pixel (all NaN or infinite)")
        if image is not None:
            partners = (
                (s.aux, aux[0] if aux else None, "depth/thermal map"),
                (s.gt, gt, "GT mask"),
            )
            for path, arr, what in partners:
                if arr is not None:
                    line = size_problem(s.image, image.shape, path, arr.shape, what)
                    if line:
                        out.append(line)
        return out

    result.problems.extend(parallel(one, samples, workers))
