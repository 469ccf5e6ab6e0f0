"""The portable twins: the kernel property tests also pass with the kernels compiled for plain
AVX2 (no AVX-512, no VNNI), where GEMM takes its int16 and int64 panels and the VNNI tiles are not
chosen.  Together with the host run (tests/test_kernels_exact.py) and the run without the JIT
(tests/test_kernels_without_jit.py), every GEMM path is checked bit for bit against isa/."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from .test_kernels_simd import AVX2, NO_AVX2, _has_avx2

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.skipif(not _has_avx2(), reason=NO_AVX2)
def test_kernel_properties_hold_compiled_for_avx2(tmp_path):
    env = {**os.environ, "NUMBA_CPU_NAME": "haswell", "NUMBA_CPU_FEATURES": AVX2,
           "ACCELSIM_CACHE_DIR": str(tmp_path / "cache")}
    probe = subprocess.run([sys.executable, "-c", "from kernels.vnni import HAS_VNNI; print(HAS_VNNI)"],
                           cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert probe.stdout.strip() == "False", probe.stderr[-2000:]  # the VNNI tiles are really off
    r = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-x",
                        "tests/test_kernels_exact.py", "-k", "gemm or loadwin or dwconv or load_and_store"],
                       cwd=ROOT, env=env, capture_output=True, text=True, timeout=1200)
    tail = "\n".join(r.stdout.splitlines()[-15:])
    assert r.returncode == 0, tail
    assert " passed" in tail and "failed" not in tail
