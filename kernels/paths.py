"""Which fast paths the kernels take on this machine, in one line for benchmarks to print.

The paths are chosen once, when the kernels are compiled (kernels.vnni.HAS_VNNI, Numba's target
and NUMBA_DISABLE_JIT); tests check every path against isa/ bit for bit (tests/test_kernels_exact.py
on the host, test_kernels_portable.py compiled for plain AVX2, test_kernels_without_jit.py)."""

from __future__ import annotations

import llvmlite.binding as llvm_binding
from numba.core import config as numba_config

from .vnni import HAS_VNNI


def target() -> str:
    """The CPU Numba compiles for: its name and whether AVX-512 and AVX512-VNNI are on."""
    name = numba_config.CPU_NAME or llvm_binding.get_host_cpu_name()
    if numba_config.CPU_FEATURES:
        feats = numba_config.CPU_FEATURES
        avx512 = "+avx512f" in feats and "-avx512f" not in feats
    else:
        avx512 = bool(llvm_binding.get_host_cpu_features().get("avx512f"))
    return f"{name}, AVX-512 {'on' if avx512 else 'off'}, VNNI {'on' if HAS_VNNI else 'off'}"


def gemm_paths() -> str:
    """The GEMM path each operand class takes (kernels.mac)."""
    if HAS_VNNI:
        return ("GEMM: <= 8-bit -> u8 x s8 tiles (vpdpbusd); <= 16-bit -> int16 digit tiles (vpdpwssd); "
                "wider weights -> int64 panels")
    return "GEMM: <= 8-bit -> int16 panels (portable vector IR); wider -> int64 panels"


def describe() -> str:
    """One line: the compile target and the GEMM paths."""
    if numba_config.DISABLE_JIT:
        return f"kernels not compiled (NUMBA_DISABLE_JIT: Python and numpy); {gemm_paths()}"
    return f"kernels compiled for {target()}; {gemm_paths()}"


if __name__ == "__main__":
    print(describe())
