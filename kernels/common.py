"""Small inlined helpers shared by the kernels: wrap, operand extension, output range."""

from __future__ import annotations

import numpy as np
from numba import njit

INLINE = dict(cache=True, inline="always", boundscheck=False)


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
