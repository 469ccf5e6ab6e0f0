"""Elementwise maps of 8-bit codes as 256-entry tables (QLut on VLUT): each engine's
arithmetic, evaluated once per code, so the table is exact by construction."""

from __future__ import annotations

import numpy as np

from isa.quant import qrange
from isa.requant import multiply_by_quantized_multiplier, quantize_multiplier

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


def concat_table(engine: Engine, x: QTensor, y: QTensor, clamp: tuple[int, int]) -> np.ndarray:
    """TFLite's ConcatenationWithScaling of one input: round(q * scale + bias) + z_y in float32,
    scale = s_x * (1 / s_y), bias = -z_x * scale, halves away from zero; then the activation range."""
    q = codes_of(x).astype(np.float32)
    scale = np.float32(x.scale) * (np.float32(1.0) / np.float32(y.scale))
    bias = np.float32(-x.zero_point) * scale
    v = q * scale + bias
    r = np.sign(v) * np.floor(np.abs(v) + np.float32(0.5))
    return _table(x, np.clip(r.astype(np.int64) + y.zero_point, *clamp))


def requantize_table(engine: Engine, x: QTensor, y: QTensor) -> np.ndarray:
    """QUANTIZE of an integer tensor (requantize): MultiplyByQuantizedMultiplier of (q - z_x) by
    QuantizeMultiplier(double(s_x) / double(s_y)), plus z_y, saturated."""
    m, shift = quantize_multiplier(float(np.float64(x.scale) / np.float64(y.scale)))
    v = multiply_by_quantized_multiplier(codes_of(x) - x.zero_point, m, shift, single_rounding=False)
    return _table(x, np.clip(v + y.zero_point, *qrange(y.dtype)))
