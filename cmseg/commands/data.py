"""``cmseg data synth`` (write the built-in benchmark) and ``cmseg data check`` (validate a dataset)."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path
from typing import Any

from cmseg.errors import ConfigError

log = logging.getLogger(__name__)


def parse_options(items: list[str] | None) -> dict[str, Any]:
    """``["noise_sigma=0.1", "aux=thermal"]`` -> ``{"noise_sigma": 0.1, "aux": "thermal"}`` (YAML scalars)."""
    import yaml

    options: dict[str, Any] = {}  # the writer checks names and types
    for item in items or []:
        key, sep, text = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"option {item!r} is not of the form key=value")
        try:
            options[key.strip()] = yaml.safe_load(text) if text.strip() else ""
        except yaml.YAMLError:
            raise ConfigError(f"option {key}: cannot parse value {text!r}") from None
    return options


def run_synth(args: argparse.Namespace) -> int:
    from cmseg.data.synthetic import write_synthetic

    summary = write_synthetic(
        args.task,
        Path(args.out),
        args.n,
        args.size,
        args.seed,
        overwrite=args.overwrite,
        **parse_options(args.option),
    )
    print(f"wrote synthetic {args.task} data to {args.out} in {summary['seconds']:.1f} s")
    sets = summary.get("sets") or summary.get("splits") or {}
    for name, counts in sets.items() if isinstance(sets, dict) else ():
        detail = (
            ", ".join(f"{k} {v}" for k, v in counts.items())
            if isinstance(counts, dict)
            else f"{counts} items"
        )
        print(f"  {name}: {detail}")
    return 0


def run_check(args: argparse.Namespace) -> int:
    from cmseg.data.check import run_check as check

    return check(args.task, args.root, workers=args.workers)
