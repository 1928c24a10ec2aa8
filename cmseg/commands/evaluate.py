"""``cmseg evaluate TASK --pred [NAME=]DIR ... --gt DIR``: score, print a table, write reports."""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path
from typing import Any

from cmseg.engine.eval_tasks import ADAPTERS
from cmseg.engine.evaluate import MethodReport, evaluate_folders
from cmseg.engine.reports import format_csv, format_markdown, format_text, table_rows
from cmseg.errors import CmsegError
from cmseg.io import write_json, write_text

log = logging.getLogger(__name__)

#: At most this many problems are printed; the rest are counted.
MAX_LISTED_PROBLEMS = 50


def parse_pred_args(values: list[str]) -> list[tuple[str, Path]]:
    """``["a=runs/a", "runs/b"]`` -> ``[("a", runs/a), ("b", runs/b)]``.

    ``NAME=DIR`` names a method; a bare ``DIR`` is named after its last component. A value
    that is itself an existing path is never split, so folders whose names contain ``=`` work.
    """
    methods: list[tuple[str, Path]] = []
    for value in values:
        name, sep, folder = value.partition("=")
        if sep and name and not Path(value).exists() and "/" not in name:
            methods.append((name, Path(folder)))
        else:
            path = Path(value)
            methods.append((path.resolve().name or value, path))
    names = [n for n, _ in methods]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise CmsegError(f"--pred: method name(s) used twice: {', '.join(duplicates)}; name them with NAME=DIR")
    return methods


def _options(args: argparse.Namespace) -> dict[str, Any]:
    options: dict[str, Any] = {}
    if args.threshold is not None:
        if args.task != "coseg":
            raise CmsegError("--threshold applies to the coseg task only")
        options["threshold"] = args.threshold
    if args.bound_th is not None:
        if args.task not in ("rvos", "fsrvos"):
            raise CmsegError("--bound-th applies to the rvos and fsrvos tasks only")
        options["bound_th"] = args.bound_th
    return options


def _report_problems(report: MethodReport, allow_missing: bool) -> None:
    problems = report.problems()
    if not problems:
        return
    counts = f"{len(report.missing)} missing, {len(report.extra)} extra, {len(report.unreadable)} unreadable, {len(report.other)} other"
    if allow_missing:
        log.warning("%s: scored %d items; skipped problems: %s", report.name, report.num_scored, counts)
        for line in problems[:MAX_LISTED_PROBLEMS]:
            log.info("  %s", line)
        return
    for line in problems[:MAX_LISTED_PROBLEMS]:
        print(f"error: {line}", file=sys.stderr)
    if len(problems) > MAX_LISTED_PROBLEMS:
        print(f"error: ... and {len(problems) - MAX_LISTED_PROBLEMS} more", file=sys.stderr)
    raise CmsegError(f"{report.name}: {counts}; fix them or pass --allow-missing to score what exists")


def _result_json(report: MethodReport) -> dict[str, Any]:
    result = dict(report.result)
    if report.problems():
        result["problems"] = {"missing": report.missing, "extra": report.extra, "unreadable": report.unreadable, "other": report.other}
    return result


def run_evaluate(args: argparse.Namespace) -> int:
    methods = parse_pred_args(args.pred)
    options = _options(args)
    reports: list[MethodReport] = []
    for name, folder in methods:
        report = evaluate_folders(
            args.task, folder, args.gt, protocol=args.protocol, workers=args.workers,
            allow_missing=args.allow_missing, name=name, options=options,
        )
        _report_problems(report, args.allow_missing)
        reports.append(report)

    protocol = reports[0].result["protocol"]
    layout = ADAPTERS[args.task].table_layout(protocol)
    results = {r.name: r.result for r in reports}
    header, rows = table_rows(layout, results)
    print(f"{args.task} ({protocol} protocol)")
    print(format_text(header, rows))

    if args.out:
        if len(reports) == 1:
            payload = _result_json(reports[0])
        else:
            payload = {"task": args.task, "protocol": protocol, "methods": {r.name: _result_json(r) for r in reports}}
        write_json(args.out, payload)
        log.info("wrote %s", args.out)
    if args.csv:
        write_text(args.csv, format_csv(*table_rows(layout, results, all_columns=True)))
    if args.markdown:
        write_text(args.markdown, format_markdown(header, rows))
    if args.plots:
        _plots(args.task, protocol, reports, Path(args.plots))
    return 0


def _plots(task: str, protocol: str, reports: list[MethodReport], out_dir: Path) -> None:
    if task != "sod" or protocol != "pysodmetrics":
        log.warning("--plots: curves exist for the sod task with the pysodmetrics protocol only; nothing plotted")
        return
    from cmseg.viz import plot_sod_curves

    for path in plot_sod_curves({r.name: r.result["curves"] for r in reports}, out_dir):
        log.info("wrote %s", path)
