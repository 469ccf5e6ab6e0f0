"""ONNX Runtime's float32 arithmetic for the elementwise ops that run between DequantizeLinear and
QuantizeLinear, in numpy: the chip turns a chain of them into a lookup table over the 256 codes
of an 8-bit tensor, so the table must hold exactly what ONNX Runtime computes (docs/numerics.md).

Every function takes and returns float32 arrays; the constant operands are float32.  Plain
arithmetic (Add, Sub, Mul, Div with a constant, Relu, Clip, LeakyRelu, PRelu, Neg, Abs) is one
IEEE operation per element, which numpy's float32 arithmetic is too.
"""

from __future__ import annotations

from typing import Callable

import numpy as np

from isa.requant import fma_f32

from .cpu import fma3_activations

F32 = np.float32


def relu(x: np.ndarray) -> np.ndarray:
    return np.maximum(x, F32(0))


def clip(lo: np.float32, hi: np.float32) -> Callable[[np.ndarray], np.ndarray]:
    return lambda x: np.minimum(np.maximum(x, lo), hi)


def leaky_relu(alpha: np.float32) -> Callable[[np.ndarray], np.ndarray]:
    return lambda x: np.where(x >= 0, x, (x * F32(alpha)).astype(F32))


def prelu(slope: np.ndarray) -> Callable[[np.ndarray], np.ndarray]:
    """PRelu with a slope broadcast against the (channels, codes) table."""
    return lambda x: np.where(x >= 0, x, (x * slope).astype(F32))


def hard_sigmoid(alpha: np.float32, beta: np.float32) -> Callable[[np.ndarray], np.ndarray]:
    """max(0, min(1, alpha * x + beta)), the product and the sum rounded separately."""
    a, b = F32(alpha), F32(beta)
    return lambda x: np.clip((x * a).astype(F32) + b, F32(0), F32(1)).astype(F32)


def hard_swish(x: np.ndarray) -> np.ndarray:
    """x * HardSigmoid(x) with alpha 1/6, beta 1/2 (ONNX HardSwish)."""
    return (x * hard_sigmoid(F32(1 / 6), F32(0.5))(x)).astype(F32)


# MLAS's rational approximations (logistic.cpp, tanh.cpp: Eigen's coefficients), float32
_LOGISTIC_P = tuple(F32(v) for v in (4.37031012579801e-11, 1.15627324459942e-07, 6.08574864600143e-05,
                                     8.51377133304701e-03, 2.48287947061529e-01))
_LOGISTIC_Q = tuple(F32(v) for v in (6.10247389755681e-13, 5.76102136993427e-09, 6.29106785017040e-06,
                                     1.70198817374094e-03, 1.16817656904453e-01, 9.93151921023180e-01))
_TANH_P = tuple(F32(v) for v in (-2.76076847742355e-16, 2.00018790482477e-13, -8.60467152213735e-11,
                                 5.12229709037114e-08, 1.48572235717979e-05, 6.37261928875436e-04,
                                 4.89352455891786e-03))
_TANH_Q = tuple(F32(v) for v in (1.19825839466702e-06, 1.18534705686654e-04, 2.26843463243900e-03,
                                 4.89352518554385e-03))


def _horner(x2: np.ndarray, coeffs: tuple, fused: bool) -> np.ndarray:
    """c0 * x2^k + ... + ck by Horner's rule in float32: fused multiply-adds (MLAS's FMA3 kernels)
    or a multiply and an add, each rounded (its SSE2 kernels)."""
    acc = np.full_like(x2, coeffs[0])
    for c in coeffs[1:]:
        acc = fma_f32(x2, acc, c) if fused else ((x2 * acc).astype(F32) + c).astype(F32)
    return acc


def _rational(x: np.ndarray, bound: float, p: tuple, q: tuple, fused: bool) -> np.ndarray:
    """v * P(v^2) / Q(v^2) with v = x clamped to [-bound, bound]."""
    v = np.minimum(np.maximum(np.asarray(x, F32), F32(-bound)), F32(bound))
    x2 = (v * v).astype(F32)
    with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
        return ((v * _horner(x2, p, fused)).astype(F32) / _horner(x2, q, fused)).astype(F32)


def sigmoid(x: np.ndarray, fused: bool | None = None) -> np.ndarray:
    """MLAS's MlasComputeLogistic (ONNX Runtime's Sigmoid, and QLinearSigmoid's table): x clamped to
    [-18, 18], r = v * P(v^2) / Q(v^2) + 0.5, then max(0, r) (FMA3 kernels) or r clamped to [0, 1]
    (SSE2).  ``fused``: the FMA3 kernels (default: as MLAS dispatches on this CPU)."""
    fused = fma3_activations() if fused is None else fused
    r = (_rational(x, 18.0, _LOGISTIC_P, _LOGISTIC_Q, fused) + F32(0.5)).astype(F32)
    r = np.maximum(r, F32(0))
    return r if fused else np.minimum(r, F32(1))


def tanh(x: np.ndarray, fused: bool | None = None) -> np.ndarray:
    """MLAS's MlasComputeTanh: x clamped to [-9, 9], v * P(v^2) / Q(v^2), no clamp of the result."""
    fused = fma3_activations() if fused is None else fused
    return _rational(x, 9.0, _TANH_P, _TANH_Q, fused)


def binary(op: str, const: np.ndarray, const_first: bool) -> Callable[[np.ndarray], np.ndarray]:
    """x (op) c, or c (op) x when the constant is the first operand."""
    fn = {"Add": np.add, "Sub": np.subtract, "Mul": np.multiply, "Div": np.divide}[op]
    c = np.asarray(const, F32)
    if const_first:
        return lambda x: fn(c, x).astype(F32)
    return lambda x: fn(x, c).astype(F32)


UNARY: dict[str, Callable[[np.ndarray], np.ndarray]] = {
    "Relu": relu, "Sigmoid": sigmoid, "Tanh": tanh, "HardSwish": hard_swish, "Neg": np.negative, "Abs": np.abs,
    "Identity": lambda x: x,
}
