"""The :class:`Task` record: what cmseg knows about one task, and where its parts live.

A task is a frozen record of plain data and *hooks*. A hook is a :class:`Hook`, the dotted
path of a module attribute (``"cmseg.tasks.sod.train:build_training"``) that is imported only
when it is used, so that reading the table of tasks (``cmseg evaluate``, ``cmseg data``,
``cmseg --help``) never imports torch. A task without a hook for a command answers "not built
yet" from one place, :meth:`Task.require`.

The hooks and what they point at:

==============  ===========================================================================
hook            the attribute it names
==============  ===========================================================================
``train``       ``build_training(cfg: RunConfig) -> TrainingSetup`` (what ``cmseg train`` and
                the demo hand to :class:`~cmseg.engine.trainer.Trainer`)
``predict``     a :class:`~cmseg.commands.predict.PredictCommand`: the flags of ``cmseg predict
                TASK``, how it collects inputs, runs the predictor and what it writes
``demo``        a :class:`~cmseg.engine.demo.DemoRecipe`: the data, the methods and the table
                of ``cmseg demo TASK``
``evaluations``  ``{name: Hook}`` of evaluation adapters
                (:class:`~cmseg.engine.evaluate.EvalAdapter`); the task's own name is its main
                evaluation, other names are extra targets of ``cmseg evaluate`` (``a2d``)
==============  ===========================================================================

This module is torch-free and imports nothing from the rest of cmseg.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

__all__ = ["Hook", "Task", "COMMANDS"]

#: The commands a task can implement, in the order ``cmseg info`` lists them.
COMMANDS = ("train", "predict", "demo", "evaluate")


@dataclass(frozen=True)
class Hook:
    """A module attribute named by its dotted path, imported on first :meth:`load`.

    Attributes:
        target: ``"package.module:attribute"``.
    """

    target: str

    def __post_init__(self) -> None:
        module, sep, attribute = self.target.partition(":")
        if not sep or not module or not attribute:
            raise ValueError(f"a hook is 'package.module:attribute', got {self.target!r}")

    def load(self) -> Any:
        """Import the module and return the attribute."""
        module, _, attribute = self.target.partition(":")
        return getattr(importlib.import_module(module), attribute)


def _frozen(mapping: Mapping[str, Hook] | None = None) -> Mapping[str, Hook]:
    return MappingProxyType(dict(mapping or {}))


@dataclass(frozen=True)
class Task:
    """One task of the toolkit.

    Attributes:
        name: the task id used on the command line and in configs (``sod``).
        title: what the task is, in a few words (``cmseg info`` and ``--help``).
        models: the keys of :data:`cmseg.models.MODELS` that ``task: <name>`` accepts; a
            config naming another model is refused when it is loaded.
        data_layout: what a dataset folder of the task holds, in one line (``cmseg data
            --help``; docs/datasets.md has the details).
        train: see the module docstring; None when training is not built yet.
        predict: likewise for ``cmseg predict``.
        demo: likewise for ``cmseg demo``.
        evaluations: ``{target: Hook}`` of evaluation adapters; empty when evaluation is
            not built yet.
    """

    name: str
    title: str
    models: tuple[str, ...] = ()
    data_layout: str = ""
    train: Hook | None = None
    predict: Hook | None = None
    demo: Hook | None = None
    evaluations: Mapping[str, Hook] = field(default_factory=_frozen)

    def __post_init__(self) -> None:
        object.__setattr__(self, "evaluations", _frozen(self.evaluations))

    def built(self, command: str) -> bool:
        """Whether ``command`` (one of :data:`COMMANDS`) is implemented for this task."""
        if command == "evaluate":
            return bool(self.evaluations)
        if command not in COMMANDS:
            raise ValueError(f"unknown command {command!r}; expected one of {', '.join(COMMANDS)}")
        return getattr(self, command) is not None

    def require(self, command: str) -> Any:
        """The loaded hook of ``command``.

        Raises:
            NotBuiltError: the task has no such hook (the one place that says so).
        """
        from cmseg.errors import NotBuiltError

        if not self.built(command):
            raise NotBuiltError(
                f"'cmseg {command}' is not built yet for task '{self.name}' "
                "(see 'cmseg info' or the README's status table)"
            )
        if command == "evaluate":
            return self.evaluations[self.name].load()
        return getattr(self, command).load()
