"""The demos pin the CPU kernels and record what their numbers depend on."""

from __future__ import annotations

import platform

import pytest

from cmseg.engine import reproducibility
from cmseg.engine.reproducibility import PINNED_KERNELS, environment, pin_cpu_kernels


@pytest.mark.skipif(platform.machine() not in ("x86_64", "AMD64"), reason="x86-64 kernels")
def test_pin_sets_avx2_kernels_and_leaves_a_users_choice(monkeypatch):
    for name in PINNED_KERNELS:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("MKL_CBWR", "COMPATIBLE")
    pinned = pin_cpu_kernels()
    assert pinned == {
        "ATEN_CPU_CAPABILITY": "avx2",
        "ONEDNN_MAX_CPU_ISA": "AVX2",
        "MKL_CBWR": "COMPATIBLE",
    }


def test_other_machines_are_left_alone(monkeypatch):
    monkeypatch.setattr(reproducibility.platform, "machine", lambda: "aarch64")
    for name in PINNED_KERNELS:
        monkeypatch.delenv(name, raising=False)
    assert pin_cpu_kernels() == {}


def test_environment_records_kernels_threads_and_versions():
    env = environment()
    assert set(env) == {
        "machine",
        "cpu_capability",
        "kernel_variables",
        "threads",
        "python",
        "packages",
    }
    assert env["packages"]["torch"] not in ("", "not installed") and env["threads"] >= 1


def test_the_constraints_pin_what_the_environment_records():
    from pathlib import Path

    pinned = {
        line.split("==")[0]
        for line in (Path(__file__).resolve().parents[2] / "constraints.txt")
        .read_text()
        .splitlines()
        if "==" in line and not line.startswith("#")
    }
    assert pinned == set(reproducibility.PACKAGES)
