"""Vector-unit kernels: VADD, VMUL, VMAX, VMIN, MAXPOOL, AVGPOOL, SUMPOOL, SHR, VLUT (twins of the
golden functions of the same names).  Loops run over contiguous elements or channels and vectorize;
VADD and VMUL walk a broadcast b (period bn) one period at a time.

The golden semantics read every operand before writing; where a destination range overlaps a
source range the kernels compute into a temporary first, so in-place and shifted operands give
the golden result too.
"""

from __future__ import annotations

import numpy as np
from numba import njit, uintp

from .common import INLINE, fma_f32, type_range, wrap, wrap32
from .requant import check_multipliers, clamp_output, mbqm, round_clamp_fp32, round_fp32
from .state import (CFG_A_ZP, CFG_ACC_BITS, CFG_CLAMP_MAX, CFG_CLAMP_MIN, CFG_MODE, CFG_O_BITS,
                    CFG_O_SIGNED, CFG_O_ZP, ERR_LEFT_SHIFT_RANGE, ERR_SHARED_PARAMS, ERR_VECTOR_MODE, MODE_FIXED_SHARED,
                    MODE_FIXED_SINGLE, MODE_FP32, OK)


@njit(**INLINE)
def _overlaps(a_at, a_n, b_at, b_n):
    return a_at < b_at + b_n and b_at < a_at + a_n


@njit(cache=True, boundscheck=False)
def _commit(mem, dst_at, values, word_bits):
    dst = mem[dst_at:dst_at + values.size]
    if word_bits == 32:
        for j in range(values.size):
            dst[j] = wrap32(values[j])
    else:
        dst[:] = values


@njit(**INLINE)
def _f32_bits(word):
    """The float32 whose bits are the low 32 bits of ``word``."""
    bits = np.empty(1, np.int32)
    bits[0] = np.int32(wrap32(word))
    return bits.view(np.float32)[0]


@njit(**INLINE)
def _operands(mem, cfg, a_at, b_at, n, bn):
    """VADD's and VMUL's shared set-up: output zero point, type range, clamp, b's period, a and b."""
    lo, hi = type_range(cfg[CFG_O_BITS], cfg[CFG_O_SIGNED])
    period = bn if bn > 0 else n
    return (cfg[CFG_O_ZP], lo, hi, cfg[CFG_CLAMP_MIN], cfg[CFG_CLAMP_MAX], period,
            mem[a_at:a_at + n], mem[b_at:b_at + period])


@njit(**INLINE)
def _in_place_or_apart(a_at, b_at, dst_at, n, period):
    """The destination is a itself or apart from it, and b itself (no broadcast) or apart from it:
    each element is read before it is written, so no temporary is needed."""
    a_ok = dst_at == a_at or not _overlaps(dst_at, n, a_at, n)
    b_ok = (dst_at == b_at and period == n) or not _overlaps(dst_at, n, b_at, period)
    return a_ok and b_ok


@njit(cache=True, boundscheck=False)
def _vadd_fp32(mem, a_at, b_at, dst_at, n, period, fa, fb, fixed, lo, hi, cmin, cmax):
    """VADD's fp32 mode straight into the destination words: fma(a, fa, fma(b, fb, fixed)), then
    requant.py's clamp (NaN -> lo), round half to even and output clamp, in int32 lanes; unsigned
    indices and no views."""
    flo, fhi = np.float32(lo), np.float32(hi)
    qlo = np.int32(min(max(lo, cmin), hi))
    qhi = np.int32(max(min(hi, cmax), lo))
    zero = np.int32(0)
    for j0 in range(0, n, period):
        for t in range(min(period, n - j0)):
            j = uintp(j0 + t)
            v = fma_f32(np.float32(mem[uintp(a_at) + j]), fa, fma_f32(np.float32(mem[uintp(b_at + t)]), fb, fixed))
            mem[uintp(dst_at) + j] = round_clamp_fp32(v, flo, fhi, zero, qlo, qhi)


@njit(cache=True, boundscheck=False)
def vadd(mem, cfg, a_at, b_at, dst_at, n, bn, prm_at, word_bits):
    """VADD: dst = clamp(rescale(a - a_zp) + rescale(b - b_zp) + o_zp), b[j % bn] if bn > 0; returns a status."""
    rec = np.empty(9, np.int64)
    for q in range(9):
        rec[q] = wrap32(mem[prm_at + q])
    a_zp, b_zp, a_m, a_sh, b_m, b_sh, o_m, o_sh, left = (rec[0], rec[1], rec[2], rec[3], rec[4],
                                                          rec[5], rec[6], rec[7], rec[8])
    zp, lo, hi, cmin, cmax, period, a, b = _operands(mem, cfg, a_at, b_at, n, bn)
    if cfg[CFG_MODE] == MODE_FP32 and _in_place_or_apart(a_at, b_at, dst_at, n, period):
        fa, fb = _f32_bits(a_m), _f32_bits(b_m)
        fixed = np.float32(np.float32(zp) - fma_f32(fa, np.float32(a_zp), np.float32(fb * np.float32(b_zp))))
        _vadd_fp32(mem, a_at, b_at, dst_at, n, period, fa, fb, fixed, lo, hi, cmin, cmax)
        return OK
    out = np.empty(n, np.int64)
    if cfg[CFG_MODE] == MODE_FP32:
        fa, fb = _f32_bits(a_m), _f32_bits(b_m)
        fixed = np.float32(np.float32(zp) - fma_f32(fa, np.float32(a_zp), np.float32(fb * np.float32(b_zp))))
        for j0 in range(0, n, period):  # ONNX Runtime's QLinearAdd (MLAS AVX2): fma(a, rA, fma(b, rB, F))
            for t in range(min(period, n - j0)):
                v = fma_f32(np.float32(a[j0 + t]), fa, fma_f32(np.float32(b[t]), fb, fixed))
                out[j0 + t] = clamp_output(round_fp32(v, 0, lo, hi), cmin, cmax, lo, hi)
    elif cfg[CFG_MODE] == MODE_FIXED_SHARED:  # XNNPACK's add: one rounding at the shared shift o_sh
        if a_m < 0 or b_m < 0 or o_sh < 1 or o_sh > 31:
            return ERR_SHARED_PARAMS
        half = np.int64(1) << (o_sh - 1)
        for j0 in range(0, n, period):
            for t in range(min(period, n - j0)):
                acc = wrap32((a[j0 + t] - a_zp) * a_m + (b[t] - b_zp) * b_m + half)
                out[j0 + t] = clamp_output(wrap32((acc >> o_sh) + zp), cmin, cmax, lo, hi)
    else:
        if cfg[CFG_MODE] > MODE_FIXED_SINGLE:
            return ERR_VECTOR_MODE
        if left < 0 or left > 30:
            return ERR_LEFT_SHIFT_RANGE
        mults = np.array([a_m, b_m, o_m])
        shifts = np.array([a_sh, b_sh, o_sh])
        status = check_multipliers(mults, shifts, False)
        if status != OK:
            return status
        single = cfg[CFG_MODE] == MODE_FIXED_SINGLE
        for j0 in range(0, n, period):
            for t in range(min(period, n - j0)):
                sa = mbqm(wrap32((a[j0 + t] - a_zp) << left), a_m, a_sh, single, False)
                sb = mbqm(wrap32((b[t] - b_zp) << left), b_m, b_sh, single, False)
                y = wrap32(mbqm(wrap32(sa + sb), o_m, o_sh, single, False) + zp)
                out[j0 + t] = clamp_output(y, cmin, cmax, lo, hi)
    _commit(mem, dst_at, out, word_bits)
    return OK


@njit(cache=True, boundscheck=False)
def vmul(mem, cfg, a_at, b_at, dst_at, n, bn, prm_at, word_bits):
    """VMUL: dst = clamp(rescale((a - a_zp) * (b - b_zp)) + o_zp), b[j % bn] when bn > 0; returns a
    status.  fp32: ONNX Runtime's QLinearMul, float32(float32(p) * ratio) + float32(o_zp), no FMA."""
    a_zp, b_zp = wrap32(mem[prm_at]), wrap32(mem[prm_at + 1])
    mult, shift = wrap32(mem[prm_at + 2]), wrap32(mem[prm_at + 3])
    zp, lo, hi, cmin, cmax, period, a, b = _operands(mem, cfg, a_at, b_at, n, bn)
    out = np.empty(n, np.int64)
    if cfg[CFG_MODE] == MODE_FP32:
        ratio = _f32_bits(mult)
        fzp = np.float32(zp)
        for j0 in range(0, n, period):
            for t in range(min(period, n - j0)):
                p = (a[j0 + t] - a_zp) * (b[t] - b_zp)
                v = np.float32(np.float32(np.float32(p) * ratio) + fzp)  # two float32 roundings
                out[j0 + t] = clamp_output(round_fp32(v, 0, lo, hi), cmin, cmax, lo, hi)
    else:
        if cfg[CFG_MODE] > MODE_FIXED_SINGLE:
            return ERR_VECTOR_MODE
        status = check_multipliers(np.array([mult]), np.array([shift]), False)
        if status != OK:
            return status
        single = cfg[CFG_MODE] == MODE_FIXED_SINGLE
        for j0 in range(0, n, period):
            for t in range(min(period, n - j0)):
                p = wrap32((a[j0 + t] - a_zp) * (b[t] - b_zp))
                y = wrap32(mbqm(p, mult, shift, single, False) + zp)
                out[j0 + t] = clamp_output(y, cmin, cmax, lo, hi)
    _commit(mem, dst_at, out, word_bits)
    return OK


@njit(cache=True, boundscheck=False)
def _minmax(mem, a_at, b_at, dst_at, n, word_bits, take_max):
    direct = not (_overlaps(dst_at, n, a_at, n) and dst_at != a_at) and \
        not (_overlaps(dst_at, n, b_at, n) and dst_at != b_at)
    a = mem[a_at:a_at + n]
    b = mem[b_at:b_at + n]
    out = mem[dst_at:dst_at + n] if direct else np.empty(n, np.int64)
    if take_max:
        for j in range(n):
            out[j] = a[j] if a[j] > b[j] else b[j]
    else:
        for j in range(n):
            out[j] = a[j] if a[j] < b[j] else b[j]
    _commit(mem, dst_at, out, word_bits)  # in place when direct: only the 32-bit wrap
    return OK


@njit(cache=True, boundscheck=False)
def vmax(mem, a_at, b_at, dst_at, n, word_bits):
    """VMAX: dst[j] = max(a[j], b[j])."""
    return _minmax(mem, a_at, b_at, dst_at, n, word_bits, True)


@njit(cache=True, boundscheck=False)
def vmin(mem, a_at, b_at, dst_at, n, word_bits):
    """VMIN: dst[j] = min(a[j], b[j])."""
    return _minmax(mem, a_at, b_at, dst_at, n, word_bits, False)


@njit(cache=True, boundscheck=False)
def _window_reduce(mem, src_at, m, r, c, op, offset):
    """out[i, ch] = max (op 0) or sum (op 1) over t of mem[src_at + (i*r + t)*c + ch] - offset."""
    out = np.empty(m * c, np.int64)
    for i in range(m):
        o = out[i * c:(i + 1) * c]
        first = mem[src_at + i * r * c: src_at + i * r * c + c]
        for ch in range(c):
            o[ch] = first[ch] - offset
        for t in range(1, r):
            row = mem[src_at + (i * r + t) * c: src_at + (i * r + t + 1) * c]
            if op == 0:
                for ch in range(c):
                    o[ch] = o[ch] if o[ch] > row[ch] else row[ch]
            else:
                for ch in range(c):
                    o[ch] += row[ch] - offset
    return out


@njit(cache=True, boundscheck=False)
def maxpool(mem, src_at, dst_at, m, r, c, word_bits):
    """MAXPOOL: dst[m,c] = max_r src[m,r,c]."""
    _commit(mem, dst_at, _window_reduce(mem, src_at, m, r, c, np.int64(0), np.int64(0)), word_bits)
    return OK


@njit(cache=True, boundscheck=False)
def avgpool(mem, cfg, src_at, dst_at, m, r, c, divisor, word_bits, even):
    """AVGPOOL: dst = clamp(sum_r src / divisor), rounded half away from zero, or half to even."""
    total = _window_reduce(mem, src_at, m, r, c, np.int64(1), np.int64(0))
    lo, hi = type_range(cfg[CFG_O_BITS], cfg[CFG_O_SIGNED])
    cmin, cmax = cfg[CFG_CLAMP_MIN], cfg[CFG_CLAMP_MAX]
    half = divisor // 2
    for j in range(total.size):
        t = total[j]
        if even:
            q = t // divisor  # floor (Python semantics in Numba)
            rem2 = 2 * (t - q * divisor)
            if rem2 > divisor or (rem2 == divisor and q % 2 != 0):
                q += 1
        else:
            q = (t + half) // divisor if t > 0 else -((half - t) // divisor)
        total[j] = clamp_output(q, cmin, cmax, lo, hi)
    _commit(mem, dst_at, total, word_bits)
    return OK


@njit(cache=True, boundscheck=False)
def sumpool(mem, cfg, src_at, acc_at, m, r, c, accumulate):
    """SUMPOOL: ACC[m,c] (+)= sum_r (src[m,r,c] - a_zp), wrapped to acc_bits; returns the wraps."""
    total = _window_reduce(mem, src_at, m, r, c, np.int64(1), cfg[CFG_A_ZP])
    acc_bits = cfg[CFG_ACC_BITS]
    acc = mem[acc_at:acc_at + total.size]
    overflows = 0
    for j in range(total.size):
        v = total[j] + acc[j] if accumulate else total[j]
        total[j] = wrap(v, acc_bits)
        overflows += total[j] != v
    _commit(mem, acc_at, total, np.int64(64))
    return overflows


@njit(cache=True, boundscheck=False)
def shr(mem, src_at, dst_at, n, shift, rnd, word_bits):
    """SHR: dst = src >> shift (arithmetic), or (src + 2^(shift-1)) >> shift when rnd."""
    add = (np.int64(1) << (shift - 1)) if rnd and shift > 0 else np.int64(0)
    src = mem[src_at:src_at + n]
    out = np.empty(n, np.int64) if _overlaps(dst_at, n, src_at, n) and dst_at != src_at \
        else mem[dst_at:dst_at + n]
    for j in range(n):
        out[j] = (src[j] + add) >> shift
    _commit(mem, dst_at, out, word_bits)
    return OK


@njit(cache=True, boundscheck=False)
def vlut(mem, src_at, dst_at, n, prm_at, word_bits):
    """VLUT: dst[j] = PRM[prm + (src[j] & 255)] (a gather from a 256-word table)."""
    table = mem[prm_at:prm_at + 256].copy()  # the destination may overlap the table
    src = mem[src_at:src_at + n]
    out = np.empty(n, np.int64) if _overlaps(dst_at, n, src_at, n) and dst_at != src_at \
        else mem[dst_at:dst_at + n]
    for j in range(n):
        out[j] = table[src[j] & 255]
    _commit(mem, dst_at, out, word_bits)
    return OK
