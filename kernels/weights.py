"""LOADW: decompress weights DRAM -> WGT words (twin of isa.semantics.loadw / isa.weights).

Dense streams are unpacked by the vectorized row unpacker; codebook indices are extracted and
looked up in the palette by a loop LLVM vectorizes (a gather); bitmask and run-length streams
are inherently sequential (each element's source depends on the count of those before it) and
run as tight scalar loops.  Every stream is bounds-checked against DRAM before anything is
written; a malformed run-length stream is decoded into a temporary and refused as a whole.
"""

from __future__ import annotations

import numpy as np
from numba import njit, uintp

from .common import INLINE
from .dma import unpack_row
from .state import (ERR_RLE_OVERRUN, ERR_STREAM_PAST_DRAM, FMT_BITMASK, FMT_CODEBOOK, FMT_DENSE, OK)


@njit(**INLINE)
def _bits_at(dram, addr, bitpos, width, signed):
    """``width`` (<= 16) bits from a little-endian bit stream at byte ``addr``, bit ``bitpos``."""
    b = addr + (bitpos >> 3)
    sh = bitpos & 7
    v = np.int64(dram[b])
    if sh + width > 8 and b + 1 < dram.size:
        v |= np.int64(dram[b + 1]) << 8
    if sh + width > 16 and b + 2 < dram.size:
        v |= np.int64(dram[b + 2]) << 16
    v = (v >> sh) & ((1 << width) - 1)
    if signed and v >= (1 << (width - 1)):
        v -= 1 << width
    return v


@njit(**INLINE)
def _nbytes(bits):
    return (bits + 7) >> 3


@njit(cache=True, inline="always", boundscheck=False)
def _popcount_bits(dram, addr, count):
    n = 0
    for j in range(count >> 3):
        b = np.int64(dram[addr + j])
        b = b - ((b >> 1) & 0x55)
        b = (b & 0x33) + ((b >> 2) & 0x33)
        n += (b + (b >> 4)) & 0x0F
    for j in range(count & ~7, count):
        n += (np.int64(dram[addr + (j >> 3)]) >> (j & 7)) & 1
    return n


@njit(cache=True, inline="always", boundscheck=False)
def _codebook(dram, idx_at, count, k, palette, mem, dst_at):
    """mem[dst_at + j] = palette[index j] for the k-bit indices (k <= 8) packed from byte idx_at
    (the stream is inside DRAM): eight indices at a time from the k bytes that hold them, then
    the rest one by one."""
    mask = (1 << k) - 1
    groups = count >> 3
    for g in range(groups):
        at = idx_at + g * k
        v = np.int64(0)
        for t in range(k):
            v |= np.int64(dram[uintp(at + t)]) << (8 * t)
        out = dst_at + 8 * g
        for t in range(8):
            mem[uintp(out + t)] = palette[uintp((v >> (t * k)) & mask)]
    for j in range(8 * groups, count):
        bp = j * k
        b = idx_at + (bp >> 3)
        v = np.int64(dram[b])
        if (bp & 7) + k > 8:  # the index's second byte is inside the stream
            v |= np.int64(dram[b + 1]) << 8
        mem[dst_at + j] = palette[(v >> (bp & 7)) & mask]


@njit(cache=True, boundscheck=False)
def loadw(dram, mem, dst_at, dram_addr, count, fmt, bits, signed, param, zero):
    """LOADW: WGT words from a dense, bitmask, run-length or codebook stream; returns a status."""
    size = dram.size
    if fmt == FMT_DENSE:
        if dram_addr + _nbytes(count * bits) > size:
            return ERR_STREAM_PAST_DRAM
        unpack_row(dram, dram_addr, np.int64(0), count, bits, signed, mem, dst_at, np.int64(32))
        return OK
    if fmt == FMT_BITMASK:
        mask_bytes = _nbytes(count)
        if dram_addr + mask_bytes > size:
            return ERR_STREAM_PAST_DRAM
        nnz = _popcount_bits(dram, dram_addr, count)
        vals = dram_addr + mask_bytes
        if vals + _nbytes(nnz * bits) > size:
            return ERR_STREAM_PAST_DRAM
        q = 0
        for j in range(count):
            if (dram[dram_addr + (j >> 3)] >> (j & 7)) & 1:
                mem[dst_at + j] = _bits_at(dram, vals, q * bits, bits, signed)
                q += 1
            else:
                mem[dst_at + j] = zero
        return OK
    if fmt == FMT_CODEBOOK:
        k = param
        palette_n = 1 << k
        idx_at = dram_addr + _nbytes(palette_n * bits)
        if idx_at + _nbytes(count * k) > size:
            return ERR_STREAM_PAST_DRAM
        palette = np.empty(palette_n, np.int64)
        unpack_row(dram, dram_addr, np.int64(0), palette_n, bits, signed, palette, np.int64(0), np.int64(64))
        _codebook(dram, idx_at, count, k, palette, mem, dst_at)
        return OK
    # FMT_RLE: entries of (run: param bits, value: bits bits)
    out = np.empty(count, np.int64)
    produced = 0
    bitpos = 0
    entry = param + bits
    while produced < count:
        if dram_addr + _nbytes(bitpos + entry) > size:
            return ERR_STREAM_PAST_DRAM
        run = _bits_at(dram, dram_addr, bitpos, param, False)
        value = _bits_at(dram, dram_addr, bitpos + param, bits, signed)
        bitpos += entry
        if produced + run + 1 > count:
            return ERR_RLE_OVERRUN
        for t in range(run):
            out[produced + t] = zero
        out[produced + run] = value
        produced += run + 1
    mem[dst_at:dst_at + count] = out
    return OK
