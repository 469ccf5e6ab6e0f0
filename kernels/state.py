"""The machine state as the kernels see it: plain arrays, so every kernel is callable from @njit.

* ``dram``: ``uint8[:]``.
* ``mem``: ``int64[:]``, every on-chip buffer one after another; a kernel gets absolute word
  addresses (buffer base + address) that the simulator has validated, and the word width of the
  buffer it writes (32 or 64: a write keeps that many low bits, as isa.semantics.write).
* ``cfg``: ``int64[:]``, the CONFIG register, indexed by the ``CFG_*`` constants below.
* ``win``: ``int64[:]``, the SETWIN register, indexed by the ``WIN_*`` constants.

Kernels return 0, or one of the ``ERR_*`` codes for faults that depend on data (a malformed
compressed stream, a fixed-point parameter out of range); they then leave ``mem`` unchanged.
The accumulating kernels (GEMM, DWCONV, SUMPOOL) cannot fault: they return how many
accumulators overflowed (wrapped) instead.
"""

from __future__ import annotations

import numpy as np

from isa.table import BY_MNEMONIC, DTYPES, REQUANT_MODES

# CONFIG register layout
(CFG_A_BITS, CFG_A_SIGNED, CFG_W_BITS, CFG_W_SIGNED, CFG_O_BITS, CFG_O_SIGNED, CFG_A_ZP, CFG_W_ZP,
 CFG_O_ZP, CFG_ACC_BITS, CFG_MODE, CFG_CLAMP_MIN, CFG_CLAMP_MAX) = range(13)
CFG_SIZE = 13
MODE_FP32, MODE_FIXED_DOUBLE, MODE_FIXED_SINGLE, MODE_FIXED_DOUBLE_UP, MODE_FP64_AWAY, MODE_FIXED_SHARED = (
    REQUANT_MODES.index(m) for m in REQUANT_MODES)

# SETWIN register layout: the SETWIN fields in table order
WIN_FIELDS = tuple(f.name for f in BY_MNEMONIC["SETWIN"].fields)
(WIN_IN_H, WIN_IN_W, WIN_IN_C, WIN_K_H, WIN_K_W, WIN_STRIDE_H, WIN_STRIDE_W, WIN_DIL_H, WIN_DIL_W,
 WIN_PAD_TOP, WIN_PAD_LEFT, WIN_OUT_W, WIN_PAD_VALUE, WIN_OUT_H) = range(len(WIN_FIELDS))
WIN_SIZE = len(WIN_FIELDS)

# Weight formats (LOADW)
FMT_DENSE, FMT_BITMASK, FMT_RLE, FMT_CODEBOOK = range(4)

# Data-dependent faults
OK = 0
ERR_STREAM_PAST_DRAM = 1
ERR_RLE_OVERRUN = 2
ERR_NEGATIVE_MULTIPLIER = 3
ERR_SHIFT_RANGE = 4
ERR_LEFT_SHIFT_RANGE = 5
ERR_FP64_MULTIPLIER = 7
ERR_VECTOR_MODE = 8
ERR_REQUANT_MODE = 9
ERR_SHARED_PARAMS = 10
HOST_CALL = 6  # not a fault: the value loop stops at a HOST instruction for the host to run its step
ERR_MESSAGES = {
    ERR_STREAM_PAST_DRAM: "compressed weight stream runs past the end of DRAM",
    ERR_RLE_OVERRUN: "run-length stream makes more weights than count",
    ERR_NEGATIVE_MULTIPLIER: "negative fixed-point multiplier",
    ERR_SHIFT_RANGE: "fixed-point shift out of range",
    ERR_LEFT_SHIFT_RANGE: "VADD left_shift outside 0..30",
    ERR_FP64_MULTIPLIER: "fp64 multiplier is not finite and non-negative",
    ERR_VECTOR_MODE: "VADD and VMUL have only the fp32, fixed_double and fixed_single requant modes (and VADD "
                     "fixed_shared)",
    ERR_REQUANT_MODE: "REQUANT has no requant mode fixed_shared (a VADD mode)",
    ERR_SHARED_PARAMS: "VADD fixed_shared multipliers must be non-negative and its shift in 1..31",
}


def config_register(args: dict) -> np.ndarray:
    """CONFIG instruction fields (isa.Instruction.args) -> the kernels' cfg array."""
    a, w, o = DTYPES[args["a"]], DTYPES[args["w"]], DTYPES[args["o"]]
    return np.array([a[0], a[1], w[0], w[1], o[0], o[1], args["a_zp"], args["w_zp"], args["o_zp"],
                     args["acc_bits"], REQUANT_MODES.index(args["mode"]), args["clamp_min"],
                     args["clamp_max"]], dtype=np.int64)


def window_register(args: dict) -> np.ndarray:
    """SETWIN instruction fields -> the kernels' win array."""
    return np.array([args[f] for f in WIN_FIELDS], dtype=np.int64)
