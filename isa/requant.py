"""Requantization: accumulator -> output integer, in the three named modes.

* ``fp32``          ONNX Runtime (MLAS ``MlasRequantizeOutput``), Gemmini, XNNPACK:
                    ``v = float32(acc + bias) * float32 scale``; clamp to [qmin-zp, qmax-zp] in
                    float (NaN -> qmin-zp); round half to even; add zp.
* ``fixed_double``  TFLite reference default / gemmlowp: SaturatingRoundingDoublingHighMul then
                    RoundingDivideByPOT, both rounding half away from zero.
* ``fixed_single``  TFLite built with TFLITE_SINGLE_ROUNDING:
                    ``(int64(x) * M0 + 2^(t-1)) >> t`` with ``t = 31 - shift``.
* ``fixed_double_up`` LiteRT's optimized built-in kernels (conv, fully connected, depthwise in whole
                    groups of 8 channels): SaturatingRoundingDoublingHighMul, then a right shift
                    rounding half toward +infinity, ``(y + 2^(e-1)) >> e``.
* ``fp64_away``     LiteRT's reference fully connected kernel: ``round(double(x) * multiplier)``,
                    the multiplier a binary64 (s_in * s_w / s_out in double), ties away from zero;
                    the PRM table holds its bits, the low word in the multiplier column and the high
                    word in the shift column.
* ``fixed_shared``  VADD only, XNNPACK's qs8 / qu8 add: both inputs scaled by integer multipliers
                    at one shared shift and rounded once, ``((a - a_zp) * a_m + (b - b_zp) * b_m
                    + 2^(s-1)) >> s`` (ties toward +infinity); REQUANT and VMUL refuse it.

Integers are int64 numpy arrays; 32-bit operations wrap like two's-complement hardware
(:func:`wrap`).  Accumulators wider than 32 bits use TFLite's int64 MultiplyByQuantizedMultiplier
(16-bit reduced multiplier, one rounding) in every fixed-point mode.
"""

from __future__ import annotations

import math

import numpy as np

INT32_MIN = -(1 << 31)
INT32_MAX = (1 << 31) - 1
MODES = ("fp32", "fixed_double", "fixed_single", "fixed_double_up", "fp64_away", "fixed_shared")


def wrap(x: np.ndarray | int, bits: int) -> np.ndarray:
    """Two's-complement wrap of integers to ``bits`` bits (1..64)."""
    x = np.asarray(x, dtype=np.int64)
    if bits == 64:
        return x
    m = np.int64(1) << np.int64(bits)
    half = np.int64(1) << np.int64(bits - 1)
    return ((x + half) & (m - 1)) - half


def quantize_multiplier(real: float, *, single_rounding: bool = False) -> tuple[int, int]:
    """TFLite ``QuantizeMultiplier``: real = M0 * 2^(shift - 31), M0 in [2^30, 2^31).

    ``q, shift = frexp(real)``; ``M0 = round_half_away(q * 2^31)``; M0 == 2^31 -> 2^30 with
    shift + 1; shift < -31 flushes to (0, 0); with single rounding shift > 30 saturates to
    (2^31 - 1, 30).  ``real == 0`` gives (0, 0).
    """
    if real == 0.0:
        return 0, 0
    if not math.isfinite(real):
        raise ValueError(f"multiplier {real} is not finite")
    q, shift = math.frexp(real)
    q_fixed = int(math.copysign(math.floor(abs(q) * (1 << 31) + 0.5), q))  # round half away
    if q_fixed == (1 << 31):
        q_fixed //= 2
        shift += 1
    if shift < -31:
        shift, q_fixed = 0, 0
    if single_rounding and shift > 30:
        shift, q_fixed = 30, (1 << 31) - 1
    return q_fixed, shift


def srdhm(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """gemmlowp SaturatingRoundingDoublingHighMul of int32 values.

    ``(a*b + nudge) / 2^31`` with C's truncating division, nudge = 2^30 if a*b >= 0 else
    1 - 2^30; the single overflow case a == b == INT32_MIN gives INT32_MAX.
    """
    a = np.asarray(a, dtype=np.int64)
    b = np.asarray(b, dtype=np.int64)
    ab = a * b
    nudge = np.where(ab >= 0, np.int64(1 << 30), np.int64(1 - (1 << 30)))
    num = ab + nudge
    q = num >> 31  # floor
    q = q + ((num < 0) & ((num & ((1 << 31) - 1)) != 0))  # to truncation toward zero
    return np.where((a == INT32_MIN) & (b == INT32_MIN), np.int64(INT32_MAX), q)


def rounding_divide_by_pot(x: np.ndarray, exponent: np.ndarray | int) -> np.ndarray:
    """gemmlowp RoundingDivideByPOT: x / 2^exponent rounded half away from zero (0 <= exp <= 31)."""
    x = np.asarray(x, dtype=np.int64)
    e = np.asarray(exponent, dtype=np.int64)
    mask = (np.int64(1) << e) - 1
    remainder = x & mask
    threshold = (mask >> 1) + (x < 0)
    return (x >> e) + (remainder > threshold)


def rounding_shift_up(x: np.ndarray, exponent: np.ndarray | int) -> np.ndarray:
    """x / 2^exponent rounded half toward +infinity: ``(x + 2^(e-1)) >> e`` (0 <= e <= 31)."""
    x = np.asarray(x, dtype=np.int64)
    e = np.asarray(exponent, dtype=np.int64)
    return (x + ((np.int64(1) << e) >> 1)) >> e


def multiply_by_quantized_multiplier(x: np.ndarray, m0: np.ndarray, shift: np.ndarray,
                                     *, single_rounding: bool, wide: bool = False,
                                     shift_up: bool = False) -> np.ndarray:
    """TFLite ``MultiplyByQuantizedMultiplier`` (int32 result, wrapped like C++ int32).

    Double rounding (int32 x): ``RDBPOT(SRDHM(wrap32(x << max(shift, 0)), m0), max(-shift, 0))``;
    ``shift_up`` (LiteRT's optimized kernels) rounds the final shift half up instead
    (:func:`rounding_shift_up`).
    Single rounding (int32 x): ``(x * m0 + 2^(t-1)) >> t``, ``t = 31 - shift``.
    ``wide`` (int64 x, both builds): m0 reduced to 16 bits, ``rm = m0 < 0x7FFF0000 ?
    (m0 + 2^15) >> 16 : 0x7FFF``; ``(x * rm + 2^(t-1)) >> t`` with ``t = 15 - shift``.
    """
    x = np.asarray(x, dtype=np.int64)
    m0 = np.asarray(m0, dtype=np.int64)
    shift = np.asarray(shift, dtype=np.int64)
    if wide:
        rm = np.where(m0 < 0x7FFF0000, (m0 + (1 << 15)) >> 16, np.int64(0x7FFF))
        t = 15 - shift
        return wrap((x * rm + (np.int64(1) << (t - 1))) >> t, 32)
    if single_rounding:
        t = 31 - shift
        return wrap((x * m0 + (np.int64(1) << (t - 1))) >> t, 32)
    left = np.maximum(shift, 0)
    right = np.maximum(-shift, 0)
    high = srdhm(wrap(x << left, 32), m0)
    return rounding_shift_up(high, right) if shift_up else rounding_divide_by_pot(high, right)


def fp64_words(multiplier: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """A binary64 multiplier's bits as the PRM table's (multiplier, shift) words: low, high 32 bits
    (each as a signed int32 value)."""
    bits = np.asarray(multiplier, dtype=np.float64).view(np.uint64)
    low = (bits & np.uint64(0xFFFFFFFF)).astype(np.int64)
    high = (bits >> np.uint64(32)).astype(np.int64)
    return wrap(low, 32), wrap(high, 32)


def fp64_from_words(low: np.ndarray, high: np.ndarray) -> np.ndarray:
    """The binary64 multipliers whose bits are (low, high) 32-bit words (``fp64_words``'s inverse)."""
    lo = np.asarray(low, dtype=np.int64) & 0xFFFFFFFF
    hi = np.asarray(high, dtype=np.int64) & 0xFFFFFFFF
    return ((hi << 32) | lo).astype(np.uint64).view(np.float64)


def round_half_away(v: np.ndarray) -> np.ndarray:
    """C's ``round``: to the nearest integer, halves away from zero, exactly (float64 in, out)."""
    v = np.asarray(v, dtype=np.float64)
    t = np.trunc(v)
    return t + np.where(np.abs(v - t) >= 0.5, np.sign(v), 0.0)  # v - t is exact


def requant_fp64_away(x: np.ndarray, multiplier: np.ndarray) -> np.ndarray:
    """LiteRT's reference fully connected: ``round(double(x) * multiplier)`` (ties away from zero),
    saturated to int32.  x is exact in binary64 (|x| < 2^48)."""
    v = round_half_away(np.asarray(x, dtype=np.int64).astype(np.float64) * np.asarray(multiplier, np.float64))
    return np.clip(v, INT32_MIN, INT32_MAX).astype(np.int64)


def add_shared(a: np.ndarray, b: np.ndarray, a_mult: int, b_mult: int, shift: int) -> np.ndarray:
    """XNNPACK's add (``fixed_shared``) of zero-point-free operands: ``(a * a_mult + b * b_mult +
    2^(shift-1)) >> shift`` in int32 arithmetic (an arithmetic shift: ties toward +infinity)."""
    a = np.asarray(a, dtype=np.int64)
    b = np.asarray(b, dtype=np.int64)
    acc = wrap(a * a_mult + b * b_mult + (np.int64(1) << np.int64(shift - 1)), 32)
    return acc >> np.int64(shift)


def fma_f32(a: np.ndarray, b: np.ndarray, c: np.ndarray) -> np.ndarray:
    """float32 fused multiply-add, rounded once (IEEE fmaf), for float32 inputs.

    The product of two float32 is exact in float64; ``s = p + c`` with its exact error ``e``
    (Knuth's two-sum); rounding ``s`` to float32 is then correct unless ``s`` is exactly halfway
    between two float32 values and ``e`` breaks the tie.
    """
    a, b, c = (np.asarray(v, dtype=np.float32) for v in (a, b, c))
    p = a.astype(np.float64) * b.astype(np.float64)
    c64 = c.astype(np.float64)
    s = p + c64
    bb = s - p
    e = (p - (s - bb)) + (c64 - bb)
    with np.errstate(over="ignore", invalid="ignore"):
        r = s.astype(np.float32)
        up = np.nextafter(r, np.float32(np.inf))
        down = np.nextafter(r, np.float32(-np.inf))
        r64 = r.astype(np.float64)
        tie_up = (up.astype(np.float64) - s == s - r64) & (s > r64)      # s halfway between r and up
        tie_down = (s - down.astype(np.float64) == r64 - s) & (s < r64)  # s halfway between down and r
    out = np.where(tie_up & (e < 0), r, np.where(tie_up & (e > 0), up, r))
    out = np.where(tie_down & (e > 0), r, np.where(tie_down & (e < 0), down, out))
    # when s sits exactly on a midpoint, astype chose the even neighbour; e decides instead
    out = np.where(tie_up & (e == 0), r, out)
    return out.astype(np.float32)


def add_fp32(a: np.ndarray, b: np.ndarray, ratio_a: np.float32, ratio_b: np.float32, a_zp: int, b_zp: int,
             zp: int, qmin: int, qmax: int) -> np.ndarray:
    """ONNX Runtime's QLinearAdd on x86-64 (MLAS AVX2 kernel), bit for bit.

    ``F = float32(zp) - fma(rA, a_zp, rB * b_zp)`` (the compiler contracts ``rA*za + rB*zb``),
    ``v = fma(a, rA, fma(b, rB, F))`` on the raw integers, then round half to even and saturate
    (NaN -> qmin); rA = s_a / s_c and rB = s_b / s_c in float32.
    """
    ra, rb = np.float32(ratio_a), np.float32(ratio_b)
    with np.errstate(over="ignore", invalid="ignore"):
        fixed = np.float32(np.float32(zp) - fma_f32(ra, np.float32(a_zp), rb * np.float32(b_zp)))
        v = fma_f32(np.asarray(a, np.float32), ra, fma_f32(np.asarray(b, np.float32), rb, fixed))
    lo, hi = np.float32(qmin), np.float32(qmax)
    v = np.where(np.isnan(v), lo, np.clip(v, lo, hi))
    return np.rint(v).astype(np.int64)


def mul_fp32(a: np.ndarray, b: np.ndarray, ratio: np.float32, a_zp: int, b_zp: int, zp: int, qmin: int,
             qmax: int) -> np.ndarray:
    """ONNX Runtime's QLinearMul (MLAS), bit for bit.

    ``p = (a - a_zp) * (b - b_zp)`` as an exact integer (int64), ``v = float32(float32(p) * ratio)
    + float32(zp)`` with two float32 roundings (no fused multiply-add), then saturate (NaN -> qmin)
    and round half to even; ratio = float32(float32(s_a * s_b) / s_c).
    """
    p = (np.asarray(a, dtype=np.int64) - a_zp) * (np.asarray(b, dtype=np.int64) - b_zp)
    with np.errstate(over="ignore", invalid="ignore"):
        v = (p.astype(np.float32) * np.float32(ratio)).astype(np.float32) + np.float32(zp)
    lo, hi = np.float32(qmin), np.float32(qmax)
    v = np.where(np.isnan(v), lo, np.clip(v, lo, hi))
    return np.rint(v).astype(np.int64)


def requant_fp32(x: np.ndarray, scale: np.ndarray, zp: int, qmin: int, qmax: int) -> np.ndarray:
    """MLAS float requantization of integers ``x`` (acc + bias) with float32 ``scale``."""
    with np.errstate(over="ignore", invalid="ignore"):
        v = np.asarray(x, dtype=np.int64).astype(np.float32) * np.asarray(scale, dtype=np.float32)
    lo, hi = np.float32(qmin - zp), np.float32(qmax - zp)
    v = np.where(np.isnan(v), lo, np.clip(v, lo, hi))
    return np.rint(v).astype(np.int64) + zp


def requantize(acc: np.ndarray, bias: np.ndarray, mult: np.ndarray, shift: np.ndarray,
               scale: np.ndarray, *, mode: str, acc_bits: int, zp: int, qmin: int,
               qmax: int) -> np.ndarray:
    """Requantize accumulators (last axis = channel) with per-channel parameters.

    ``x = wrap(acc + bias, acc_bits)``; then ``fp32``: :func:`requant_fp32` with ``scale``;
    fixed modes: ``wrap32(MBQM(x, mult, shift) + zp)`` clamped to [qmin, qmax]; ``fp64_away``:
    ``wrap32(requant_fp64_away(x, m) + zp)`` clamped, m the binary64 whose bits (low, high) are
    (mult, shift).
    """
    x = wrap(np.asarray(acc, dtype=np.int64) + np.asarray(bias, dtype=np.int64), acc_bits)
    if mode == "fp32":
        return requant_fp32(x, scale, zp, qmin, qmax)
    if mode not in MODES:
        raise ValueError(f"unknown requant mode {mode!r}")
    if mode == "fp64_away":
        y = requant_fp64_away(x, fp64_from_words(mult, shift))
    else:
        y = multiply_by_quantized_multiplier(x, mult, shift, single_rounding=mode == "fixed_single",
                                             wide=acc_bits > 32, shift_up=mode == "fixed_double_up")
    return np.clip(wrap(y + zp, 32), qmin, qmax)
