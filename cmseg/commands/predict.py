"""``cmseg predict TASK --checkpoint CKPT ... --out DIR``.

Task-independent: the task's :class:`~cmseg.engine.prediction.PredictCommand` (``cmseg/tasks/
<task>/cli.py``) adds its flags and collects, predicts and writes its items;
:func:`cmseg.engine.prediction.run_prediction` does what every task shares (output checks,
``--skip-existing``, progress, atomic writes, the list of failures).
"""

from __future__ import annotations

import argparse

__all__ = ["run_predict"]


def run_predict(args: argparse.Namespace) -> int:
    """Run ``cmseg predict``; returns the exit code.

    Raises:
        NotBuiltError: the task has no predictor yet.
    """
    from cmseg.engine.prediction import run_prediction
    from cmseg.tasks import get_task

    return run_prediction(get_task(args.task).require("predict"), args)
