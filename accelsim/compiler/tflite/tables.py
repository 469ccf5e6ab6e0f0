"""Elementwise maps of 8-bit codes as 256-entry tables (QLut on VLUT): each engine's
arithmetic, evaluated once per code, so the table is exact by construction."""

from __future__ import annotations

import numpy as np

from isa.quant import qrange
from isa.requant import multiply_by_quantized_multiplier, quantize_multiplier, round_half_away

from ..ir import QTensor
from .engines import Engine


def codes_of(x: QTensor) -> np.ndarray:
    """Every code of an 8-bit tensor, in table order (indexed by the code's low 8 bits)."""
    lo, _ = qrange(x.dtype)
    return (np.arange(256, dtype=np.int64) - lo) % 256 + lo if lo < 0 else np.arange(256, dtype=np.int64)


def _table(x: QTensor, values: np.ndarray) -> np.ndarray:
    """Entries in VLUT order: entry (code & 255) holds the value of that code."""
    table = np.zeros(256, np.int64)
    table[codes_of(x) & 255] = values
    return table


def concat_table(x: QTensor, y: QTensor, clamp: tuple[int, int]) -> np.ndarray:
    """TFLite's ConcatenationWithScaling of one input: round(q * scale + bias) + z_y in float32,
    scale = s_x * (1 / s_y), bias = -z_x * scale, halves away from zero; then the activation range."""
    q = codes_of(x).astype(np.float32)
    scale = np.float32(x.scale) * (np.float32(1.0) / np.float32(y.scale))
    bias = np.float32(-x.zero_point) * scale
    r = round_half_away((q * scale + bias).astype(np.float32))
    return _table(x, np.clip(r.astype(np.int64) + y.zero_point, *clamp))


def _expf(v: np.ndarray) -> np.ndarray:
    """float32 exp, correctly rounded (glibc's expf is within 0.502 ulp: the same on these inputs)."""
    with np.errstate(over="ignore"):
        return np.exp(np.asarray(v, np.float32).astype(np.float64)).astype(np.float32)


def logistic_table(engine: Engine, x: QTensor, y: QTensor) -> np.ndarray:
    """LOGISTIC of every code.  TFLite (both built-in sets): t = 1 / (1 + expf(-s_x (q - z_x))) in
    float32, round(t * (1 / s_y)) halves away, + z_y.  XNNPACK: e / (1 + e) of a double exp,
    nearbyint(s * (1 / s_y) + z_y), halves to even."""
    q, f = codes_of(x), np.float32
    if engine.xnnpack:
        v = ((q.astype(np.float32) - f(x.zero_point)) * x.scale).astype(np.float32)
        with np.errstate(over="ignore", invalid="ignore"):
            e = np.exp(v.astype(np.float64))
            s = (e / (1 + e)).astype(np.float32)
        s = np.where(v > 100, f(1), np.where(v < -100, f(0), s)).astype(np.float32)
        out = np.rint((s * (f(1) / y.scale) + f(y.zero_point)).astype(np.float32))
    else:
        d = (x.scale * (q - x.zero_point).astype(np.float32)).astype(np.float32)
        t = (f(1) / (f(1) + _expf(-d))).astype(np.float32)
        out = round_half_away((t * (f(1) / y.scale)).astype(np.float32)) + y.zero_point
    return _table(x, np.clip(out.astype(np.int64), *qrange(y.dtype)))


def _requant_codes(x: QTensor, y: QTensor, up: bool) -> np.ndarray:
    m, shift = quantize_multiplier(float(np.float64(x.scale) / np.float64(y.scale)))
    v = multiply_by_quantized_multiplier(codes_of(x) - x.zero_point, m, shift, single_rounding=False, shift_up=up)
    return _table(x, np.clip(v + y.zero_point, *qrange(y.dtype)))


def requantize_tables(engine: Engine, x: QTensor, y: QTensor, elements: int) -> tuple[np.ndarray, tuple | None]:
    """QUANTIZE of an integer tensor: the table and, where the engine's loop rounds its tail
    apart, (first tail element, tail table).

    Reference kernels: MultiplyByQuantizedMultiplier (double rounding) by
    QuantizeMultiplier(s_x / s_y), + z_y.  LiteRT's optimized kernel: the elements in whole
    blocks of 16 round the last shift half up (its NEON path), the rest as the reference.
    XNNPACK (same type in and out, 1/256 <= s_x / s_y <= 128): m = lrintf(256 s_x / s_y),
    (z_y 256 - m z_x + 128 + q m) >> 8; otherwise the optimized kernel."""
    ratio = np.float32(x.scale / y.scale)
    if engine.xnnpack and x.dtype == y.dtype and 1 / 256 <= ratio <= 128:
        m = int(np.rint(np.float32(256.0) * ratio))
        v = ((y.zero_point << 8) - m * x.zero_point + 0x80 + codes_of(x) * m) >> 8
        return _table(x, np.clip(v, *qrange(y.dtype))), None
    if engine.optimized:
        blocks = elements - elements % 16
        return _requant_codes(x, y, up=True), (blocks, _requant_codes(x, y, up=False))
    return _requant_codes(x, y, up=False), None
