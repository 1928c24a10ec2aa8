"""``cmseg evaluate TARGET --pred [NAME=]DIR ... --gt DIR``: score, print a table, write reports.

Task-independent: the target (a task, or ``a2d``) names an evaluation adapter in
:data:`cmseg.tasks.TASKS`, which says how files pair up, how they are scored, which columns the
table shows first and which plots exist.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path
from typing import Any

from cmseg.engine.eval_adapter import EvalAdapter
from cmseg.engine.evaluate import MethodReport, evaluate_folders
from cmseg.engine.reports import format_csv, format_markdown, format_text, table_rows
from cmseg.errors import CmsegError
from cmseg.fs import check_output_dir, check_output_file
from cmseg.io import write_json, write_text
from cmseg.tasks import evaluation_targets, load_evaluation

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
        raise CmsegError(
            f"--pred: method name(s) used twice: {', '.join(duplicates)}; name them with NAME=DIR"
        )
    return methods


#: Command-line flags that set a protocol option: flag -> option name.
OPTION_FLAGS = {"--threshold": "threshold", "--bound-th": "bound_th", "--short-side": "short_side"}


def _options(args: argparse.Namespace, adapter: EvalAdapter) -> dict[str, Any]:
    """The protocol options set by flags; a flag the target does not take is refused with the
    targets that take it."""
    options: dict[str, Any] = {}
    for flag, option in OPTION_FLAGS.items():
        value = getattr(args, option)
        if value is None:
            continue
        if option not in adapter.options:
            takers = [
                t for t, (_, hook) in evaluation_targets().items() if option in hook.load().options
            ]
            which = " and ".join(takers) or "no"
            raise CmsegError(
                f"{flag} applies to the {which} task{'s' if len(takers) > 1 else ''} only"
            )
        options[option] = value
    return options


def _report_problems(report: MethodReport, allow_missing: bool) -> None:
    problems = report.problems()
    if not problems:
        return
    counts = report.counts()
    if allow_missing:
        log.warning(
            "%s: scored %d items despite problems: %s", report.name, report.num_scored, counts
        )
        for line in problems[:MAX_LISTED_PROBLEMS]:
            log.info("  %s", line)
        return
    for line in problems[:MAX_LISTED_PROBLEMS]:
        print(f"error: {line}", file=sys.stderr)
    if len(problems) > MAX_LISTED_PROBLEMS:
        print(f"error: ... and {len(problems) - MAX_LISTED_PROBLEMS} more", file=sys.stderr)
    raise CmsegError(
        f"{report.name}: {counts}; fix them or pass --allow-missing to score what exists"
    )


def _result_json(report: MethodReport) -> dict[str, Any]:
    result = dict(report.result)
    if report.problems():
        result["problems"] = {
            "missing": report.missing,
            "extra": report.extra,
            "unreadable": report.unreadable,
            "other": report.other,
        }
    return result


def _check_outputs(args: argparse.Namespace) -> None:
    """Refuse, before any scoring, a report that could not be written (a file on the way, a
    folder without write permission, a read-only or full file system)."""
    for path in (args.out, args.csv, args.markdown):
        if path:
            check_output_file(path)
    if args.plots:
        check_output_dir(args.plots)


def run_evaluate(args: argparse.Namespace) -> int:
    methods = parse_pred_args(args.pred)
    adapter = load_evaluation(args.task)
    options = _options(args, adapter)
    _check_outputs(args)
    reports: list[MethodReport] = []
    for name, folder in methods:
        report = evaluate_folders(
            adapter,
            folder,
            args.gt,
            protocol=args.protocol,
            workers=args.workers,
            allow_missing=args.allow_missing,
            name=name,
            options=options,
        )
        _report_problems(report, args.allow_missing)
        reports.append(report)

    protocol = reports[0].result["protocol"]
    columns = adapter.columns_for(protocol)
    results = {r.name: r.result for r in reports}
    header, rows = table_rows(columns, results)
    print(f"{args.task} ({protocol} protocol)")
    print(format_text(header, rows))

    if args.out:
        if len(reports) == 1:
            payload = _result_json(reports[0])
        else:
            payload = {
                "task": args.task,
                "protocol": protocol,
                "methods": {r.name: _result_json(r) for r in reports},
            }
        write_json(args.out, payload)
        log.info("wrote %s", args.out)
    if args.csv:
        write_text(args.csv, format_csv(*table_rows(columns, results, all_columns=True)))
    if args.markdown:
        write_text(args.markdown, format_markdown(header, rows))
    if args.plots:
        written = adapter.plot(results, protocol, Path(args.plots))
        if not written:
            log.warning(
                "--plots: %s (%s protocol) has no curves to plot; nothing plotted",
                args.task,
                protocol,
            )
        for path in written:
            log.info("wrote %s", path)
    return 0
