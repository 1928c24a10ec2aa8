"""Tables of evaluation results: terminal text, CSV and Markdown.

A result is a nested ``metrics`` dict (``{"em": {"adp": ..}, "sm": ..}``); tables flatten it to
dotted column names (``em.adp``) and show the columns each task names first.
"""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Mapping, Sequence
from typing import Any

#: Columns shown first per task (short labels for the terminal); the rest follow in CSV.
TABLE_COLUMNS: dict[str, list[tuple[str, str]]] = {
    "sod": [("mae", "MAE"), ("sm", "S"), ("wfm", "wF"), ("em.adp", "adpE"), ("em.mean", "meanE"),
            ("em.max", "maxE"), ("fm.adp", "adpF"), ("fm.mean", "meanF"), ("fm.max", "maxF"),
            ("iou.mean", "meanIoU"), ("dice.mean", "meanDice")],
    "sod:spnet": [("mae", "MAE"), ("sm", "S"), ("maxf", "maxF"), ("maxe", "maxE")],
    "coseg": [("P", "P"), ("J", "J"), ("P_classes", "P(cls)"), ("J_classes", "J(cls)")],
    "ris": [("oIoU", "oIoU"), ("mIoU", "mIoU"), ("prec@0.5", "P@0.5"), ("prec@0.6", "P@0.6"),
            ("prec@0.7", "P@0.7"), ("prec@0.8", "P@0.8"), ("prec@0.9", "P@0.9")],
    "vos": [("J&F", "J&F"), ("J.mean", "J-M"), ("J.recall", "J-R"), ("J.decay", "J-D"),
            ("F.mean", "F-M"), ("F.recall", "F-R"), ("F.decay", "F-D")],
    "a2d": [("mAP", "mAP"), ("AP50", "AP50"), ("AP75", "AP75"), ("AP_S", "AP_S"), ("AP_M", "AP_M"),
            ("AP_L", "AP_L"), ("oIoU", "oIoU"), ("mIoU", "mIoU"), ("P@0.5", "P@0.5"), ("P@0.9", "P@0.9")],
}


def flatten(metrics: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """``{"em": {"adp": 1}}`` -> ``{"em.adp": 1}``; lists (curves) are left out."""
    flat: dict[str, Any] = {}
    for key, value in metrics.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            flat.update(flatten(value, name + "."))
        elif not isinstance(value, (list, tuple)):
            flat[name] = value
    return flat


def _cell(value: Any, digits: int) -> str:
    if isinstance(value, float):
        return "nan" if math.isnan(value) else f"{value:.{digits}f}"
    return "" if value is None else str(value)


def table_rows(
    layout: str, results: Mapping[str, Mapping[str, Any]], *, all_columns: bool = False
) -> tuple[list[str], list[list[Any]]]:
    """Header and rows (one per method) for ``results = {method: {"num_items", "metrics"}}``."""
    flats = {name: flatten(res["metrics"]) for name, res in results.items()}
    columns = [(key, label) for key, label in TABLE_COLUMNS.get(layout, []) if any(key in f for f in flats.values())]
    if all_columns or not columns:
        known = {key for key, _ in columns}
        for flat in flats.values():
            for key in flat:
                if key not in known:
                    columns.append((key, key))
                    known.add(key)
    header = ["method", "n"] + [label for _, label in columns]
    rows = [[name, results[name].get("num_items", "")] + [flats[name].get(key) for key, _ in columns] for name in results]
    return header, rows


def format_text(header: Sequence[str], rows: Sequence[Sequence[Any]], digits: int = 4) -> str:
    """Aligned plain-text table for the terminal."""
    cells = [list(header)] + [[_cell(v, digits) for v in row] for row in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(header))]
    lines = ["  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths, strict=True))) for r in cells]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def format_markdown(header: Sequence[str], rows: Sequence[Sequence[Any]], digits: int = 4) -> str:
    """GitHub-flavoured Markdown table."""
    out = ["| " + " | ".join(header) + " |", "|" + "|".join("---" if i == 0 else "---:" for i in range(len(header))) + "|"]
    out += ["| " + " | ".join(_cell(v, digits) for v in row) + " |" for row in rows]
    return "\n".join(out) + "\n"


def format_csv(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """CSV with full float precision (repr), for spreadsheets and scripts."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(header)
    for row in rows:
        writer.writerow(["" if v is None else v for v in row])
    return buffer.getvalue()
