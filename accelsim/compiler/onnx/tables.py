"""Lookup tables (QLut) that are not chains of elementwise ops (accelsim.compiler.onnx.chains): an
unfolded BatchNormalization (one table per channel), QLinearLeakyRelu, QLinearSigmoid, and the requantizing table
after a MaxPool.  Each table reproduces ONNX Runtime's float arithmetic."""

from __future__ import annotations

from typing import Callable

import numpy as np
import onnx

from isa.table import DTYPES

from .. import floatops as F
from ..ir import ModelError, QLut, QTensor
from ..lut import lut_table
from .context import Activation, ImportContext, attrs


def _check_8bit(n: onnx.NodeProto, src: QTensor, what: str) -> None:
    if DTYPES[src.dtype][0] > 8:
        raise ModelError(n.name, n.op_type, f"{what} on a {src.dtype} tensor is not supported "
                                            "(the lookup table takes 8-bit codes)")


def _output_8bit(ctx: ImportContext, n: onnx.NodeProto, out_node, y_name: str, shape, y_scale, y_zp) -> QTensor:
    y = ctx.add_tensor(out_node, y_name, shape, y_scale, y_zp)
    if DTYPES[y.dtype][0] > 8:
        raise ModelError(n.name, n.op_type, f"output type {y.dtype}: the lookup table yields at most 8 bits")
    return y


def add_lut(ctx: ImportContext, n: onnx.NodeProto, src: QTensor, out_node, y_name: str, y_scale, y_zp,
            fn: Callable[[np.ndarray], np.ndarray]) -> None:
    """A QLut computing Q(fn(DQ(x))) from ``src`` to a new tensor ``y_name``."""
    _check_8bit(n, src, f"a standalone {n.op_type}")
    y = _output_8bit(ctx, n, out_node, y_name, src.shape, y_scale, y_zp)
    ctx.graph.nodes.append(QLut(n.name, n.op_type, src.name, y.name, lut_table(src, y, fn)))


def qlinear_leaky_relu(ctx: ImportContext, n: onnx.NodeProto) -> None:
    if attrs(n).get("channels_last", 0):
        raise ModelError(n.name, n.op_type, "channels_last=1 is not supported")
    src = ctx.qlinear_input(n, n.input[0], 1, 2)
    alpha = np.float32(attrs(n).get("alpha", 0.01))
    add_lut(ctx, n, src, n, n.output[0], ctx.init(n, n.input[3], "output scale"),
            ctx.init(n, n.input[4], "output zero point"), lambda x: np.where(x >= 0, x, alpha * x))


def qlinear_sigmoid(ctx: ImportContext, n: onnx.NodeProto) -> None:
    """QLinearSigmoid (com.microsoft): ONNX Runtime builds a table over the 256 codes with its float
    logistic (floatops.sigmoid) between DequantizeLinear and QuantizeLinear; so does the chip."""
    src = ctx.qlinear_input(n, n.input[0], 1, 2)
    y_zp = ctx.optional_init(n, 4, "output zero point")
    if y_zp is None:  # absent: 0 of the input's type
        y_zp = np.zeros((), np.int8 if DTYPES[src.dtype][1] else np.uint8)
    add_lut(ctx, n, src, n, n.output[0], ctx.init(n, n.input[3], "output scale"), y_zp, F.sigmoid)


def _bn_float_params(ctx: ImportContext, n: onnx.NodeProto) -> list[np.ndarray]:
    """scale, bias, mean, var: initializers, or dequantized initializers."""
    params = []
    for name, what in zip(n.input[1:5], ("scale", "bias", "mean", "var")):
        v = ctx.floats.get(name)
        params.append(v if v is not None else np.asarray(ctx.init(n, name, what), np.float32))
    return params


def _bn_tables(src: QTensor, y: QTensor, params: list[np.ndarray], eps: np.float32, act: Activation) -> np.ndarray:
    """One table per channel, with ONNX Runtime's float arithmetic (batch_norm.h): inv_std =
    1 / sqrt(var + eps), new_scale = inv_std * scale, new_bias = bias - mean * new_scale,
    y = x * new_scale + new_bias, then any Relu / Clip, then QuantizeLinear."""
    scale, bias, mean, var = params
    with np.errstate(divide="ignore", invalid="ignore"):
        inv_std = np.float32(1) / np.sqrt(var + eps)
    new_scale = inv_std * scale
    new_bias = bias - mean * new_scale
    if act is None:
        lo, hi = np.float32(-np.inf), np.float32(np.inf)
    elif act[0] == "Relu":
        lo, hi = np.float32(0), np.float32(np.inf)
    else:
        lo, hi = np.float32(act[1]), np.float32(act[2])
    return np.stack([lut_table(src, y, lambda x, k=k: np.minimum(np.maximum(x * new_scale[k] + new_bias[k], lo), hi))
                     for k in range(src.shape[1])])


def batchnorm(ctx: ImportContext, n: onnx.NodeProto) -> None:
    """A BatchNormalization between DequantizeLinear and QuantizeLinear (not folded into a conv):
    a table per channel; of a float result, a step of a host region."""
    out, _ = ctx.activation_after(n.output[0])
    if n.input[0] in ctx.lazy or n.input[0] in ctx.chains or out not in ctx.quantized_at:
        from .islands import batch_norm  # a float result: a step of a host region

        batch_norm(ctx, n, [np.asarray(p, np.float32).reshape(-1) for p in _bn_float_params(ctx, n)])
        return
    if n.input[0] not in ctx.q_of_float:
        raise ModelError(n.name, n.op_type, "BatchNormalization on a float tensor (fold it into the conv before "
                                            "quantizing: onnxruntime.quantization.quant_pre_process)")
    params = _bn_float_params(ctx, n)
    out, act = ctx.activation_after(n.output[0])
    src, qn = ctx.quantized_io(n, out)
    a = attrs(n)
    if len(n.output) > 1 and any(n.output[1:]) or a.get("training_mode", 0):
        raise ModelError(n.name, n.op_type, "training-mode BatchNormalization is not supported")
    if len(src.shape) < 2:
        raise ModelError(n.name, n.op_type, f"expects an (N, C, ...) input, got shape {src.shape}")
    c = src.shape[1]
    params = [np.asarray(p, np.float32).reshape(-1) for p in params]
    if not all(p.size == c for p in params):
        raise ModelError(n.name, n.op_type, f"parameters must have {c} values (one per channel)")
    _check_8bit(n, src, "a BatchNormalization")
    y = _output_8bit(ctx, n, qn, qn.output[0], src.shape, *ctx.qparams(qn))
    eps = np.float32(a.get("epsilon", 1e-5))
    ctx.graph.nodes.append(QLut(n.name, n.op_type, src.name, y.name, _bn_tables(src, y, params, eps, act)))
    ctx.shapes[out] = src.shape
