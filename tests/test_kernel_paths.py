"""kernels.paths names the paths the kernels take, as benchmarks print them."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from kernels.paths import describe
from kernels.vnni import HAS_VNNI

ROOT = Path(__file__).resolve().parent.parent


def test_describe_names_this_machines_gemm_paths():
    line = describe()
    assert ("VNNI on" in line) is HAS_VNNI
    assert ("vpdpbusd" in line) is HAS_VNNI and ("int16 panels" in line) is (not HAS_VNNI)


def test_describe_without_the_jit_says_so():
    env = {**os.environ, "NUMBA_DISABLE_JIT": "1"}
    r = subprocess.run([sys.executable, "-m", "kernels.paths"], cwd=ROOT, env=env, capture_output=True, text=True,
                       timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    assert "NUMBA_DISABLE_JIT" in r.stdout and "int16 panels" in r.stdout and "vpdpbusd" not in r.stdout
