"""The Task record and its lazy hooks."""

from __future__ import annotations

import pytest

from cmseg.errors import NotBuiltError
from cmseg.tasks import TASKS, load_evaluation
from cmseg.tasks.base import Hook, Task


def test_a_hook_names_a_module_attribute_and_loads_it():
    assert Hook("cmseg.tasks:TASKS").load() is TASKS
    for bad in ("cmseg.tasks", ":TASKS", "cmseg.tasks:"):
        with pytest.raises(ValueError, match="package.module:attribute"):
            Hook(bad)


def test_missing_hooks_say_not_built_yet_naming_command_and_task():
    task = Task(name="new", title="a new task")
    for command in ("train", "predict", "demo", "evaluate"):
        assert not task.built(command)
        with pytest.raises(
            NotBuiltError, match=f"'cmseg {command}' is not built yet for task 'new'"
        ):
            task.require(command)
    with pytest.raises(ValueError, match="unknown command"):
        task.built("fly")


def test_the_record_is_frozen_and_its_evaluations_too():
    with pytest.raises(AttributeError):
        TASKS["sod"].name = "x"  # type: ignore[misc]
    with pytest.raises(TypeError):
        TASKS["sod"].evaluations["x"] = Hook("a:b")  # type: ignore[index]


def test_evaluation_targets_and_unknown_ones():
    assert load_evaluation("a2d").name == "a2d"
    assert load_evaluation("fsrvos").name == "fsrvos"
    with pytest.raises(Exception, match="unknown evaluation target 'nope'"):
        load_evaluation("nope")
