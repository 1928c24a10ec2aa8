"""``data check fsrvos``: Mini-Ref-YouTube-VOS and Mini-Ref-SAIL-VOS."""

from __future__ import annotations

from pathlib import Path

from cmseg.data.check.common import CheckResult
from cmseg.data.check.rvos import check_videos
from cmseg.data.formats import Problems
from cmseg.errors import InputError


def check_fsrvos(root: Path, result: CheckResult, workers: int) -> None:
    """Recognise ``root`` as Mini-Ref-SAIL-VOS or Mini-Ref-YouTube-VOS, index its episodes'
    classes (and ``categories.json`` when present), then check every video."""
    from cmseg.data.formats.fewshot import (
        CATEGORIES_FILE,
        MINI_REF_YTVOS_CLASSES,
        SAIL_CLASSES,
        index_fewshot,
        mini_ytvos_index,
        read_categories,
        sail_index,
    )

    problems = Problems(strict=False)
    categories = None
    if (root / CATEGORIES_FILE).is_file():
        try:
            categories = read_categories(root / CATEGORIES_FILE)
        except InputError as err:
            problems.error(err)
    if (root / "Images").is_dir():
        result.layout = "Mini-Ref-SAIL-VOS"
        index = sail_index(root, problems=problems)
        fs = index_fewshot(index, SAIL_CLASSES, categories, binarise=True, problems=problems)
    elif (root / "train").is_dir():
        result.layout = "Mini-Ref-YouTube-VOS"
        index = mini_ytvos_index(root, problems=problems)
        fs = index_fewshot(
            index, MINI_REF_YTVOS_CLASSES, categories, binarise=False, problems=problems
        )
    else:
        raise InputError(
            root,
            "no few-shot layout found: expected Mini-Ref-YouTube-VOS (train/JPEGImages, "
            "train/Annotations, train/meta.json, meta_expressions/train/meta_expressions.json) "
            "or Mini-Ref-SAIL-VOS (Images/, Annotations/, meta.json, meta_expressions.json)",
        )
    result.layout += f", {len(fs.by_class)} classes"
    result.problems.extend(problems.items)
    check_videos(index, result, workers, binarise=fs.binarise)
