"""MEAN of a quantized tensor in each engine's arithmetic, computed by the host between chip
segments (a QHost step: one vectorised numpy pass; docs/numerics.md, section 7).

- ``ref`` (BUILTIN_REF, tflite-micro, and the optimized set outside its special case):
  QuantizedMeanOrSum: m, sh = QuantizeMultiplier(s_x / s_y), k = min(floor(log2 n), 32, 31 + sh),
  y = MBQM(sum(x) - z_x n, (m << k) // n, sh - k) + z_y;
- ``opt`` (BUILTIN_WITHOUT_DEFAULT_DELEGATES, 4-D, axes {1, 2}, keep_dims): MBQM of the sum of
  the codes by QuantizeMultiplier(float32(s_x / (n s_y))) plus z_y - round(z_x s_x / s_y); the
  channels in whole blocks of 16 round the last shift half up (its NEON path), the rest half away;
- ``xnn`` (litert, XNNPACK): nearbyint(float32(sum * sc) + z'), sc = float32(s_x / s_y) *
  float32(1 / n), z' = z_y - float32(n z_x) * sc.
"""

from __future__ import annotations

import math

import numpy as np

from isa.quant import qrange
from isa.requant import multiply_by_quantized_multiplier, quantize_multiplier

from ..ir import QTensor


def _mbqm(x: np.ndarray, m: int, shift: int, up: bool = False) -> np.ndarray:
    return multiply_by_quantized_multiplier(x, m, shift, single_rounding=False, shift_up=up)


def mean_ref(x: np.ndarray, axes: tuple, keep: bool, xq: QTensor, yq: QTensor) -> np.ndarray:
    n = int(np.prod([x.shape[a] for a in axes]))
    m, sh = quantize_multiplier(float(np.float64(xq.scale) / np.float64(yq.scale)))
    k = min(int(math.log2(n)) if n else 0, 32, 31 + sh)
    total = np.asarray(x, np.int64).sum(axis=axes, keepdims=keep) - xq.zero_point * n
    return _mbqm(total, (m << k) // n, sh - k) + yq.zero_point


def mean_opt_hw(x: np.ndarray, xq: QTensor, yq: QTensor) -> np.ndarray:
    """The optimized kernel's special case: 4-D NHWC, axes {1, 2}, keep_dims."""
    n = x.shape[1] * x.shape[2]
    temp = np.float32(np.float32(xq.zero_point) * xq.scale) / yq.scale
    temp = np.float32(temp + np.float32(0.5)) if temp > 0 else np.float32(temp - np.float32(0.5))
    bias = yq.zero_point - int(temp)
    m, sh = quantize_multiplier(float(np.float32(xq.scale / np.float32(np.float32(n) * yq.scale))))
    total = np.asarray(x, np.int64).sum(axis=(1, 2), keepdims=True)
    blocks = x.shape[3] - x.shape[3] % 16
    return np.concatenate([_mbqm(total[..., :blocks], m, sh, up=True), _mbqm(total[..., blocks:], m, sh)],
                          axis=-1) + bias


def mean_xnn(x: np.ndarray, axes: tuple, keep: bool, xq: QTensor, yq: QTensor) -> np.ndarray:
    n = int(np.prod([x.shape[a] for a in axes]))
    sc = np.float32(xq.scale / yq.scale) * np.float32(np.float32(1.0) / np.float32(n))
    zp = np.float32(yq.zero_point) - np.float32(np.float32(n * xq.zero_point) * sc)
    total = np.asarray(x, np.int64).sum(axis=axes, keepdims=keep).astype(np.float32)
    return np.rint((total * sc).astype(np.float32) + zp).astype(np.int64)


def mean(kernel: str, x: np.ndarray, axes: tuple, keep: bool, xq: QTensor, yq: QTensor) -> np.ndarray:
    """MEAN of codes ``x`` (the file's layout) over ``axes`` in ``kernel``'s arithmetic, saturated."""
    if kernel == "xnn":
        y = mean_xnn(x, axes, keep, xq, yq)
    elif kernel == "opt" and keep and x.ndim == 4 and sorted(axes) == [1, 2]:
        y = mean_opt_hw(x, xq, yq)
    else:
        y = mean_ref(x, axes, keep, xq, yq)
    return np.clip(y, *qrange(yq.dtype))
