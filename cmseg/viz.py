"""Plots for reports: precision-recall and metric-over-threshold curves.

matplotlib is imported inside the functions (with the non-interactive Agg backend) so that
importing cmseg stays cheap; figures are written atomically.
"""

from __future__ import annotations

import io
from collections.abc import Mapping, Sequence
from pathlib import Path

from cmseg.io import atomic_open


def _save(fig, path: Path) -> Path:  # noqa: ANN001 - matplotlib Figure
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=150, bbox_inches="tight")
    with atomic_open(path, "wb") as handle:
        handle.write(buffer.getvalue())
    return path


def plot_sod_curves(curves: Mapping[str, Mapping[str, Sequence[float]]], out_dir: str | Path) -> list[Path]:
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
    ax.set(xlabel="recall", ylabel="precision", xlim=(0, 1), ylim=(0, 1.02), title="Precision-recall (256 thresholds)")
    ax.grid(alpha=0.3)
    ax.legend(loc="lower left", fontsize="small")
    written.append(_save(fig, out_dir / "pr_curve.png"))
    plt.close(fig)

    fig, ax = plt.subplots(figsize=(5, 4.5))
    for name, c in curves.items():
        ax.plot(c["thresholds"], c["fm"], label=name, linewidth=1.5)
    ax.set(xlabel="threshold", ylabel="F-measure (beta^2 = 0.3)", xlim=(0, 1), ylim=(0, 1.02), title="F-measure over thresholds")
    ax.grid(alpha=0.3)
    ax.legend(loc="lower left", fontsize="small")
    written.append(_save(fig, out_dir / "fmeasure_curve.png"))
    plt.close(fig)
    return written
