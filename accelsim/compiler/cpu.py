"""What ONNX Runtime's MLAS dispatches to on this x86-64 CPU, where it changes float results:
the NCHWc block of its blocked-channel layout, and whether its Sigmoid / Tanh kernels are the FMA3
ones.  Read from /proc/cpuinfo (MLAS asks CPUID for the same flags)."""

from __future__ import annotations

import functools


@functools.lru_cache(maxsize=None)
def cpu_flags() -> frozenset[str]:
    """The CPU feature flags of the first processor in /proc/cpuinfo (empty where it cannot be read)."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("flags"):
                    return frozenset(line.split(":", 1)[1].split())
    except OSError:
        pass
    return frozenset()


def nchwc_block(flags: frozenset[str] | None = None) -> int:
    """MLAS's NCHWc block: 16 with AVX-512F, 8 with AVX2, else 1 (no NCHWc layout)."""
    f = cpu_flags() if flags is None else flags
    return 16 if "avx512f" in f else 8 if "avx2" in f else 1


def fma3_activations(flags: frozenset[str] | None = None) -> bool:
    """Whether MLAS computes Sigmoid and Tanh with its FMA3 kernels (AVX, XSAVE, FMA and AVX2; the
    AVX-512 branch of its platform set-up keeps them), else with the generic SSE2 kernels."""
    f = cpu_flags() if flags is None else flags
    return {"avx", "xsave", "fma", "avx2"} <= f
