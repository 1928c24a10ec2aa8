"""The ``cmseg`` command line (DESIGN §5): one entry point, six subcommands.

This module only parses arguments and dispatches; each command's work lives in
``cmseg/commands/``. The tasks, their choices and what is built for each come from
:data:`cmseg.tasks.TASKS` (read when the parser is built), and a command that a task has not
built yet answers so from :meth:`cmseg.tasks.base.Task.require`. Heavy libraries (torch, timm,
transformers) are imported inside the commands that need them, so ``cmseg evaluate`` and
``cmseg data`` start quickly.

User errors (:class:`~cmseg.errors.CmsegError`) are printed as one line,
``error: <path>: <reason>``, with exit code 2; ``--debug`` adds the traceback.
"""

from __future__ import annotations

import argparse
import logging
import shlex
import sys
import traceback
from collections.abc import Callable, Sequence

from cmseg import __version__
from cmseg.engine.signals import Interrupted, raise_on_sigterm
from cmseg.errors import CmsegError

log = logging.getLogger(__name__)


def built_commands() -> dict[str, list[str]]:
    """``{command: [tasks that implement it]}``, derived from :data:`cmseg.tasks.TASKS`."""
    from cmseg.tasks import COMMANDS, TASKS

    return {command: [n for n, t in TASKS.items() if t.built(command)] for command in COMMANDS}


# --------------------------------------------------------------------------------------------
# Parser


class _HelpFormatter(argparse.ArgumentDefaultsHelpFormatter, argparse.RawDescriptionHelpFormatter):
    """Show the defaults that say something and keep the hand-made line breaks of descriptions
    and epilogs: no "(default: None)" or "(default: False)", nor a second default where the
    help text already names one."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        text = action.help or ""
        if action.default in (None, False, argparse.SUPPRESS) or "default" in text:
            return text
        return super()._get_help_string(action)


def _layouts(title: str, lines: dict[str, str]) -> str:
    """An epilog listing what a folder holds for each task, wrapped at 100 columns."""
    import textwrap

    width = max((len(name) for name in lines), default=0)
    indent = " " * (width + 4)
    rows = [
        textwrap.fill(f"  {name:<{width}}  {text}", 100, subsequent_indent=indent)
        for name, text in lines.items()
    ]
    return title + "\n" + "\n".join(rows)


def _common_options() -> argparse.ArgumentParser:
    """Options accepted before or after the subcommand (``cmseg -q evaluate`` == ``cmseg evaluate -q``)."""
    common = argparse.ArgumentParser(add_help=False)
    group = common.add_argument_group("output and diagnostics")
    group.add_argument(
        "-q",
        "--quiet",
        action="store_true",
        default=argparse.SUPPRESS,
        help="only warnings and errors; no progress bars",
    )
    group.add_argument(
        "-v", "--verbose", action="store_true", default=argparse.SUPPRESS, help="debug messages"
    )
    group.add_argument(
        "--debug",
        action="store_true",
        default=argparse.SUPPRESS,
        help="show the full traceback of an error instead of one line",
    )
    return common


def build_parser() -> argparse.ArgumentParser:
    """The parser of every command; task choices and ``predict``'s per-task flags come from
    :data:`cmseg.tasks.TASKS` as it is when this is called."""
    common = _common_options()
    parser = argparse.ArgumentParser(
        prog="cmseg",
        description="Cross-modal object segmentation: train, predict and evaluate five tasks "
        "(sod, coseg, ris, rvos, fsrvos).",
        formatter_class=_HelpFormatter,
        parents=[common],
        epilog="Run 'cmseg COMMAND --help' for the options of a command.",
    )
    parser.add_argument("--version", action="version", version=f"cmseg {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    def add(name: str, help_text: str, epilog: str = "") -> argparse.ArgumentParser:
        return sub.add_parser(
            name,
            help=help_text,
            description=help_text,
            epilog=epilog or None,
            parents=[common],
            formatter_class=_HelpFormatter,
        )

    _add_demo(add("demo", "built-in data -> train -> predict -> evaluate -> table"))
    _add_data(
        add("data", "generate the built-in synthetic benchmark or check a dataset on disk"), common
    )
    _add_train(add("train", "train a model from a YAML config (distributed under torchrun)"))
    _add_predict(add("predict", "run a trained model on new inputs and write masks"), common)
    layouts = _layouts("what --pred and --gt hold, per target:", _evaluation_layouts())
    _add_evaluate(
        add(
            "evaluate",
            "score prediction files against ground truth with a task's protocol",
            layouts,
        )
    )
    add("info", "print versions, devices, and the models and configs cmseg knows").set_defaults(
        handler=_run_info
    )
    return parser


def _task_names() -> list[str]:
    from cmseg.tasks import TASKS

    return list(TASKS)


def _data_layouts() -> dict[str, str]:
    from cmseg.tasks import TASKS

    return {name: task.data_layout for name, task in TASKS.items()}


def _evaluation_layouts() -> dict[str, str]:
    from cmseg.tasks import evaluation_targets

    return {target: hook.load().layout for target, (_, hook) in evaluation_targets().items()}


def _add_demo(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "task", nargs="?", default="sod", choices=_task_names(), help="which task to demonstrate"
    )
    p.add_argument(
        "--out",
        default=None,
        help="folder for the data, checkpoints, predictions and results "
        "(default: runs/demo for sod, runs/demo_<task> otherwise)",
    )
    p.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    p.add_argument(
        "--seed", type=int, default=0, help="seed of the data generator and the training"
    )
    p.add_argument(
        "--native-kernels",
        action="store_true",
        help="use the CPU's fastest kernels (AVX-512, AMX) and every core instead of the AVX2 "
        "kernels and 2 threads the demo pins so that every x86-64 machine prints the same table",
    )
    p.set_defaults(handler=_run_demo)


def _add_data(p: argparse.ArgumentParser, common: argparse.ArgumentParser) -> None:
    data_sub = p.add_subparsers(dest="data_command", metavar="ACTION", required=True)
    synth = data_sub.add_parser(
        "synth",
        parents=[common],
        formatter_class=_HelpFormatter,
        help="write the procedural benchmark of a task in its real on-disk format",
        description="Write the procedural benchmark of a task in its real on-disk format.",
        epilog=_layouts("what --out receives, per task (docs/synthetic.md):", _data_layouts()),
    )
    synth.add_argument("task", choices=_task_names(), help="which task's dataset to generate")
    synth.add_argument(
        "--out", required=True, help="output folder (created), written in the task's layout"
    )
    synth.add_argument(
        "--n",
        type=int,
        default=None,
        help="number of samples (scenes, groups, clips...); task default if omitted",
    )
    synth.add_argument("--size", type=int, default=256, help="image side in pixels")
    synth.add_argument(
        "--seed", type=int, default=0, help="random seed; the same seed writes the same files"
    )
    synth.add_argument(
        "-o",
        "--option",
        action="append",
        metavar="KEY=VALUE",
        help="task option (repeatable), e.g. sod: modality=thermal camouflage=0.5 noise=0.1 holes=0.05 "
        "blur=2 shift=4 missing=0.1; see docs/synthetic.md",
    )
    synth.add_argument(
        "--overwrite",
        action="store_true",
        help="write into a non-empty folder (replaces an earlier synthetic run)",
    )
    synth.set_defaults(handler=_run_data_synth)
    check = data_sub.add_parser(
        "check",
        parents=[common],
        formatter_class=_HelpFormatter,
        help="validate a dataset on disk and list every problem",
        description="Validate a dataset on disk and list every problem at once.",
        epilog=_layouts("what --root holds, per task (docs/datasets.md):", _data_layouts()),
    )
    check.add_argument("task", choices=_task_names(), help="which task's layout to expect")
    check.add_argument(
        "--root", required=True, help="the dataset's root folder, in the task's layout (below)"
    )
    check.add_argument(
        "--workers", type=int, default=None, help="threads reading files (default: all cores)"
    )
    check.set_defaults(handler=_run_data_check)


def _add_train(p: argparse.ArgumentParser) -> None:
    p.add_argument("config", help="YAML config file (see configs/)")
    p.add_argument(
        "overrides",
        nargs="*",
        metavar="key=value",
        help="config overrides with dotted keys, e.g. optim.lr=1e-4 train.max_steps=500",
    )
    p.add_argument(
        "--resume",
        default=None,
        metavar="PATH",
        help="resume from this checkpoint folder (model, optimizer, scheduler, RNG, data position)",
    )
    p.set_defaults(handler=_run_train)


def _add_predict(p: argparse.ArgumentParser, common: argparse.ArgumentParser) -> None:
    """One sub-command per task: the flags every task shares plus the task's own (its
    :class:`~cmseg.engine.prediction.PredictCommand`); a task without a predictor takes any
    flags and answers "not built yet"."""
    from cmseg.tasks import TASKS

    tasks = p.add_subparsers(
        dest="task", metavar="TASK", required=True,
        help="the task the checkpoint solves; 'cmseg predict TASK --help' lists its flags",
    )  # fmt: skip
    for name, task in TASKS.items():
        if not task.built("predict"):
            sub = tasks.add_parser(name, help=f"{task.title} (not built yet)", parents=[common])
            # any flags: the handler answers "not built yet" (main() lets them through)
            sub.set_defaults(handler=_run_predict, accepts_any_flags=True)
            continue
        command = task.require("predict")
        sub = tasks.add_parser(
            name, help=command.help, description=f"{task.title}: {command.help}.",
            parents=[common], formatter_class=_HelpFormatter,
        )  # fmt: skip
        _add_common_predict_arguments(sub, command.batch_unit)
        command.add_arguments(sub)
        sub.set_defaults(handler=_run_predict)


def _add_common_predict_arguments(parser: argparse.ArgumentParser, batch_unit: str) -> None:
    """The flags of every ``cmseg predict TASK``."""
    parser.add_argument(
        "--checkpoint", required=True, help="checkpoint folder or .safetensors file"
    )
    parser.add_argument("--out", required=True, help="output folder (created)")
    parser.add_argument("--batch-size", type=int, default=8, help=f"{batch_unit} per forward pass")
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    parser.add_argument(
        "--skip-existing", action="store_true", help="do not recompute outputs that already exist"
    )


def _protocols_help() -> str:
    """``sod: pysodmetrics | spnet; ...`` from the evaluation adapters (torch-free)."""
    from cmseg.tasks import evaluation_targets

    listed = "; ".join(
        f"{target}: {' | '.join(hook.load().protocols)}"
        for target, (_, hook) in evaluation_targets().items()
    )
    return (
        f"{listed} (default: the first; for indexed masks davis, for expression folders ytvos "
        "(rvos) or cma (fsrvos), for a MeViS split folder mevis)"
    )


def _add_evaluate(p: argparse.ArgumentParser) -> None:
    from cmseg.tasks import evaluation_targets

    p.add_argument(
        "task",
        choices=list(evaluation_targets()),
        metavar="TARGET",
        help="a task, or another protocol family its evaluation offers (a2d: A2D/JHMDB-Sentences "
        "mAP); one of: %(choices)s",
    )
    p.add_argument(
        "--pred",
        action="append",
        required=True,
        metavar="[NAME=]DIR",
        help="prediction folder in the target's layout (below); repeat as NAME=DIR to compare "
        "several methods in one table",
    )
    p.add_argument(
        "--gt",
        required=True,
        metavar="DIR",
        help="ground truth in the target's layout (below; rvos mevis: also a MeViS split folder "
        "holding mask_dict.json and meta_expressions.json)",
    )
    p.add_argument(
        "--protocol",
        default=None,
        help=_protocols_help(),
    )
    p.add_argument(
        "--out", default=None, metavar="FILE", help="write the results as JSON (atomically)"
    )
    p.add_argument(
        "--workers", type=int, default=None, help="worker processes (default: all cores)"
    )
    p.add_argument("--csv", default=None, metavar="FILE", help="also write the table as CSV")
    p.add_argument(
        "--markdown", default=None, metavar="FILE", help="also write the table as Markdown"
    )
    p.add_argument(
        "--plots", default=None, metavar="DIR", help="write curve plots (PNG) into this folder"
    )
    p.add_argument(
        "--threshold",
        type=float,
        default=None,
        help="coseg: fixed binarisation threshold in [0, 1] instead of SSNM's per-image min(mean + std, 0.8)",
    )
    p.add_argument(
        "--bound-th",
        type=float,
        default=None,
        help="rvos / fsrvos: boundary tolerance as a fraction of the diagonal (< 1) or in pixels (>= 1); "
        "default 0.008 (rvos, DAVIS) and 0.010 (fsrvos, CMA)",
    )
    p.add_argument(
        "--short-side",
        type=int,
        default=None,
        metavar="N",
        help="fsrvos, cma protocol: score frames and GT at short side N (default 360, CMA's "
        "resolution; 0: the native resolution)",
    )
    p.add_argument(
        "--allow-missing",
        action="store_true",
        help="accept the result despite missing, extra, unreadable or mismatched files "
        "(listed either way; video frames among them are scored as empty masks)",
    )
    p.set_defaults(handler=_run_evaluate)


# --------------------------------------------------------------------------------------------
# Handlers (thin: they import the module that does the work)


def _run_demo(args: argparse.Namespace) -> int:
    from cmseg.commands.demo import run_demo

    return run_demo(args)


def _run_data_synth(args: argparse.Namespace) -> int:
    from cmseg.commands.data import run_synth

    return run_synth(args)


def _run_data_check(args: argparse.Namespace) -> int:
    from cmseg.commands.data import run_check

    return run_check(args)


def _run_train(args: argparse.Namespace) -> int:
    from cmseg.config import RunConfig, load_config

    cfg = load_config(RunConfig, args.config, args.overrides)  # validates before anything runs
    from cmseg.commands.train import run_train
    from cmseg.engine.signals import Interrupted

    try:
        return run_train(cfg, resume=args.resume)
    except Interrupted as stop:
        if stop.checkpoint is not None:
            again = [
                "cmseg",
                "train",
                args.config,
                *args.overrides,
                "--resume",
                str(stop.checkpoint),
            ]
            stop.hint = f"a resumable checkpoint is in {stop.checkpoint}; continue with: {shlex.join(again)}"
        raise


def _run_predict(args: argparse.Namespace) -> int:
    from cmseg.commands.predict import run_predict

    return run_predict(args)


def _run_evaluate(args: argparse.Namespace) -> int:
    from cmseg.commands.evaluate import run_evaluate

    return run_evaluate(args)


def _run_info(args: argparse.Namespace) -> int:
    from cmseg.commands.info import run_info

    return run_info()


# --------------------------------------------------------------------------------------------
# Entry point


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; returns the process exit code (0 ok, 1 a bug, 2 bad input, a refusal of the
    filesystem or not built, 130 interrupted)."""
    from cmseg.logs import setup_logging

    parser = build_parser()
    args, unknown = parser.parse_known_args(argv)
    if unknown and not getattr(args, "accepts_any_flags", False):
        parser.error(f"unrecognized arguments: {' '.join(unknown)}")
    verbose, quiet, debug = (getattr(args, k, False) for k in ("verbose", "quiet", "debug"))
    setup_logging(1 if verbose else -1 if quiet else 0)
    handler: Callable[[argparse.Namespace], int] = args.handler
    try:
        with raise_on_sigterm():  # SIGTERM unwinds like Ctrl-C: clean-up code runs
            return handler(args)
    except Interrupted as stop:
        hint = getattr(stop, "hint", "")
        print(f"error: {stop}" + (f"; {hint}" if hint else ""), file=sys.stderr)
        return stop.exit_code
    except CmsegError as err:
        if debug:
            traceback.print_exc()
        print(f"error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("error: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # e.g. `cmseg info | head -1`
        return 0
    except OSError as err:  # a refusal of the filesystem that no reader or writer named
        message = _filesystem_message(err)
        if message is None:
            return _internal_error(err, debug)
        if debug:
            traceback.print_exc()
        print(f"error: {message}", file=sys.stderr)
        return 2
    except Exception as err:  # a bug in cmseg: keep it short unless asked
        return _internal_error(err, debug)


def _filesystem_message(err: OSError) -> str | None:
    """``<path>: <reason>`` (permission denied, not a folder, no space...), or the reason
    alone when the error names no file (a full disk seen by ``write``); None when the error is
    not the filesystem's refusal."""
    from cmseg.fs import filesystem_error, filesystem_reason

    converted = filesystem_error(err)
    return str(converted) if converted is not None else filesystem_reason(err)


def _internal_error(err: BaseException, debug: bool) -> int:
    """A bug in cmseg: one line, the traceback with ``--debug``."""
    if debug:
        raise err
    first = str(err).strip().splitlines()
    print(
        f"error: internal error: {type(err).__name__}: {first[0] if first else ''} "
        "(run again with --debug for the traceback)",
        file=sys.stderr,
    )
    return 1


if __name__ == "__main__":
    sys.exit(main())
