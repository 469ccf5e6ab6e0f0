"""Small inlined helpers shared by the kernels: wrap, operand extension, output range."""

from __future__ import annotations

import numpy as np
from llvmlite import ir as llvm_ir
from numba import njit, types
from numba.core import cgutils
from numba.core import config as numba_config
from numba.extending import intrinsic

INLINE = dict(cache=True, inline="always", boundscheck=False)
# A constant argument to a cached (not inlined) kernel makes Numba compile that kernel once more,
# specialised on the literal (unpack_row was compiled four times): call sites pass np.int64(c).


@njit(**INLINE)
def wrap(x, bits):
    """Two's-complement wrap of an int64 to ``bits`` (1..64) bits."""
    if bits >= 64:
        return np.int64(x)
    half = np.int64(1) << (bits - 1)
    return ((np.int64(x) + half) & ((half << 1) - 1)) - half


@njit(**INLINE)
def wrap32(x):
    """Two's-complement wrap to 32 bits (arithmetic, so it also holds with the JIT disabled)."""
    return ((np.int64(x) + (1 << 31)) & 0xFFFFFFFF) - (1 << 31)


@njit(**INLINE)
def operand(x, bits, signed):
    """The low ``bits`` of a word, sign- or zero-extended (the MAC array's operand read)."""
    if signed:
        return wrap(x, bits)
    return np.int64(x) & ((np.int64(1) << bits) - 1)


@njit(**INLINE)
def type_range(bits, signed):
    if signed:
        return -(np.int64(1) << (bits - 1)), (np.int64(1) << (bits - 1)) - 1
    return np.int64(0), (np.int64(1) << bits) - 1


@njit(**INLINE)
def store_word(mem, at, value, word_bits):
    """Write a word keeping its low ``word_bits`` bits (32 or 64)."""
    if word_bits == 32:
        mem[at] = wrap32(value)
    else:
        mem[at] = value


@intrinsic
def _llvm_fma_f32(typingctx, a, b, c):
    """LLVM's ``llvm.fma.f32``: one rounding (``vfmadd`` on FMA hardware, libm's exact ``fmaf`` else)."""
    sig = types.float32(types.float32, types.float32, types.float32)

    def codegen(context, builder, signature, args):
        f32 = llvm_ir.FloatType()
        fn = cgutils.get_or_insert_function(builder.module, llvm_ir.FunctionType(f32, [f32, f32, f32]), "llvm.fma.f32")
        return builder.call(fn, args)

    return sig, codegen


@njit(**INLINE)
def _fma_f32_hw(a, b, c):
    """float32 fused multiply-add rounded once, by the hardware (IEEE 754 fusedMultiplyAdd)."""
    return _llvm_fma_f32(np.float32(a), np.float32(b), np.float32(c))


@njit(**INLINE)
def _fma_f32_emulated(a, b, c):
    """float32 fused multiply-add rounded once (as isa.requant.fma_f32): exact float64 product,
    two-sum for the error of the addition, and a tie fix when the sum sits on a float32 midpoint.
    Used with the JIT disabled, where LLVM's intrinsic is not available."""
    p = np.float64(a) * np.float64(b)
    c64 = np.float64(c)
    s = p + c64
    bb = s - p
    e = (p - (s - bb)) + (c64 - bb)
    r = np.float32(s)
    r64 = np.float64(r)
    if e != 0.0 and s != r64:
        if s > r64:
            up = np.nextafter(r, np.float32(np.inf))
            if np.float64(up) - s == s - r64:  # s is the midpoint of r and up: e decides
                return up if e > 0 else r
        else:
            down = np.nextafter(r, np.float32(-np.inf))
            if s - np.float64(down) == r64 - s:
                return down if e < 0 else r
    return r


#: the kernels' float32 FMA: LLVM's intrinsic when compiled, the exact emulation without the JIT
fma_f32 = _fma_f32_emulated if numba_config.DISABLE_JIT else _fma_f32_hw
