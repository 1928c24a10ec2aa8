"""What a demo table depends on besides the code and the seed, and how the demos pin it.

The same code, seed and package versions print different tables on machines whose CPUs differ:
PyTorch picks its vectorised kernels (ATen), oneDNN its convolutions and MKL its BLAS paths by
the instruction set the CPU offers (AVX2, AVX-512, AMX), and each sums in another order, so
the floats differ in the last bits and 300 training steps carry that into the third decimal
(measured: XMSNet S 0.572 with this machine's AVX-512/AMX kernels, 0.559 with AVX2 ones, after
60 steps of the same run). :func:`pin_cpu_kernels` makes the three libraries use their AVX2
code, which every x86-64 CPU of the last decade has, so that a demo prints one table on every
such machine; :func:`environment` records what a run actually used.

Must run before torch is imported: the libraries read these variables once.
"""

from __future__ import annotations

import importlib.metadata
import logging
import os
import platform
import sys
from typing import Any

__all__ = ["PINNED_KERNELS", "pin_cpu_kernels", "environment"]

log = logging.getLogger(__name__)

#: The variables that choose the CPU kernels, and the value that pins each to AVX2.
PINNED_KERNELS = {
    "ATEN_CPU_CAPABILITY": "avx2",  # PyTorch's vectorised CPU kernels
    "ONEDNN_MAX_CPU_ISA": "AVX2",  # oneDNN (convolutions, matmuls)
    "MKL_CBWR": "AVX2",  # MKL's conditional numerical reproducibility
}

#: Packages whose versions change the numbers (kernels, data writers, model code).
PACKAGES = ("torch", "torchvision", "timm", "numpy", "opencv-python-headless", "pillow", "scipy")


def pin_cpu_kernels() -> dict[str, str]:
    """Set :data:`PINNED_KERNELS` in the environment where the user has not set them.

    Returns:
        The variables as they are now. On a machine that is not x86-64 nothing is set (its
        kernels are of another family anyway). If torch is already imported the setting
        may come too late; a warning says so.
    """
    if platform.machine().lower() not in ("x86_64", "amd64"):
        return {}
    if "torch" in sys.modules:
        log.warning(
            "torch is already imported: the CPU kernels may not be pinned to AVX2, so this "
            "run's numbers can differ from another machine's"
        )
    for name, value in PINNED_KERNELS.items():
        os.environ.setdefault(name, value)
    return {name: os.environ[name] for name in PINNED_KERNELS}


def _version(name: str) -> str:
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return "not installed"


def environment() -> dict[str, Any]:
    """What the numbers of a run depend on: CPU kernels in use, threads, package versions."""
    import torch

    return {
        "machine": platform.machine(),
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "kernel_variables": {name: os.environ.get(name, "") for name in PINNED_KERNELS},
        "threads": torch.get_num_threads(),
        "python": platform.python_version(),
        "packages": {name: _version(name) for name in PACKAGES},
    }
