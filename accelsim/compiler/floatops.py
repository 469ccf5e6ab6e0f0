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


def sigmoid(x: np.ndarray) -> np.ndarray:
    return (F32(1) / (F32(1) + np.exp(-x.astype(F32)))).astype(F32)


def tanh(x: np.ndarray) -> np.ndarray:
    return np.tanh(x.astype(F32)).astype(F32)


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
