"""Issue 3, acceptance 1: the kernel property tests also pass with NUMBA_DISABLE_JIT=1, where
the kernels run as plain Python/numpy (so their arithmetic, not only LLVM's, is right)."""

from __future__ import annotations

from .subprocess_pytest import run_kernel_properties


def test_kernel_properties_hold_without_jit():
    run_kernel_properties({"NUMBA_DISABLE_JIT": "1"}, "-W", "ignore::RuntimeWarning")
