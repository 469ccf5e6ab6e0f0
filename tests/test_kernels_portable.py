"""The portable twins: the kernel property tests also pass with the kernels compiled for plain
AVX2 (no AVX-512, no VNNI), where GEMM takes its int16 and int64 panels and the VNNI tiles are not
chosen.  Together with the host run (tests/test_kernels_exact.py) and the run without the JIT
(tests/test_kernels_without_jit.py), every GEMM path is checked bit for bit against isa/."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from .subprocess_pytest import ROOT, run_kernel_properties
from .test_kernels_simd import AVX2, NO_AVX2, _has_avx2


@pytest.mark.skipif(not _has_avx2(), reason=NO_AVX2)
def test_kernel_properties_hold_compiled_for_avx2(tmp_path):
    env = {"NUMBA_CPU_NAME": "haswell", "NUMBA_CPU_FEATURES": AVX2, "ACCELSIM_CACHE_DIR": str(tmp_path / "cache")}
    probe = subprocess.run([sys.executable, "-c", "from kernels.vnni import HAS_VNNI; print(HAS_VNNI)"],
                           cwd=ROOT, env={**os.environ, **env}, capture_output=True, text=True, timeout=300)
    assert probe.stdout.strip() == "False", probe.stderr[-2000:]  # the VNNI tiles are really off
    run_kernel_properties(env, "-k", "gemm or loadwin or dwconv or load_and_store")


#: the value loop's hints, whose byte-path shortcuts fall back to the buffers without VNNI
HINTS = ("tests/test_gemm_weight_reuse.py", "tests/test_deferred_loads.py", "tests/test_kept_weights.py",
         "tests/test_fused_requant.py")


@pytest.mark.skipif(not _has_avx2(), reason=NO_AVX2)
def test_value_loop_hints_hold_compiled_for_avx2(tmp_path):
    """Packed-weight reuse, deferred loads, kept weights and fused requantization equal the golden semantics on the
    portable GEMM paths too (where no GEMM packs into the kept slots)."""
    env = {"NUMBA_CPU_NAME": "haswell", "NUMBA_CPU_FEATURES": AVX2, "ACCELSIM_CACHE_DIR": str(tmp_path / "cache")}
    run_kernel_properties(env, files=HINTS)
