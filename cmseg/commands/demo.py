"""``cmseg demo TASK``: built-in data -> train -> predict -> evaluate -> one table.

Task-independent: the task's :class:`~cmseg.engine.demo.DemoRecipe` (``cmseg/tasks/<task>/
demo.py``) says what data, which methods and which table; :func:`cmseg.engine.demo.run_recipe`
runs the loop every demo shares with the task's training hook.
"""

from __future__ import annotations

import argparse
from typing import Any

__all__ = ["run_demo"]


def run_demo(args: argparse.Namespace) -> int:
    """Run ``cmseg demo``; returns the exit code.

    Raises:
        NotBuiltError: the task has no demo (or no training) yet.
    """
    from cmseg.engine.demo import run_recipe
    from cmseg.tasks import get_task

    task = get_task(args.task)
    recipe = task.require("demo")
    if not task.built("train"):
        task.require("train")  # says that it is not built
    # The training hook imports torch: loaded only when the first method trains, after
    # run_recipe has pinned the CPU kernels (which must happen before torch is imported).

    def build_training(cfg: Any) -> Any:
        return task.require("train")(cfg)

    return run_recipe(recipe, build_training, args)
