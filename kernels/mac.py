"""MAC-array kernels: GEMM and DWCONV (twins of isa.semantics.gemm / dwconv).

GEMM packs each K-chunk of both operands into contiguous panels, converting words to operands
on the way (low bits, sign/zero extension, minus the zero point), then runs a 4 x 4 register-
blocked micro-kernel whose inner loop over k LLVM vectorizes: with operands of 8 bits or fewer
the panels are int16 and the products are summed in int32 (``vpmaddwd``, or ``vpdpwssd`` with
AVX512-VNNI); wider operands use int32 panels and exact int64 sums (``vpmuldq``).

Exactness: an 8-bit operand minus its zero point lies in [-255, 255], so one product is at most
65025 in magnitude and K <= 16384 of them stay below 2^31: the int32 sums are exact.  17-bit
operands give products below 2^34 and sums below 2^48: exact in int64.  The result is then
wrapped to CONFIG.acc_bits, which equals wrapping at every step because wrap-around is a ring
homomorphism.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from .common import operand, wrap
from .vnni import HAS_VNNI, STEP, vnni_block
from .state import (CFG_A_BITS, CFG_A_SIGNED, CFG_A_ZP, CFG_ACC_BITS, CFG_W_BITS, CFG_W_SIGNED,
                    CFG_W_ZP)

KC = 1024  # K-chunk of the packed panels
NC = 64    # weight rows per packed weight panel (kept in L2)
MR = NR = 4


def _make_micro(acc: str):
    """The 4 x 4 micro-kernel C[i:i+4, cj:cj+4] += Ap[i:i+4, :kc] @ Wp[j:j+4, :kc].T.

    ``acc`` is the accumulation type (``int32`` or ``int64``).  Operands are widened to it before
    the multiply (plain numpy, with the JIT disabled, would multiply int16 by int16 in int16), and
    each product and partial sum is cast back to it: Numba widens integer products to int64, and
    the casts let LLVM keep the arithmetic in narrow lanes (``vpmulld``/``vpaddd`` on int32).
    Written out by code so that the sixteen accumulators stay scalars (registers) in Numba.
    """
    pairs = [(r, s) for r in range(MR) for s in range(NR)]
    src = ["def micro(Ap, Wp, C, i, j, cj, kc):"]
    src += [f"    s{r}{s} = T(0)" for r, s in pairs]
    src += ["    for p in range(kc):"]
    src += [f"        a{r} = T(Ap[i + {r}, p])" for r in range(MR)]
    src += [f"        w{s} = T(Wp[j + {s}, p])" for s in range(NR)]
    src += [f"        s{r}{s} = T(s{r}{s} + T(a{r} * w{s}))" for r, s in pairs]
    src += [f"    C[i + {r}, cj + {s}] += s{r}{s}" for r, s in pairs]
    namespace = {"T": getattr(np, acc)}
    exec("\n".join(src), namespace)  # noqa: S102 - generated from the constants above only
    # Not cached by itself (generated code has no file): it is inlined into _gemm_panels, which is.
    return njit(inline="always", boundscheck=False)(namespace["micro"])


_micro_i32 = _make_micro("int32")
_micro_i64 = _make_micro("int64")


@njit(cache=True, inline="always", boundscheck=False)
def _dot(Ap, Wp, C, i, j, cj, kc):
    """One output element for the edges the 4 x 4 blocks do not cover."""
    s = np.int64(0)
    for p in range(kc):
        s += np.int64(Ap[i, p]) * np.int64(Wp[j, p])
    C[i, cj] += s


@njit(cache=True, boundscheck=False)
def _pack(mem, at, rows, row_len, k0, kc, bits, signed, zp, panel):
    """panel[r, p] = operand(mem[at + r*row_len + k0 + p]) - zp."""
    for r in range(rows):
        src = mem[at + r * row_len + k0: at + r * row_len + k0 + kc]
        dst = panel[r]
        for p in range(kc):
            dst[p] = operand(src[p], bits, signed) - zp


@njit(cache=True, boundscheck=False)
def _gemm_panels(mem, cfg, inp_at, wgt_at, m, n, k, C, Ap, Wp, wide):
    """C (m x n) += A @ W.T over packed K-chunks; ``wide`` selects the int64 micro-kernel."""
    a_bits, a_signed, a_zp = cfg[CFG_A_BITS], cfg[CFG_A_SIGNED], cfg[CFG_A_ZP]
    w_bits, w_signed, w_zp = cfg[CFG_W_BITS], cfg[CFG_W_SIGNED], cfg[CFG_W_ZP]
    m_body = m - m % MR
    for k0 in range(0, k, KC):
        kc = min(KC, k - k0)
        _pack(mem, inp_at, m, k, k0, kc, a_bits, a_signed, a_zp, Ap)
        for j0 in range(0, n, NC):
            nc = min(NC, n - j0)
            _pack(mem, wgt_at + j0 * k, nc, k, k0, kc, w_bits, w_signed, w_zp, Wp)
            n_body = nc - nc % NR
            for i in range(0, m_body, MR):
                for j in range(0, n_body, NR):
                    if wide:
                        _micro_i64(Ap, Wp, C, i, j, j0 + j, kc)
                    else:
                        _micro_i32(Ap, Wp, C, i, j, j0 + j, kc)
            for i in range(m):  # right and bottom edges
                j_from = n_body if i < m_body else 0
                for j in range(j_from, nc):
                    _dot(Ap, Wp, C, i, j, j0 + j, kc)


@njit(cache=True, boundscheck=False)
def _gemm_vnni(mem, cfg, inp_at, wgt_at, m, n, k, C):
    """C (m x n) += A @ W.T on u8 x s8 panels with the AVX512-VNNI micro-kernel.

    A is packed plus 128 when signed (unsigned bytes), W (signed, zero point 0) as is; the
    zero-point term is taken out per column: sum (a - z) w = sum (a + sh) w - (z + sh) sum w.
    Panels are as wide as K rounded up to 64 bytes, the tail zero (it adds nothing)."""
    a_bits, a_signed, a_zp = cfg[CFG_A_BITS], cfg[CFG_A_SIGNED], cfg[CFG_A_ZP]
    w_bits, w_signed = cfg[CFG_W_BITS], cfg[CFG_W_SIGNED]
    shift = 128 if a_signed else 0
    corr = a_zp + shift
    kc_max = min(KC, k)
    width = -(-kc_max // STEP) * STEP
    Ap = np.zeros((m, width), np.uint8)
    Wp = np.zeros((min(NC, n), width), np.int8)
    colsum = np.zeros(n, np.int64)  # sum_k w[n, k], for the zero-point term
    m_body = m - m % MR
    for k0 in range(0, k, KC):
        kc = min(KC, k - k0)
        kc_pad = -(-kc // STEP) * STEP
        if kc < kc_max:  # a shorter last chunk: clear what the longer ones left in W's padding
            Wp[:, kc:kc_pad] = 0  # (zero weights make the products zero whatever A's padding holds)
        _pack(mem, inp_at, m, k, k0, kc, a_bits, a_signed, -shift, Ap)
        for j0 in range(0, n, NC):
            nc = min(NC, n - j0)
            _pack(mem, wgt_at + j0 * k, nc, k, k0, kc, w_bits, w_signed, 0, Wp)
            if corr != 0:
                for j in range(nc):
                    s = 0
                    for p in range(kc):
                        s += np.int64(Wp[j, p])
                    colsum[j0 + j] += s
            n_body = nc - nc % NR
            for i in range(0, m_body, MR):
                for j in range(0, n_body, NR):
                    vnni_block(Ap, Wp, C, i, j, j0 + j, kc_pad)
            for i in range(m):  # right and bottom edges
                j_from = n_body if i < m_body else 0
                for j in range(j_from, nc):
                    _dot(Ap, Wp, C, i, j, j0 + j, kc)
    if corr != 0:  # row by row (contiguous); every exact result fits int32
        for i in range(m):
            row = C[i]
            for j in range(n):
                row[j] = np.int32(np.int64(row[j]) - corr * colsum[j])


@njit(cache=True, boundscheck=False)
def _write_acc(mem, acc_at, C, accumulate, acc_bits):
    """Store the (exact) sums wrapped to acc_bits; returns how many wrapped (overflowed)."""
    m, n = C.shape
    overflows = 0
    for i in range(m):
        acc = mem[acc_at + i * n: acc_at + (i + 1) * n]
        for j in range(n):
            v = np.int64(C[i, j]) + acc[j] if accumulate else np.int64(C[i, j])
            w = wrap(v, acc_bits)
            overflows += w != v
            acc[j] = w
    return overflows


@njit(cache=True)
def uses_int16_panels(a_bits, w_bits):
    """Operands of at most 8 bits (4x4, 8x4, 8x8) run on int16 panels with int32 sums."""
    return a_bits <= 8 and w_bits <= 8


@njit(cache=True)
def uses_vnni(a_bits, w_bits, w_signed, w_zp):
    """On an AVX512-VNNI CPU: activations of at most 8 bits and signed symmetric weights of at
    most 8 bits (zero point 0, the usual case) run the u8 x s8 ``vpdpbusd`` micro-kernel."""
    return HAS_VNNI and a_bits <= 8 and w_bits <= 8 and w_signed and w_zp == 0


@njit(cache=True, boundscheck=False)
def gemm(mem, cfg, inp_at, wgt_at, acc_at, m, n, k, accumulate):
    """GEMM: ACC[m,n] (+)= sum_k (INP[m,k] - a_zp) * (WGT[n,k] - w_zp), wrapped to acc_bits.

    Returns the number of accumulators whose exact value did not fit acc_bits (they wrapped).
    """
    kc = min(KC, k)
    if uses_vnni(cfg[CFG_A_BITS], cfg[CFG_W_BITS], cfg[CFG_W_SIGNED], cfg[CFG_W_ZP]):
        C32 = np.zeros((m, n), np.int32)
        _gemm_vnni(mem, cfg, inp_at, wgt_at, m, n, k, C32)
        return _write_acc(mem, acc_at, C32, accumulate, cfg[CFG_ACC_BITS])
    if uses_int16_panels(cfg[CFG_A_BITS], cfg[CFG_W_BITS]):
        C32 = np.zeros((m, n), np.int32)
        _gemm_panels(mem, cfg, inp_at, wgt_at, m, n, k, C32,
                     np.empty((m, kc), np.int16), np.empty((min(NC, n), kc), np.int16), False)
        return _write_acc(mem, acc_at, C32, accumulate, cfg[CFG_ACC_BITS])
    else:
        C64 = np.zeros((m, n), np.int64)
        _gemm_panels(mem, cfg, inp_at, wgt_at, m, n, k, C64,
                     np.empty((m, kc), np.int32), np.empty((min(NC, n), kc), np.int32), True)
        return _write_acc(mem, acc_at, C64, accumulate, cfg[CFG_ACC_BITS])


@njit(cache=True, boundscheck=False)
def dwconv(mem, cfg, inp_at, wgt_at, acc_at, m, r, c, accumulate):
    """DWCONV: ACC[m,c] (+)= sum_r (INP[m,r,c] - a_zp) * (WGT[r,c] - w_zp); channels vectorize.

    Returns the number of accumulators that wrapped.
    """
    a_bits, a_signed, a_zp = cfg[CFG_A_BITS], cfg[CFG_A_SIGNED], cfg[CFG_A_ZP]
    w_bits, w_signed, w_zp = cfg[CFG_W_BITS], cfg[CFG_W_SIGNED], cfg[CFG_W_ZP]
    acc_bits = cfg[CFG_ACC_BITS]
    w = np.empty(r * c, np.int64)
    for q in range(r * c):
        w[q] = operand(mem[wgt_at + q], w_bits, w_signed) - w_zp
    s = np.empty(c, np.int64)
    overflows = 0
    for i in range(m):
        s[:] = 0
        for t in range(r):
            row = mem[inp_at + (i * r + t) * c: inp_at + (i * r + t + 1) * c]
            wt = w[t * c:(t + 1) * c]
            for ch in range(c):
                s[ch] += (operand(row[ch], a_bits, a_signed) - a_zp) * wt[ch]
        acc = mem[acc_at + i * c: acc_at + (i + 1) * c]
        for ch in range(c):
            v = s[ch] + acc[ch] if accumulate else s[ch]
            wrapped = wrap(v, acc_bits)
            overflows += wrapped != v
            acc[ch] = wrapped
    return overflows
