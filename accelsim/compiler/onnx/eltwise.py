"""Elementwise ops of two quantized tensors: Add (QDQ) and QLinearAdd (QOperator)."""

from __future__ import annotations

import onnx

from ..ir import ModelError, QAdd, QTensor
from . import chains
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
    """QDQ: DequantizeLinear(a) + DequantizeLinear(b) -> [Relu | Clip] -> QuantizeLinear, or an
    Add of a constant: a step of a chain of float ops."""
    if chains.constant_binary(ctx, n):
        return
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


def binary(ctx: ImportContext, n: onnx.NodeProto) -> None:
    """Sub / Div: with a constant operand, a chain step; two tensors are not supported."""
    if not chains.constant_binary(ctx, n):
        raise ModelError(n.name, n.op_type, f"{n.op_type} of two activations is not supported (only by a constant)")


def mul(ctx: ImportContext, n: onnx.NodeProto) -> None:
    """Mul by a constant (a chain step) or of two quantized tensors (not yet)."""
    if not chains.constant_binary(ctx, n):
        raise ModelError(n.name, n.op_type, "Mul of two activations is not supported yet")
