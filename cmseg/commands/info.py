"""``cmseg info``: versions, devices, what is built for each task, and the models and configs
cmseg knows."""

from __future__ import annotations

import importlib.metadata
import platform
from pathlib import Path

import cmseg

_PACKAGES = (
    "torch",
    "torchvision",
    "timm",
    "transformers",
    "numpy",
    "opencv-python-headless",
    "pycocotools",
)


def package_version(name: str) -> str:
    """Installed version of a distribution, or ``not installed``."""
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return "not installed"


def configs_dir() -> Path | None:
    """The ``configs/`` folder of a source checkout (an editable install), if there is one."""
    candidate = Path(cmseg.__file__).resolve().parent.parent / "configs"
    return candidate if candidate.is_dir() else None


def known_configs() -> list[str]:
    """Config files as ``task/name.yaml`` paths relative to ``configs/``."""
    root = configs_dir()
    if root is None:
        return []
    return sorted(str(p.relative_to(root)) for p in root.rglob("*.yaml"))


def known_models() -> list[str]:
    """Names accepted by ``model.name`` (the keys of ``cmseg.models.MODELS``)."""
    try:
        from cmseg.models import MODELS  # type: ignore[attr-defined]
    except ImportError:
        return []
    return sorted(MODELS)


def cuda_summary() -> str:
    """``yes (N x NAME)`` or ``no``; imports torch, which is why only ``info`` calls it."""
    try:
        import torch
    except ImportError:
        return "no (torch not installed)"
    if not torch.cuda.is_available():
        return "no"
    names = sorted({torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())})
    return f"yes ({torch.cuda.device_count()} x {', '.join(names)})"


def task_status() -> list[str]:
    """One line per task of :data:`cmseg.tasks.TASKS`: what each command does for it."""
    from cmseg.tasks import COMMANDS, TASKS

    width = max(len(name) for name in TASKS)
    lines = []
    for name, task in TASKS.items():
        built = [c for c in COMMANDS if task.built(c)]
        missing = [c for c in COMMANDS if not task.built(c)]
        status = ", ".join(built) or "nothing"
        if missing:
            status += f" (not built yet: {', '.join(missing)})"
        lines.append(f"  {name:<{width}}  {task.title}: {status}")
    return lines


def run_info() -> int:
    rows = [
        ("cmseg", cmseg.__version__),
        ("python", f"{platform.python_version()} ({platform.machine()})"),
    ]
    rows += [(name, package_version(name)) for name in _PACKAGES]
    rows.append(("cuda available", cuda_summary()))
    width = max(len(k) for k, _ in rows)
    for key, value in rows:
        print(f"{key:<{width}}  {value}")
    print("\ntasks (commands built):")
    print("\n".join(task_status()))
    models = known_models()
    configs = known_configs()
    print(f"\nmodels ({len(models)}): {', '.join(models) if models else 'none yet'}")
    print(f"configs ({len(configs)}): {', '.join(configs) if configs else 'none yet'}")
    return 0
