"""The tasks of cmseg and :data:`TASKS`, the one table keyed by task name.

Each task is one folder, ``cmseg/tasks/<name>/``, holding everything specific to it except its
network (``cmseg/models/<method>/``), its dataset readers and synthetic writer
(``cmseg/data/``) and its metrics (``cmseg/metrics/``)::

    options.py    the task options (``data.options``), parsed and checked
    process.py    preprocessing and postprocessing shared by validation and prediction
    train.py      ``build_training(cfg) -> TrainingSetup`` for ``cmseg train``
    validate.py   the validator run during training
    predictor.py  the public two-phase predictor (re-exported by :mod:`cmseg.predictors`)
    cli.py        the task part of ``cmseg predict TASK``
    demo.py       the recipe of ``cmseg demo TASK``
    evaluate.py   the evaluation adapter of ``cmseg evaluate TASK``

The commands (``cmseg/commands/``) are task-independent drivers that find a task's parts
through its :class:`~cmseg.tasks.base.Task` record here; every other list of tasks (the CLI's
choices, ``cmseg info``'s status, the evaluation targets) is derived from :data:`TASKS`.
Importing this module is cheap: hooks are imported when a command uses them.

Adding a task: write its folder, then add one line below (docs/architecture.md has the
checklist).
"""

from __future__ import annotations

from typing import Any

from cmseg.tasks.base import COMMANDS, Hook, Task

__all__ = ["TASKS", "Task", "Hook", "COMMANDS", "get_task", "evaluation_targets", "load_evaluation"]


def _hook(module: str, attribute: str) -> Hook:
    return Hook(f"cmseg.tasks.{module}:{attribute}")


#: task name -> its record (README's status table mirrors the hooks present here).
TASKS: dict[str, Task] = {
    "sod": Task(
        name="sod",
        title="RGB-D / RGB-T salient and camouflaged objects (XMSNet)",
        data_layout=(
            "<root>/<set>/{RGB, depth or T, GT}/ (the SPNet / XMSNet releases), or one such set"
        ),
        models=("xmsnet_pvt_v2_b5", "xmsnet_tiny", "early_fusion_tiny", "early_fusion_c2f_tiny"),
        train=_hook("sod.train", "build_training"),
        predict=_hook("sod.cli", "PREDICT"),
        demo=_hook("sod.demo", "RECIPE"),
        evaluations={"sod": _hook("sod.evaluate", "ADAPTER")},
    ),
    "coseg": Task(
        name="coseg",
        title="object co-segmentation of an image group (SSNM)",
        data_layout=(
            "<root>/{image, groundtruth}/<class>/ (SSNM's processed sets), a folder of such "
            "sets, or COCO annotations/instances_*.json"
        ),
        models=("ssnm_vgg16", "ssnm_tiny"),
        train=_hook("coseg.train", "build_training"),
        predict=_hook("coseg.cli", "PREDICT"),
        demo=_hook("coseg.demo", "RECIPE"),
        evaluations={"coseg": _hook("coseg.evaluate", "ADAPTER")},
    ),
    "ris": Task(
        name="ris",
        title="referring image segmentation (CMPC)",
        data_layout=(
            "REFER: <root>/<dataset>/refs(<split_by>).p + instances.json and images "
            "(RefCOCO/+/g, refclef), text_objseg's ReferIt, or JSON lines"
        ),
        models=("cmpc_resnet101", "cmpc_tiny"),
        train=_hook("ris.train", "build_training"),
        predict=_hook("ris.cli", "PREDICT"),
        demo=_hook("ris.demo", "RECIPE"),
        evaluations={"ris": _hook("ris.evaluate", "ADAPTER")},
    ),
    "rvos": Task(
        name="rvos",
        title="referring video object segmentation (SOC / SOC++)",
        data_layout=(
            "Ref-YouTube-VOS <root>/{train, valid}/ + meta_expressions/, MeViS "
            "<split>/{JPEGImages, mask_dict.json, meta_expressions.json}, A2D- or "
            "JHMDB-Sentences"
        ),
        evaluations={
            "rvos": _hook("rvos.evaluate", "ADAPTER"),
            # A2D-/JHMDB-Sentences mAP: a protocol of the field, scored from COCO-format JSON.
            "a2d": _hook("rvos.evaluate_a2d", "ADAPTER"),
        },
    ),
    "fsrvos": Task(
        name="fsrvos",
        title="few-shot referring video object segmentation (CMA)",
        data_layout=(
            "Mini-Ref-YouTube-VOS or Mini-Ref-SAIL-VOS: a Ref-YouTube-VOS layout with the "
            "class folds"
        ),
        evaluations={"fsrvos": _hook("fsrvos.evaluate", "ADAPTER")},
    ),
}


def get_task(name: str) -> Task:
    """The record of task ``name``.

    Raises:
        ConfigError: no such task (the message lists the known ones).
    """
    from cmseg.errors import ConfigError

    try:
        return TASKS[name]
    except KeyError:
        raise ConfigError(f"unknown task {name!r}; choose from {', '.join(TASKS)}") from None


def evaluation_targets() -> dict[str, tuple[Task, Hook]]:
    """Every name ``cmseg evaluate`` accepts -> (the task that owns it, its adapter hook)."""
    return {
        target: (task, hook) for task in TASKS.values() for target, hook in task.evaluations.items()
    }


def load_evaluation(target: str) -> Any:
    """The evaluation adapter of ``target``: a task name, or an extra target of a task's
    evaluation such as ``a2d`` (pass it to :func:`cmseg.engine.evaluate.evaluate_folders`).

    Raises:
        NotBuiltError: a task whose evaluation is not built.
        CmsegError: an unknown target.
    """
    from cmseg.errors import CmsegError

    targets = evaluation_targets()
    if target in targets:
        return targets[target][1].load()
    if target in TASKS:
        return TASKS[target].require("evaluate")  # raises "not built yet"
    raise CmsegError(f"unknown evaluation target {target!r}; choose from {', '.join(targets)}")
