"""Elementwise ops of two quantized tensors: Add (QDQ) and QLinearAdd (QOperator)."""

from __future__ import annotations

import onnx

from ..ir import ModelError, QAdd, QTensor
from .context import Activation, ImportContext, clamp_for


def _add(ctx: ImportContext, n: onnx.NodeProto, a: QTensor, b: QTensor, y_name: str, y_scale, y_zp,
         act: Activation) -> None:
    if a.shape != b.shape:
        raise ModelError(n.name, n.op_type, f"broadcasting add of {a.shape} and {b.shape} is not supported")
    if a.dtype != b.dtype:
        raise ModelError(n.name, n.op_type, f"inputs of different types {a.dtype} and {b.dtype}")
    y = ctx.add_tensor(n, y_name, a.shape, y_scale, y_zp)
    if y.dtype != a.dtype:
        raise ModelError(n.name, n.op_type, f"output type {y.dtype} differs from the inputs' {a.dtype}")
    ctx.graph.nodes.append(QAdd(n.name, n.op_type, a.name, b.name, y.name, clamp_for(y, act)))


def add(ctx: ImportContext, n: onnx.NodeProto) -> None:
    """QDQ: DequantizeLinear(a) + DequantizeLinear(b) -> [Relu | Clip] -> QuantizeLinear."""
    a, b = ctx.quantized_inputs(n, n.input)
    out, act = ctx.activation_after(n.output[0])
    qn = ctx.output_q(n, out)
    _add(ctx, n, a, b, qn.output[0], *ctx.qparams(qn), act)
    ctx.shapes[out] = ctx.graph.tensors[qn.output[0]].shape


def qlinear_add(ctx: ImportContext, n: onnx.NodeProto) -> None:
    """QOperator (com.microsoft): QLinearAdd(a, s_a, z_a, b, s_b, z_b, s_y, z_y)."""
    if n.input[0] not in ctx.graph.tensors or n.input[3] not in ctx.graph.tensors:
        raise ModelError(n.name, n.op_type, "both inputs must be quantized tensors")
    a, b = ctx.qlinear_input(n, n.input[0], 1, 2), ctx.qlinear_input(n, n.input[3], 4, 5)
    _add(ctx, n, a, b, n.output[0], ctx.init(n, n.input[6], "output scale"),
         ctx.init(n, n.input[7], "output zero point"), None)
