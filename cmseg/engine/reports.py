"""Tables of evaluation results: terminal text, CSV and Markdown.

A result is a nested ``metrics`` dict (``{"em": {"adp": ..}, "sm": ..}``); tables flatten it to
dotted column names (``em.adp``) and show first the columns that the task's evaluation adapter
names (:meth:`cmseg.engine.eval_adapter.EvalAdapter.columns`).
"""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Mapping, Sequence
from typing import Any


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
    first: Sequence[tuple[str, str]],
    results: Mapping[str, Mapping[str, Any]],
    *,
    all_columns: bool = False,
) -> tuple[list[str], list[list[Any]]]:
    """Header and rows (one per method) for ``results = {method: {"num_items", "metrics"}}``.

    Args:
        first: ``[(flattened key, label)]`` shown first (keys no result has are dropped).
        results: per method, a result of the JSON schema.
        all_columns: also every other metric (CSV), else only ``first`` when any of it exists.
    """
    flats = {name: flatten(res["metrics"]) for name, res in results.items()}
    columns = [(key, label) for key, label in first if any(key in f for f in flats.values())]
    if all_columns or not columns:
        known = {key for key, _ in columns}
        for flat in flats.values():
            for key in flat:
                if key not in known:
                    columns.append((key, key))
                    known.add(key)
    header = ["method", "n"] + [label for _, label in columns]
    rows = [
        [name, results[name].get("num_items", "")] + [flats[name].get(key) for key, _ in columns]
        for name in results
    ]
    return header, rows


def format_text(header: Sequence[str], rows: Sequence[Sequence[Any]], digits: int = 4) -> str:
    """Aligned plain-text table for the terminal."""
    cells = [list(header)] + [[_cell(v, digits) for v in row] for row in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(header))]
    lines = [
        "  ".join(
            c.ljust(w) if i == 0 else c.rjust(w)
            for i, (c, w) in enumerate(zip(r, widths, strict=True))
        )
        for r in cells
    ]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def format_markdown(header: Sequence[str], rows: Sequence[Sequence[Any]], digits: int = 4) -> str:
    """GitHub-flavoured Markdown table."""
    out = [
        "| " + " | ".join(header) + " |",
        "|" + "|".join("---" if i == 0 else "---:" for i in range(len(header))) + "|",
    ]
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
