"""The import rules of docs/architecture.md, checked by reading every module's imports."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "cmseg"

#: layer -> the cmseg packages it must never import (lazily inside a function included).
FORBIDDEN = {
    "engine": ("cmseg.tasks", "cmseg.commands", "cmseg.cli"),
    "models": (
        "cmseg.tasks",
        "cmseg.commands",
        "cmseg.cli",
        "cmseg.engine",
        "cmseg.data",
        "cmseg.metrics",
    ),
    "data": ("cmseg.tasks", "cmseg.commands", "cmseg.cli", "cmseg.engine", "cmseg.models"),
    "metrics": ("cmseg.tasks", "cmseg.commands", "cmseg.cli", "cmseg.engine", "cmseg.models"),
    "tasks": ("cmseg.commands", "cmseg.cli"),
}


def imported_modules(path: Path) -> list[tuple[int, str]]:
    """``(line, module)`` of every import in the file, at any depth; relative imports resolved."""
    package = ".".join(path.relative_to(PACKAGE.parent).with_suffix("").parts[:-1])
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            module = node.module or ""
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                module = ".".join(base + ([module] if module else []))
            found.append((node.lineno, module))
            found += [(node.lineno, f"{module}.{alias.name}") for alias in node.names]
    return found


def _violations(layer: str) -> list[str]:
    bad = []
    for path in sorted((PACKAGE / layer).rglob("*.py")):
        for line, module in imported_modules(path):
            for prefix in FORBIDDEN[layer]:
                if module == prefix or module.startswith(prefix + "."):
                    bad.append(f"{path.relative_to(PACKAGE.parent)}:{line} imports {module}")
    return bad


@pytest.mark.parametrize("layer", sorted(FORBIDDEN))
def test_layers_import_only_downwards(layer):
    assert _violations(layer) == []


def test_the_checker_sees_a_violation(tmp_path, monkeypatch):
    fake = tmp_path / "cmseg" / "data"
    fake.mkdir(parents=True)
    (fake / "bad.py").write_text(
        "def f():\n    from cmseg.tasks import TASKS\n    from ..engine import demo\n"
    )
    monkeypatch.setattr(sys.modules[__name__], "PACKAGE", tmp_path / "cmseg")
    assert len(_violations("data")) == 4  # cmseg.tasks(.TASKS), cmseg.engine(.demo)


def test_no_task_folder_imports_another_but_fsrvos_the_rvos_video_evaluation():
    tasks = [
        p.name for p in (PACKAGE / "tasks").iterdir() if p.is_dir() and p.name != "__pycache__"
    ]
    allowed = {("fsrvos", "cmseg.tasks.rvos.evaluate")}
    bad = []
    for task in tasks:
        for path in (PACKAGE / "tasks" / task).rglob("*.py"):
            for line, module in imported_modules(path):
                for other in tasks:
                    prefix = f"cmseg.tasks.{other}"
                    if other != task and (module == prefix or module.startswith(prefix + ".")):
                        if not any(task == t and module.startswith(m) for t, m in allowed):
                            bad.append(f"{path}:{line} imports {module}")
    assert bad == []


def test_commands_that_run_no_model_stay_free_of_torch():
    code = (
        "import sys\n"
        "import cmseg.cli, cmseg.tasks, cmseg.predictors, cmseg.commands.evaluate, cmseg.commands.data\n"
        "cmseg.cli.build_parser()\n"
        "from cmseg.tasks import evaluation_targets\n"
        "[hook.load() for _, hook in evaluation_targets().values()]\n"
        "heavy = sorted(m for m in ('torch', 'timm', 'transformers') if m in sys.modules)\n"
        "assert not heavy, heavy\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr


def test_the_public_predictors_come_from_one_place():
    from cmseg import predictors
    from cmseg.tasks.coseg.predictor import CosegPredictor
    from cmseg.tasks.ris.predictor import RISPredictor
    from cmseg.tasks.sod.predictor import SODPredictor

    assert predictors.SODPredictor is SODPredictor and predictors.RISPredictor is RISPredictor
    assert predictors.CosegPredictor is CosegPredictor
    assert set(predictors.__all__) == {"SODPredictor", "RISPredictor", "CosegPredictor"}


def test_the_lower_layers_do_not_even_name_the_tasks_package():
    """``git grep "cmseg.tasks" cmseg/engine cmseg/models cmseg/data cmseg/metrics`` is empty:
    the layers below the tasks never know how tasks are organised, not even in a docstring."""
    import re

    named = [
        f"{path.relative_to(PACKAGE.parent)}:{n}"
        for layer in ("engine", "models", "data", "metrics")
        for path in sorted((PACKAGE / layer).rglob("*.py"))
        for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1)
        if re.search(r"cmseg.tasks", line)
    ]
    assert named == []
