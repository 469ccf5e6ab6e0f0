"""REQUANT (twin of isa.semantics.requant) and the per-element requantization helpers that VADD
shares.  The mode is chosen once per instruction; the loop over channels then vectorizes
(float32 multiply/clamp/round for fp32, 64-bit multiplies and selects for the fixed modes).
"""

from __future__ import annotations

import numpy as np
from numba import njit, uintp

from .common import INLINE, type_range, wrap32
from .state import (CFG_ACC_BITS, CFG_CLAMP_MAX, CFG_CLAMP_MIN, CFG_MODE, CFG_O_BITS, CFG_O_SIGNED,
                    CFG_O_ZP, ERR_FP64_MULTIPLIER, ERR_NEGATIVE_MULTIPLIER, ERR_REQUANT_MODE, ERR_SHIFT_RANGE, MODE_FIXED_DOUBLE_UP,
                    MODE_FIXED_SHARED, MODE_FIXED_SINGLE, MODE_FP32, MODE_FP64_AWAY, OK)

INT32_MIN = -(1 << 31)
INT32_MAX = (1 << 31) - 1


@njit(**INLINE)
def srdhm(a, b):
    """gemmlowp SaturatingRoundingDoublingHighMul (ties toward +infinity, INT32_MIN^2 saturates)."""
    ab = np.int64(a) * np.int64(b)
    nudge = np.int64(1 << 30) if ab >= 0 else np.int64(1 - (1 << 30))
    num = ab + nudge
    q = num >> 31
    if num < 0 and (num & 0x7FFFFFFF) != 0:
        q += 1
    if a == INT32_MIN and b == INT32_MIN:
        q = INT32_MAX
    return q


@njit(**INLINE)
def rounding_divide_by_pot(x, e):
    """gemmlowp RoundingDivideByPOT: x / 2^e, ties away from zero."""
    mask = (np.int64(1) << e) - 1
    threshold = (mask >> 1) + (1 if x < 0 else 0)
    return (x >> e) + (1 if (x & mask) > threshold else 0)


@njit(**INLINE)
def mbqm(x, m0, shift, single, wide, shift_up=False):
    """TFLite MultiplyByQuantizedMultiplier in the double, single or wide (int64 x) form;
    ``shift_up``: the double form whose last shift rounds half up (``fixed_double_up``)."""
    if wide:
        rm = (m0 + (1 << 15)) >> 16 if m0 < 0x7FFF0000 else np.int64(0x7FFF)
        t = 15 - shift
        return wrap32((x * rm + (np.int64(1) << (t - 1))) >> t)
    if single:
        t = 31 - shift
        return wrap32((x * m0 + (np.int64(1) << (t - 1))) >> t)
    left = shift if shift > 0 else 0
    right = -shift if shift < 0 else 0
    high = srdhm(wrap32(x << left), m0)
    if shift_up:
        return (high + ((np.int64(1) << right) >> 1)) >> right
    return rounding_divide_by_pot(high, right)


@njit(**INLINE)
def fp64_multiplier(low, high):
    """The binary64 whose bits are the PRM words (low, high): ``fp64_away``'s multiplier."""
    bits = np.uint64(((high & 0xFFFFFFFF) << 32) | (low & 0xFFFFFFFF))
    return np.array([bits]).view(np.float64)[0]


@njit(**INLINE)
def round_away_sat32(v):
    """C's ``round`` (halves away from zero) of a float64, saturated to int32."""
    t = np.trunc(v)
    if abs(v - t) >= 0.5:
        t += 1.0 if v > 0 else -1.0
    if t >= 2147483647.0:
        return np.int64(INT32_MAX)
    if t <= -2147483648.0:
        return np.int64(INT32_MIN)
    return np.int64(t)


@njit(**INLINE)
def round_fp32(v, zp, lo, hi):
    """MLAS: clamp in float to [lo - zp, hi - zp] (NaN -> lower), round half to even, + zp."""
    flo = np.float32(lo - zp)
    fhi = np.float32(hi - zp)
    v = flo if v != v else (flo if v < flo else (fhi if v > fhi else v))
    return np.int64(np.rint(v)) + zp


@njit(**INLINE)
def clamp_output(y, cmin, cmax, lo, hi):
    """The CONFIG activation clamp, then saturation to the output type."""
    return min(max(min(max(y, cmin), cmax), lo), hi)


@njit(cache=True, boundscheck=False)
def check_multipliers(mult, shift, wide):
    top = 14 if wide else 30
    for c in range(mult.size):
        if mult[c] < 0:
            return ERR_NEGATIVE_MULTIPLIER
        if shift[c] < -31 or shift[c] > top:
            return ERR_SHIFT_RANGE
    return OK


@njit(**INLINE)
def wrap_acc(x, bits):
    """wrap() for accumulator widths below 64 (CONFIG.acc_bits <= 48): branch-free, vectorizes."""
    half = np.int64(1) << (bits - 1)
    return ((x + half) & ((half << 1) - 1)) - half


@njit(**INLINE)
def round_clamp_fp32(v, flo, fhi, zp, qlo, qhi):
    """Clamp (NaN -> flo), round half to even, add zp, clamp; |v| <= 2^17 after the clamp, so the
    float -> int conversion goes through int32 (vcvtps2dq exists on AVX2, the int64 one does not)."""
    v = flo if v != v else (flo if v < flo else (fhi if v > fhi else v))
    y = np.int32(np.int32(np.rint(v)) + zp)  # all in int32: AVX2 has no 64-bit min/max
    return np.int64(qlo if y < qlo else (qhi if y > qhi else y))


@njit(**INLINE)
def fp32_stage(bias, scale, acc_bits, zp, lo, hi, cmin, cmax):
    """What the fp32 requantization of a row needs, computed once per instruction: (bias, bias as
    int32, scale, acc_bits, float clamp bounds, zp, output bounds).  Clamping to [cmin, cmax] then
    to [lo, hi] is clamping to [qlo, qhi]; all fit int32."""
    qlo = np.int32(min(max(lo, cmin), hi))
    qhi = np.int32(max(min(hi, cmax), lo))
    return (bias, bias.astype(np.int32), scale, acc_bits, np.float32(lo - zp), np.float32(hi - zp), np.int32(zp),
            qlo, qhi)


@njit(**INLINE)
def fp32_rows(src, so, stride, mem, do, m, stage):
    """mem[do + i n + c] = the fp32 requantization (``stage``, n channels) of src[so + i stride + c]
    + bias[c], wrapped to acc_bits, for rows i < m: the accumulators in ACC's words or in a fused
    MAC's int32 sums.  Unsigned indices, no views: rows of few channels."""
    bias, b32, scale, acc_bits, flo, fhi, zp, qlo, qhi = stage
    n = bias.size
    for i in range(m):
        s, d = so + i * stride, do + i * n
        if acc_bits == 32:  # wrapping a sum at 32 bits is int32 addition of the low halves
            for c in range(n):
                x = np.int32(np.int32(src[uintp(s + c)]) + b32[uintp(c)])
                mem[uintp(d + c)] = round_clamp_fp32(np.float32(x) * scale[uintp(c)], flo, fhi, zp, qlo, qhi)
        elif acc_bits < 32:  # the wrapped sum fits int32: int32 -> float32 (vcvtdq2ps on AVX2)
            for c in range(n):
                x = np.int32(wrap_acc(np.int64(src[uintp(s + c)]) + bias[uintp(c)], acc_bits))
                mem[uintp(d + c)] = round_clamp_fp32(np.float32(x) * scale[uintp(c)], flo, fhi, zp, qlo, qhi)
        else:
            for c in range(n):
                x = wrap_acc(np.int64(src[uintp(s + c)]) + bias[uintp(c)], acc_bits)
                mem[uintp(d + c)] = round_clamp_fp32(np.float32(x) * scale[uintp(c)], flo, fhi, zp, qlo, qhi)


@njit(cache=True, boundscheck=False)
def requant_sums(sums, so, stride, mem, do, m, stage):
    """``fp32_rows`` from a MAC's int32 sums (the fused requantization, kernels.mac): one compiled
    function for GEMM's tiles and DWCONV's rows, called, not inlined (less to compile)."""
    fp32_rows(sums, so, stride, mem, do, m, stage)


@njit(cache=True, boundscheck=False)
def _requant_fp32(mem, src_at, dst_at, m, n, bias, scale, acc_bits, zp, lo, hi, cmin, cmax):
    fp32_rows(mem, src_at, n, mem, dst_at, m, fp32_stage(bias, scale, acc_bits, zp, lo, hi, cmin, cmax))


@njit(cache=True, boundscheck=False)
def _requant_fixed(mem, src_at, dst_at, m, n, bias, mult, shift, acc_bits, zp, lo, hi, cmin, cmax,
                   single, wide, shift_up):
    qlo = min(max(lo, cmin), hi)
    qhi = max(min(hi, cmax), lo)
    for i in range(m):
        src = mem[src_at + i * n: src_at + (i + 1) * n]
        dst = mem[dst_at + i * n: dst_at + (i + 1) * n]
        for c in range(n):
            y = wrap32(mbqm(wrap_acc(src[c] + bias[c], acc_bits), mult[c], shift[c], single, wide, shift_up) + zp)
            dst[c] = qlo if y < qlo else (qhi if y > qhi else y)


@njit(cache=True, boundscheck=False)
def _requant_fp64(mem, src_at, dst_at, m, n, bias, mult, shift, acc_bits, zp, lo, hi, cmin, cmax):
    """``fp64_away``: round(double(x) * multiplier[c]) (ties away), + zp, clamped; a status."""
    scale = np.empty(n, np.float64)
    for c in range(n):
        scale[c] = fp64_multiplier(mult[c], shift[c])
        if not (scale[c] >= 0.0 and scale[c] < np.inf):
            return ERR_FP64_MULTIPLIER
    qlo = min(max(lo, cmin), hi)
    qhi = max(min(hi, cmax), lo)
    for i in range(m):
        for c in range(n):
            x = wrap_acc(mem[src_at + i * n + c] + bias[c], acc_bits)
            y = wrap32(round_away_sat32(np.float64(x) * scale[c]) + zp)
            mem[dst_at + i * n + c] = qlo if y < qlo else (qhi if y > qhi else y)
    return OK


@njit(**INLINE)
def _table(mem, prm_at, n):
    """The PRM table of n channels: bias, multiplier (or the fp32 scale's bits) and shift, as int32."""
    bias = np.empty(n, np.int64)
    mult = np.empty(n, np.int64)
    shift = np.empty(n, np.int64)
    for c in range(n):
        bias[c] = wrap32(mem[prm_at + c])
        mult[c] = wrap32(mem[prm_at + n + c])
        shift[c] = wrap32(mem[prm_at + 2 * n + c])
    return bias, mult, shift


@njit(cache=True, boundscheck=False)
def requant_stage(mem, cfg, prm_at, n):
    """The ``fp32_stage`` of a REQUANT in the fp32 mode over n channels of the PRM table at prm_at
    (n = 0: an empty stage, no channels)."""
    bias, mult, _ = _table(mem, prm_at, n)
    lo, hi = type_range(cfg[CFG_O_BITS], cfg[CFG_O_SIGNED])
    return fp32_stage(bias, mult.astype(np.int32).view(np.float32), cfg[CFG_ACC_BITS], cfg[CFG_O_ZP], lo, hi,
                      cfg[CFG_CLAMP_MIN], cfg[CFG_CLAMP_MAX])


@njit(**INLINE)
def _fp32(mem, cfg, src_at, dst_at, m, n, bias, mult):
    lo, hi = type_range(cfg[CFG_O_BITS], cfg[CFG_O_SIGNED])
    scale = mult.astype(np.int32).view(np.float32)
    _requant_fp32(mem, src_at, dst_at, m, n, bias, scale, cfg[CFG_ACC_BITS], cfg[CFG_O_ZP], lo, hi,
                  cfg[CFG_CLAMP_MIN], cfg[CFG_CLAMP_MAX])
    return OK


@njit(cache=True, boundscheck=False)
def requant(mem, cfg, src_at, dst_at, prm_at, m, n, word_bits):
    """REQUANT: dst[m,n] = clamp(requantize(ACC[m,n] + bias[n]) + o_zp); returns a status.

    Outputs lie in the output type's range (at most 16 bits), so they fit any buffer word.
    """
    mode, acc_bits, zp = cfg[CFG_MODE], cfg[CFG_ACC_BITS], cfg[CFG_O_ZP]
    if mode == MODE_FIXED_SHARED:
        return ERR_REQUANT_MODE
    bias, mult, shift = _table(mem, prm_at, n)
    if mode == MODE_FP32:
        return _fp32(mem, cfg, src_at, dst_at, m, n, bias, mult)
    lo, hi = type_range(cfg[CFG_O_BITS], cfg[CFG_O_SIGNED])
    cmin, cmax = cfg[CFG_CLAMP_MIN], cfg[CFG_CLAMP_MAX]
    if mode == MODE_FP64_AWAY:
        return _requant_fp64(mem, src_at, dst_at, m, n, bias, mult, shift, acc_bits, zp, lo, hi, cmin, cmax)
    wide = acc_bits > 32
    status = check_multipliers(mult, shift, wide)
    if status != OK:
        return status
    _requant_fixed(mem, src_at, dst_at, m, n, bias, mult, shift, acc_bits, zp, lo, hi, cmin, cmax,
                   mode == MODE_FIXED_SINGLE, wide, mode == MODE_FIXED_DOUBLE_UP)
    return OK


@njit(cache=True, boundscheck=False)
def requant_fp32(mem, cfg, src_at, dst_at, prm_at, m, n, word_bits):
    """``requant`` for a CONFIG in the fp32 mode, without the fixed-point modes: the value loop of a
    program whose every CONFIG is so links this one (less to compile)."""
    bias, mult, _ = _table(mem, prm_at, n)
    return _fp32(mem, cfg, src_at, dst_at, m, n, bias, mult)
