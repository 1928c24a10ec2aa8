"""Pair prediction files with ground-truth files by name, never by sorted position.

Reference tools that pair by ``sorted(os.listdir)`` index (SPNet's evaluator, for one)
silently misalign every later pair when one file is missing; here every mismatch is listed.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from cmseg.errors import InputError
from cmseg.io import IMAGE_EXTENSIONS


@dataclass
class Pairing:
    """Result of matching two folders by key.

    Attributes:
        pairs: ``(key, pred_path, gt_path)`` sorted by key.
        missing: ``(key, gt_path)`` of ground truth without a prediction.
        extra: ``(key, pred_path)`` of predictions without ground truth.
        problems: other problems as one-line ``"<path>: <reason>"`` strings (duplicate stems...).
    """

    pairs: list[tuple[str, Path, Path]] = field(default_factory=list)
    missing: list[tuple[str, Path]] = field(default_factory=list)
    extra: list[tuple[str, Path]] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)


def require_dir(path: str | Path, what: str) -> Path:
    """Return ``path`` as a Path, or raise a one-line error if it is not an existing folder."""
    path = Path(path)
    if not path.exists():
        raise InputError(path, f"{what} folder does not exist")
    if not path.is_dir():
        raise InputError(path, f"{what} must be a folder, got a file")
    return path


def index_by_stem(
    folder: Path,
    *,
    extensions: tuple[str, ...] = IMAGE_EXTENSIONS,
    problems: list[str] | None = None,
) -> dict[str, Path]:
    """Map ``stem -> file`` for the image files directly inside ``folder``.

    Two files with the same stem (``a.png`` and ``a.jpg``) are ambiguous: which one is meant
    cannot be told, so the clash is appended to ``problems`` as one line naming both (callers
    report it; the first in name order stays in the map so that the rest can still be listed).
    Hidden files are ignored.
    """
    found: dict[str, Path] = {}
    for path in sorted(folder.iterdir()):
        if path.name.startswith(".") or not path.is_file() or path.suffix.lower() not in extensions:
            continue
        if path.stem in found:
            if problems is not None:
                problems.append(ambiguous_stem(found[path.stem], path))
            continue
        found[path.stem] = path
    return found


def ambiguous_stem(first: Path, second: Path) -> str:
    """The one-line problem of two files that differ only by extension."""
    return (
        f"{first.with_suffix('')}: ambiguous name, two files {first.name} and {second.name}; "
        "remove or rename one"
    )


def index_subfolders(folder: Path) -> dict[str, Path]:
    """Map ``name -> subfolder`` for the non-hidden folders directly inside ``folder``."""
    return {
        p.name: p for p in sorted(folder.iterdir()) if p.is_dir() and not p.name.startswith(".")
    }


def pair_by_key(
    pred: dict[str, Path], gt: dict[str, Path], problems: list[str] | None = None
) -> Pairing:
    """Match two ``key -> path`` maps; keys present on one side only are listed."""
    result = Pairing(problems=list(problems or []))
    result.pairs = [(key, pred[key], gt[key]) for key in sorted(gt) if key in pred]
    result.missing = [(key, gt[key]) for key in sorted(set(gt) - set(pred))]
    result.extra = [(key, pred[key]) for key in sorted(set(pred) - set(gt))]
    return result


def pair_files(pred_dir: Path, gt_dir: Path) -> Pairing:
    """Pair the image files of two flat folders by stem (``0001.png`` <-> ``0001.jpg``)."""
    problems: list[str] = []
    return pair_by_key(
        index_by_stem(pred_dir, problems=problems),
        index_by_stem(gt_dir, problems=problems),
        problems,
    )


def pair_nested(pred_dir: Path, gt_dir: Path) -> Pairing:
    """Pair ``<dir>/<group>/<file>`` trees by ``group/stem`` (co-segmentation classes).

    A whole group missing on the prediction side is reported once per file, so the counts
    stay per image.
    """
    problems: list[str] = []
    pred: dict[str, Path] = {}
    gt: dict[str, Path] = {}
    for side, root in ((pred, pred_dir), (gt, gt_dir)):
        for group, sub in index_subfolders(root).items():
            for stem, path in index_by_stem(sub, problems=problems).items():
                side[f"{group}/{stem}"] = path
    return pair_by_key(pred, gt, problems)
