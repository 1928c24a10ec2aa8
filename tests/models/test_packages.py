"""Every package and module under cmseg.models: ``from X import *`` works and ``__all__`` is
exact (each name exists, no name twice); importing cmseg.models itself stays torch-free."""

from __future__ import annotations

import importlib
import os
import pkgutil
import subprocess
import sys
from pathlib import Path

import pytest

import cmseg.models


def _modules(packages_only: bool) -> list[str]:
    names = ["cmseg.models"]
    for info in pkgutil.walk_packages(cmseg.models.__path__, prefix="cmseg.models."):
        if info.ispkg or not packages_only:
            names.append(info.name)
    return sorted(names)


PACKAGES = _modules(packages_only=True)
MODULES = _modules(packages_only=False)


def test_the_method_packages_are_found():
    assert {"cmseg.models", "cmseg.models.xmsnet", "cmseg.models.cmpc"} <= set(PACKAGES)


@pytest.mark.parametrize("name", PACKAGES)
def test_star_import_of_every_package(name):
    namespace: dict[str, object] = {}
    exec(f"from {name} import *", namespace)  # name: a module found above, not input
    module = importlib.import_module(name)
    exported = set(getattr(module, "__all__", ()))
    assert exported, f"{name} has no __all__"
    assert exported <= set(namespace)


@pytest.mark.parametrize("name", MODULES)
def test_every_all_name_exists_once(name):
    module = importlib.import_module(name)
    exported = list(getattr(module, "__all__", ()))
    missing = [n for n in exported if not hasattr(module, n)]
    assert missing == [], f"{name}.__all__ names what it does not define: {missing}"
    assert len(exported) == len(set(exported)), f"{name}.__all__ repeats a name"


#: Names each method package must export besides its network: its loss, its official-checkpoint
#: converter where it has one (CMPC has none), the types its API returns.
METHOD_EXPORTS = {
    "cmseg.models.xmsnet": ["xmsnet_loss", "deep_supervision_loss", "convert_official_xmsnet"],
    "cmseg.models.cmpc": ["cmpc_loss", "VisualLevel"],
}


@pytest.mark.parametrize(("package", "names"), list(METHOD_EXPORTS.items()))
def test_methods_export_their_loss_and_converter(package, names):
    assert set(names) <= set(importlib.import_module(package).__all__)


def test_importing_cmseg_models_does_not_import_torch():
    code = "import sys, cmseg.models; assert 'torch' not in sys.modules, 'torch imported'"
    root = str(Path(cmseg.models.__file__).parents[2])  # the cmseg under test, not another copy
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([root, os.environ.get("PYTHONPATH", "")])}
    subprocess.run([sys.executable, "-c", code], check=True, env=env)
