"""keep_freed_memory: applied once on glibc, harmless elsewhere."""

from __future__ import annotations

import platform
import subprocess
import sys

import pytest


def test_keep_freed_memory_in_a_fresh_process():
    # a subprocess: the setting is process-wide and must not leak into the test session
    code = (
        "import torch\n"
        "from cmseg.engine.allocator import keep_freed_memory\n"
        "first = keep_freed_memory()\n"
        "second = keep_freed_memory()\n"
        "x = [torch.ones(300_000) for _ in range(4)]  # allocations still work\n"
        "del x\n"
        "print(first, second)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    first, second = out.stdout.split()
    if sys.platform.startswith("linux") and platform.libc_ver()[0] == "glibc":
        assert (first, second) == ("True", "True")
    else:
        assert first == second


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc only")
def test_page_faults_drop_for_a_repeated_allocation_pattern():
    """What the setting changes: glibc maps a block above 32 MiB (its adaptive threshold's
    ceiling) afresh on every allocation and unmaps it when freed, so a loop that reallocates
    one pays the page faults every time; with the thresholds fixed the heap keeps and reuses
    it."""
    code = (
        "import resource, sys, torch\n"
        "from cmseg.engine.allocator import keep_freed_memory\n"
        "if sys.argv[1] == '1': keep_freed_memory()\n"
        "torch.set_num_threads(1)\n"
        "before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt\n"
        "for _ in range(20):\n"
        "    a = torch.ones(12 * 2**20)  # 48 MiB\n"
        "    del a\n"
        "print(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)\n"
    )
    faults = {}
    for flag in ("0", "1"):
        out = subprocess.run(
            [sys.executable, "-c", code, flag], capture_output=True, text=True, check=True
        )
        faults[flag] = int(out.stdout.strip())
    assert faults["1"] < faults["0"] / 2, faults  # measured: 245,807 vs 73,742
