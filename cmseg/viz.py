"""Pictures for reports: precision-recall and metric-over-threshold curves, mask overlays.

matplotlib is imported inside the functions (with the non-interactive Agg backend) so that
importing cmseg stays cheap; figures are written atomically.
"""

from __future__ import annotations

import io
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from cmseg.io import atomic_open

#: Colour of :func:`overlay_mask` (RGB).
OVERLAY_COLOUR = (255, 48, 48)


def _save(fig, path: Path) -> Path:  # noqa: ANN001 - matplotlib Figure
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=150, bbox_inches="tight")
    with atomic_open(path, "wb") as handle:
        handle.write(buffer.getvalue())
    return path


def plot_sod_curves(
    curves: Mapping[str, Mapping[str, Sequence[float]]], out_dir: str | Path
) -> list[Path]:
    """Write ``pr_curve.png`` and ``fmeasure_curve.png``, one line per method.

    Args:
        curves: ``{method: {"precision", "recall", "fm", "thresholds", ...}}``; every list has
            the same length (256) and follows the order of ``thresholds``.
        out_dir: folder to write into (created).

    Returns:
        The paths written.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out_dir = Path(out_dir)
    written = []

    fig, ax = plt.subplots(figsize=(5, 4.5))
    for name, c in curves.items():
        ax.plot(c["recall"], c["precision"], label=name, linewidth=1.5)
    ax.set(
        xlabel="recall",
        ylabel="precision",
        xlim=(0, 1),
        ylim=(0, 1.02),
        title="Precision-recall (256 thresholds)",
    )
    ax.grid(alpha=0.3)
    ax.legend(loc="lower left", fontsize="small")
    written.append(_save(fig, out_dir / "pr_curve.png"))
    plt.close(fig)

    fig, ax = plt.subplots(figsize=(5, 4.5))
    for name, c in curves.items():
        ax.plot(c["thresholds"], c["fm"], label=name, linewidth=1.5)
    ax.set(
        xlabel="threshold",
        ylabel="F-measure (beta^2 = 0.3)",
        xlim=(0, 1),
        ylim=(0, 1.02),
        title="F-measure over thresholds",
    )
    ax.grid(alpha=0.3)
    ax.legend(loc="lower left", fontsize="small")
    written.append(_save(fig, out_dir / "fmeasure_curve.png"))
    plt.close(fig)
    return written


def overlay_mask(
    image: np.ndarray,
    mask: np.ndarray,
    *,
    colour: tuple[int, int, int] = OVERLAY_COLOUR,
    alpha: float = 0.5,
) -> np.ndarray:
    """``image`` with ``mask`` tinted in ``colour`` and outlined (for a quick visual check).

    Args:
        image: ``uint8 (H, W, 3)`` RGB (grey ``(H, W)`` is repeated to 3 channels).
        mask: ``(H, W)`` boolean (or 0/1, 0/255) mask, the image's size.
        colour: RGB of the tint and the 2-px outline.
        alpha: opacity of the tint in [0, 1].

    Returns:
        ``uint8 (H, W, 3)`` RGB.
    """
    import cv2

    rgb = np.asarray(image)
    if rgb.ndim == 2:
        rgb = np.repeat(rgb[..., None], 3, axis=2)
    on = np.asarray(mask) > 0
    if rgb.shape[:2] != on.shape:
        raise ValueError(f"mask {on.shape} and image {rgb.shape[:2]} differ in size")
    out = rgb.astype(np.float32)
    tint = np.asarray(colour, dtype=np.float32)
    out[on] = (1 - alpha) * out[on] + alpha * tint
    out = np.clip(np.round(out), 0, 255).astype(np.uint8)
    contours, _ = cv2.findContours(on.astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
    cv2.drawContours(out, contours, -1, tuple(int(c) for c in colour), 2)
    return out
