"""SOFTMAX of 8-bit codes over the last axis, on the host in each engine's arithmetic (no kernel
set's int8 softmax is delegated to XNNPACK, so litert runs the optimized built-in kernel).

- ``opt`` (litert, litert-builtin): a float32 table exp(-s_x beta k) indexed by max - q, the row
  summed in order in float32, p = e * float32(1 / (sum s_y)); int8: round(p) halves away + z_y,
  uint8: (int)(p + 0.5);
- ``ref`` (litert-ref, tflm): gemmlowp fixed point: (q - max) scaled by QuantizeMultiplier(beta s_x
  2^26) into Q5.26, exp_on_negative_values, the sum in Q12.19, its reciprocal by Newton's method,
  the products rounded by 2^(bits over one + 23); differences below -radius give the lowest code.
"""

from __future__ import annotations

import math

import numpy as np

from isa.quant import qrange
from isa.requant import INT32_MAX, INT32_MIN, quantize_multiplier, rounding_divide_by_pot, srdhm, wrap

_INT_BITS = 5


def _mul_pot(x: np.ndarray, e: int) -> np.ndarray:
    """gemmlowp SaturatingRoundingMultiplyByPOT<e> of int32 values."""
    x = np.asarray(x, np.int64)
    if e <= 0:
        return rounding_divide_by_pot(x, -e) if e else x
    limit = (1 << (31 - e)) - 1
    return np.where(x > limit, INT32_MAX, np.where(x < -limit, INT32_MIN, wrap(x << e, 32)))


def _exp_interval(a: np.ndarray) -> np.ndarray:
    """exp on [-1/4, 0) in Q0.31 (gemmlowp exp_on_interval_between_negative_one_quarter_and_0_excl)."""
    x = a + (1 << 28)
    x2 = srdhm(x, x)
    x3 = srdhm(x2, x)
    x4_over_4 = _mul_pot(srdhm(x2, x2), -2)
    tail = _mul_pot(srdhm(x4_over_4 + x3, 715827883) + x2, -1)
    c = 1895147668
    return c + srdhm(c, x + tail)


def exp_on_negative_values(a: np.ndarray) -> np.ndarray:
    """gemmlowp exp_on_negative_values of Q5.26 values, in Q0.31."""
    a = np.asarray(a, np.int64)
    frac = 31 - _INT_BITS
    quarter = 1 << (frac - 2)
    a_mod = (a & (quarter - 1)) - quarter
    result = _exp_interval(_mul_pot(a_mod, _INT_BITS))
    rem = a_mod - a
    for e, m in ((-2, 1672461947), (-1, 1302514674), (0, 790015084), (1, 290630308), (2, 39332535), (3, 720401),
                 (4, 242)):
        result = np.where((rem & (1 << (frac + e))) != 0, srdhm(result, m), result)
    return np.where(a == 0, INT32_MAX, result)


def _one_over_one_plus_x(a: np.ndarray) -> np.ndarray:
    """gemmlowp one_over_one_plus_x_for_x_in_0_1 (three Newton-Raphson steps), Q0.31 in and out."""
    s = np.asarray(a, np.int64) + INT32_MAX
    half = np.where(s >= 0, (s + 1) // 2, -((1 - s) // 2))  # RoundingHalfSum, truncating
    x = 1515870810 + srdhm(half, -1010580540)
    for _ in range(3):
        x = x + _mul_pot(srdhm(x, (1 << 29) - srdhm(half, x)), 2)
    return _mul_pot(x, 1)


def softmax_ref(q: np.ndarray, s_x: float, beta: float, lo: int, hi: int) -> np.ndarray:
    real = min(float(np.float32(beta)) * float(np.float32(s_x)) * (1 << (31 - _INT_BITS)), float(INT32_MAX))
    m, left = quantize_multiplier(real)
    diff_min = -math.floor(((1 << _INT_BITS) - 1) * (1 << (31 - _INT_BITS)) / (1 << left))
    q = np.asarray(q, np.int64)
    diff = q - q.max(axis=-1, keepdims=True)
    valid = diff >= diff_min
    e = exp_on_negative_values(srdhm(wrap(diff << left, 32), m))
    total = wrap(np.where(valid, rounding_divide_by_pot(e, 12), 0).sum(axis=-1, keepdims=True), 32)
    clz = 32 - np.frexp((total & 0xFFFFFFFF).astype(np.float64))[1].astype(np.int64)
    recip = _one_over_one_plus_x(wrap(((total & 0xFFFFFFFF) << clz) - (1 << 31), 32))
    out = rounding_divide_by_pot(srdhm(recip, e), (12 - clz) + 31 - 8) + lo
    return np.where(valid, np.clip(out, lo, hi), lo)


def softmax_opt(q: np.ndarray, s_x: float, beta: float, s_y: float, z_y: int, lo: int, hi: int) -> np.ndarray:
    f = np.float32
    scale = f(-f(s_x) * f(beta))
    with np.errstate(over="ignore"):
        table = np.exp((scale * np.arange(256, dtype=np.float32)).astype(np.float64)).astype(np.float32)
    q = np.asarray(q, np.int64)
    e = table[q.max(axis=-1, keepdims=True) - q]
    total = np.add.accumulate(e, axis=-1, dtype=np.float32)[..., -1:]
    inv = (f(1) / (total * f(s_y)).astype(np.float32)).astype(np.float32)
    p = (e * inv).astype(np.float32)
    if lo < 0:
        t = np.trunc(p)
        out = (t + np.where(np.abs(p - t) >= 0.5, np.sign(p), 0)).astype(np.int64) + z_y
    else:
        out = np.trunc((p + f(0.5)).astype(np.float32)).astype(np.int64)
    return np.clip(out, lo, hi)


def softmax(kernel: str, q: np.ndarray, s_x: float, beta: float, s_y: float, z_y: int, dtype: str) -> np.ndarray:
    """SOFTMAX of codes ``q`` over its last axis in ``kernel``'s arithmetic."""
    lo, hi = qrange(dtype)
    if kernel == "ref":
        return softmax_ref(q, s_x, beta, lo, hi)
    return softmax_opt(q, s_x, beta, s_y, z_y, lo, hi)
