"""Numba kernels, one per data-moving or computing instruction, bit-exact twins of the golden
functions of the same name in isa.semantics (CONFIG, SETWIN, NOP and HALT only set registers).

Every kernel is ``@njit(cache=True)``, takes plain arrays and integers (see kernels.state) and so
can be called from the simulator's own Numba instruction loop.
"""

from ._cache import install as _install_cache

_install_cache()  # before any kernel is compiled: kernels._cache

from .dma import load, loadwin, pack_row, store, unpack_row  # noqa: E402
from .mac import dwconv, dwconv_into, gemm, gemm8, gemm_into, weight_workspace  # noqa: E402
from .requant import requant, requant_fp32, requant_stage  # noqa: E402
from .vector import avgpool, maxpool, shr, sumpool, vadd, vlut, vmax, vmin, vmul  # noqa: E402
from .weights import loadw  # noqa: E402

KERNELS = {
    "LOAD": load, "LOADWIN": loadwin, "LOADW": loadw, "STORE": store, "GEMM": gemm,
    "DWCONV": dwconv, "REQUANT": requant, "VADD": vadd, "VMAX": vmax, "VMIN": vmin,
    "MAXPOOL": maxpool, "AVGPOOL": avgpool, "SUMPOOL": sumpool, "SHR": shr, "VLUT": vlut, "VMUL": vmul,
}

__all__ = ["KERNELS", "load", "loadwin", "loadw", "store", "gemm", "gemm8", "gemm_into", "weight_workspace", "dwconv", "dwconv_into", "requant", "requant_fp32",
           "requant_stage", "vadd",
           "vmax", "vmin", "maxpool", "avgpool", "sumpool", "shr", "vlut", "vmul", "pack_row", "unpack_row"]
