"""DMA kernels: LOAD, LOADWIN and STORE (twins of isa.semantics.load / loadwin / store), and the
unpack/pack helpers every DRAM access goes through.

Element e of a packed tensor at byte address A occupies bits [8A + e*b, 8A + (e+1)*b) of DRAM.
Rows of 8/16/32-bit elements are byte-aligned and unpacked by vectorizable loops; 4-bit rows are
unpacked two elements per byte (low nibble first).
"""

from __future__ import annotations

import numpy as np
from numba import njit, uintp

from .common import INLINE
from .state import (WIN_DIL_H, WIN_DIL_W, WIN_IN_C, WIN_IN_H, WIN_IN_W, WIN_K_H, WIN_K_W,
                    WIN_OUT_H, WIN_OUT_W, WIN_PAD_LEFT, WIN_PAD_TOP, WIN_PAD_VALUE, WIN_STRIDE_H,
                    WIN_STRIDE_W)


@njit(**INLINE)
def _nibble(dram, addr, e, signed):
    v = (np.int64(dram[addr + (e >> 1)]) >> ((e & 1) << 2)) & 0xF
    if signed and v >= 8:
        v -= 16
    return v


@njit(**INLINE)
def _unpack8(dram, addr, count, signed, mem, at):
    """mem[at + j] = the byte at addr + j, sign- or zero-extended, for j < count.  Unsigned
    indices: no wraparound test per element (so the loop vectorizes) and no view (a view costs two
    atomic reference-count updates, which dominate short runs)."""
    if signed:
        for j in range(count):
            mem[uintp(at + j)] = np.int64(np.int8(dram[uintp(addr + j)]))
    else:
        for j in range(count):
            mem[uintp(at + j)] = np.int64(dram[uintp(addr + j)])


@njit(**INLINE)
def _fill(mem, at, count, value):
    """mem[at:at + count] = value, without a view."""
    for j in range(count):
        mem[uintp(at + j)] = value


@njit(cache=True, boundscheck=False)
def unpack_row(dram, addr, e0, count, bits, signed, mem, at, word_bits):
    """mem[at + j] = element (e0 + j) of the packed tensor at byte ``addr``, for j < count."""
    dst = mem[at:at + count]
    if bits == 8:
        _unpack8(dram, addr + e0, count, signed, mem, at)
    elif bits == 4:
        j = 0
        if e0 & 1 and count > 0:
            mem[at] = _nibble(dram, addr, e0, signed)
            j = 1
        base = addr + ((e0 + j) >> 1)
        pairs = (count - j) >> 1
        sign = 8 if signed else 16
        src4 = dram[base:base + pairs]
        out = dst[j:j + 2 * pairs]
        for q in range(pairs):
            byte = np.int64(src4[q])
            lo = byte & 0xF
            hi = byte >> 4
            out[2 * q] = lo - 16 if lo >= sign else lo
            out[2 * q + 1] = hi - 16 if hi >= sign else hi
        if j + 2 * pairs < count:
            mem[at + count - 1] = _nibble(dram, addr, e0 + count - 1, signed)
    elif bits == 16:
        src16 = dram[addr + 2 * e0: addr + 2 * (e0 + count)]
        for j in range(count):
            v = np.int64(src16[2 * j]) | (np.int64(src16[2 * j + 1]) << 8)
            dst[j] = v - 65536 if signed and v >= 32768 else v
    else:  # 32
        src32 = dram[addr + 4 * e0: addr + 4 * (e0 + count)]
        for j in range(count):
            v = (np.int64(src32[4 * j]) | (np.int64(src32[4 * j + 1]) << 8)
                 | (np.int64(src32[4 * j + 2]) << 16) | (np.int64(src32[4 * j + 3]) << 24))
            if signed or word_bits == 32:
                v = ((v + (1 << 31)) & 0xFFFFFFFF) - (1 << 31)
            dst[j] = v


@njit(cache=True, boundscheck=False)
def pack_row(mem, at, count, dram, addr, e0, bits):
    """Write the low ``bits`` of mem[at + j] as element (e0 + j) at byte ``addr`` (nibbles RMW)."""
    if bits == 8:  # through slices and a range: no index wraparound, so LLVM vectorizes (vpmovqb)
        src = mem[at:at + count]
        dst = dram[addr + e0:addr + e0 + count]
        for j in range(count):
            dst[j] = np.uint8(src[j] & 0xFF)
    elif bits == 4:
        for j in range(count):
            e = e0 + j
            b = addr + (e >> 1)
            sh = (e & 1) << 2
            dram[b] = np.uint8((np.int64(dram[b]) & (0xF0 >> sh)) | ((mem[at + j] & 0xF) << sh))
    else:
        nbytes = bits >> 3
        for j in range(count):
            v = mem[at + j]
            for q in range(nbytes):
                dram[addr + (e0 + j) * nbytes + q] = np.uint8((v >> (8 * q)) & 0xFF)


@njit(cache=True, boundscheck=False)
def load(dram, mem, dram_addr, dst_at, x, y, y_stride, bits, signed, word_bits):
    """LOAD: mem[dst_at + r*x + j] = element (r*y_stride + j), j < x, r < y."""
    if y_stride == x:  # contiguous rows: one long row
        unpack_row(dram, dram_addr, np.int64(0), x * y, bits, signed, mem, dst_at, word_bits)
        return 0
    for r in range(y):
        unpack_row(dram, dram_addr, r * y_stride, x, bits, signed, mem, dst_at + r * x, word_bits)
    return 0


@njit(**INLINE)
def _window_row(dram, mem, dram_addr, at, row_first, ix0, in_w, k_w, nc, pad, bits, signed, word_bits):
    """The k_w whole-pixel taps ix0 .. ix0 + k_w - 1 of one input row (dilation 1, every channel):
    contiguous in DRAM, so the taps inside the row are one run and the rest padding."""
    lo = min(max(0, -ix0), k_w) * nc
    hi = max(min(k_w, in_w - ix0) * nc, lo)
    _fill(mem, at, lo, pad)
    e0 = row_first + ix0 * nc + lo
    if bits == 8:
        _unpack8(dram, dram_addr + e0, hi - lo, signed, mem, at + lo)
    elif hi > lo:
        unpack_row(dram, dram_addr, e0, hi - lo, bits, signed, mem, at + lo, word_bits)
    _fill(mem, at + hi, k_w * nc - hi, pad)


@njit(cache=True, boundscheck=False)
def loadwin(dram, mem, win, dram_addr, dst_at, pix0, npix, c0, nc, bits, signed, word_bits):
    """LOADWIN: gathered windows mem[dst_at + ((p*k_h + ky)*k_w + kx)*nc + c], padding outside (with
    out_h, each pixel reads its own image).  Windows of every channel at dilation 1 read each
    kernel row as one run (a 7 x 7 window on 3 channels: 7 runs of 21 elements, not 49 of 3)."""
    in_h, in_w, in_c = win[WIN_IN_H], win[WIN_IN_W], win[WIN_IN_C]
    k_h, k_w, out_w = win[WIN_K_H], win[WIN_K_W], win[WIN_OUT_W]
    s_h, s_w, d_h, d_w = win[WIN_STRIDE_H], win[WIN_STRIDE_W], win[WIN_DIL_H], win[WIN_DIL_W]
    pad_top, pad_left = win[WIN_PAD_TOP], win[WIN_PAD_LEFT]
    pad = win[WIN_PAD_VALUE]  # 17-bit: fits every word
    per_image = win[WIN_OUT_H] * out_w  # (all read once: mem's writes could alias win for LLVM)
    runs = nc == in_c and d_w == 1
    if (runs and k_h == 1 and k_w == 1 and s_h == 1 and s_w == 1 and pad_top == 0 and pad_left == 0
            and out_w == in_w and (win[WIN_OUT_H] == in_h or (per_image == 0 and pix0 + npix <= in_h * in_w))):
        # a 1 x 1 window that reads every pixel in order (a pointwise convolution): one run
        unpack_row(dram, dram_addr, pix0 * in_c, npix * in_c, bits, signed, mem, dst_at, word_bits)
        return 0
    at = dst_at
    for p in range(npix):
        pix = pix0 + p
        first = 0
        if per_image > 0:  # the pixel's image: its elements start in_h * in_w * in_c further on
            first = (pix // per_image) * in_h * in_w * in_c
            pix = pix % per_image
        oy = pix // out_w
        ix0 = (pix - oy * out_w) * s_w - pad_left
        for ky in range(k_h):
            iy = oy * s_h - pad_top + ky * d_h
            if not 0 <= iy < in_h:
                _fill(mem, at, k_w * nc, pad)
            elif runs:
                _window_row(dram, mem, dram_addr, at, first + iy * in_w * in_c, ix0, in_w, k_w, nc, pad,
                            bits, signed, word_bits)
            else:
                for kx in range(k_w):
                    ix = ix0 + kx * d_w
                    if 0 <= ix < in_w:
                        unpack_row(dram, dram_addr, first + (iy * in_w + ix) * in_c + c0, nc, bits, signed,
                                   mem, at + kx * nc, word_bits)
                    else:
                        _fill(mem, at + kx * nc, nc, pad)
            at += k_w * nc
    return 0


@njit(cache=True, boundscheck=False)
def store(mem, dram, src_at, dram_addr, x, y, y_stride, bits):
    """STORE: element (r*y_stride + j) = low bits of mem[src_at + r*x + j]; later rows win."""
    if y_stride == x:  # contiguous rows: one long row
        pack_row(mem, src_at, x * y, dram, dram_addr, np.int64(0), bits)
        return 0
    for r in range(y):
        pack_row(mem, src_at + r * x, x, dram, dram_addr, r * y_stride, bits)
    return 0
