"""Issue 3, acceptance 1: the kernel property tests also pass with NUMBA_DISABLE_JIT=1, where
the kernels run as plain Python/numpy (so their arithmetic, not only LLVM's, is right)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_kernel_properties_hold_without_jit():
    env = {**os.environ, "NUMBA_DISABLE_JIT": "1"}
    r = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-x",
                        "tests/test_kernels_exact.py", "-W", "ignore::RuntimeWarning"],
                       cwd=ROOT, env=env, capture_output=True, text=True, timeout=1200)
    tail = "\n".join(r.stdout.splitlines()[-15:])
    assert r.returncode == 0, tail
    assert " passed" in tail and "failed" not in tail
