"""Elementwise ops of two quantized operands: Add and Mul (QDQ) and QLinearAdd / QLinearMul
(QOperator), on the vector unit with ONNX Runtime's integer rounding.

ONNX Runtime fuses DequantizeLinear -> Add/Mul -> QuantizeLinear into QLinearAdd / QLinearMul
when both operands are dequantized (an activation, or a quantized constant behind its own
DequantizeLinear) and the result goes straight to the QuantizeLinear; accelsim then runs the
same integer formula (VADD / VMUL).  An operand that is a float constant, or a result that meets
another float op first, keeps the op in float: a step of a table chain (accelsim.compiler.onnx.chains).
The second operand may broadcast (accelsim.compiler.broadcast); for Add, ORT's first operand is
the full-size one.
"""

from __future__ import annotations

from typing import Optional

import numpy as np
import onnx

from ..broadcast import broadcast_of
from ..ir import ModelError, QAdd, QMul, QTensor
from . import chains
from .context import Activation, ImportContext, clamp_for, dtype_name, scalar_f32, scalar_int

NODES = {"Add": QAdd, "Mul": QMul, "QLinearAdd": QAdd, "QLinearMul": QMul}


def constant_tensor(ctx: ImportContext, n: onnx.NodeProto, name: str, q: np.ndarray, scale, zp) -> QTensor:
    """A quantized constant operand (per tensor), placed in DRAM with the program."""
    scale, zp = np.asarray(scale), np.asarray(zp)
    if scale.size != 1 or zp.size != 1:
        raise ModelError(n.name, n.op_type, f"constant operand {name!r} must be quantized per tensor")
    t = QTensor(name, tuple(np.shape(q)) or (1,), dtype_name(zp, n.name, n.op_type), scalar_f32(scale),
                scalar_int(zp))
    ctx.graph.tensors[name] = t
    ctx.graph.constants[name] = np.asarray(q).reshape(t.shape).astype(np.int64)
    return t


def _dequantized(ctx: ImportContext, x: str) -> bool:
    """Whether float tensor ``x`` comes straight out of a DequantizeLinear."""
    return x in ctx.q_of_float or x in ctx.weights


def _qdq_operand(ctx: ImportContext, n: onnx.NodeProto, x: str) -> QTensor:
    if x in ctx.q_of_float:
        return ctx.graph.tensors[ctx.q_of_float[x]]
    q, scale, zp = ctx.weights[x]
    return ctx.graph.tensors.get(x) or constant_tensor(ctx, n, x, q, scale, zp)


def _fused_output(ctx: ImportContext, n: onnx.NodeProto) -> Optional[tuple[onnx.NodeProto, Activation]]:
    """The QuantizeLinear that alone reads the op's result (after an optional Relu/Clip), if any."""
    out, act = ctx.activation_after(n.output[0])
    users = ctx.consumers.get(out, [])
    if len(users) == 1 and users[0].op_type == "QuantizeLinear" and out not in ctx.graph_outputs:
        return users[0], act
    return None


def _order(n: onnx.NodeProto, a: QTensor, b: QTensor) -> tuple[QTensor, QTensor]:
    """(full-size operand, the other): ORT's QLinearAdd swaps its operands when the first broadcasts."""
    if a.shape != b.shape and np.prod(a.shape) < np.prod(b.shape):
        return b, a
    return a, b


def _binary(ctx: ImportContext, n: onnx.NodeProto, a: QTensor, b: QTensor, y_name: str, y_scale, y_zp,
            act: Activation) -> None:
    a, b = _order(n, a, b)
    try:
        broadcast_of(a.shape, b.shape, a.rowmajor)
    except ValueError as e:
        raise ModelError(n.name, n.op_type, f"broadcast of {b.shape} against {a.shape}: {e}") from None
    if a.dtype != b.dtype:
        raise ModelError(n.name, n.op_type, f"inputs of different types {a.dtype} and {b.dtype}")
    y = ctx.add_tensor(n, y_name, a.shape, y_scale, y_zp)
    if y.dtype != a.dtype:
        raise ModelError(n.name, n.op_type, f"output type {y.dtype} differs from the inputs' {a.dtype}")
    y.rowmajor = a.rowmajor
    node = NODES[n.op_type](n.name, n.op_type, a.name, b.name, y.name, clamp_for(y, act))
    ctx.graph.nodes.append(node)


def qdq_binary(ctx: ImportContext, n: onnx.NodeProto) -> None:
    """QDQ Add / Mul: fused to ORT's integer op, else a float step of a chain."""
    fused = _fused_output(ctx, n)
    if fused is not None and all(_dequantized(ctx, x) for x in n.input[:2]) and \
            any(x in ctx.q_of_float for x in n.input[:2]):
        qn, act = fused
        a, b = (_qdq_operand(ctx, n, x) for x in n.input[:2])
        _binary(ctx, n, a, b, qn.output[0], *ctx.qparams(qn), act)
        ctx.shapes[qn.input[0]] = ctx.graph.tensors[qn.output[0]].shape
        return
    if chains.constant_binary(ctx, n):
        return
    raise ModelError(n.name, n.op_type, f"{n.op_type} of two activations whose result is not quantized right "
                                        "after (ONNX Runtime computes it in float; not supported)")


def binary(ctx: ImportContext, n: onnx.NodeProto) -> None:
    """Sub / Div: with a constant operand, a chain step; two tensors are not supported."""
    if not chains.constant_binary(ctx, n):
        raise ModelError(n.name, n.op_type, f"{n.op_type} of two activations is not supported (only by a constant)")


def _qlinear_operand(ctx: ImportContext, n: onnx.NodeProto, k: int) -> QTensor:
    """Operand ``k`` (0 or 1) of a QLinearAdd / QLinearMul: a quantized tensor or a constant."""
    x, si, zi = n.input[3 * k], 3 * k + 1, 3 * k + 2
    if x in ctx.graph.tensors and x not in ctx.graph.constants:
        return ctx.qlinear_input(n, x, si, zi)
    if x in ctx.inits:
        scale, zp = ctx.init(n, n.input[si], "scale"), ctx.optional_init(n, zi, "zero point")
        zp = np.zeros((), ctx.inits[x].dtype) if zp is None else zp
        return ctx.graph.tensors.get(x) or constant_tensor(ctx, n, x, ctx.inits[x], scale, zp)
    raise ModelError(n.name, n.op_type, f"input {x!r} is neither a quantized tensor nor a constant")


def qlinear_binary(ctx: ImportContext, n: onnx.NodeProto) -> None:
    """QOperator (com.microsoft): QLinearAdd / QLinearMul(a, s_a, z_a, b, s_b, z_b, s_y, z_y)."""
    a, b = _qlinear_operand(ctx, n, 0), _qlinear_operand(ctx, n, 1)
    if a.name in ctx.graph.constants and b.name in ctx.graph.constants:
        raise ModelError(n.name, n.op_type, "both operands are constants (fold them before quantizing)")
    _binary(ctx, n, a, b, n.output[0], ctx.init(n, n.input[6], "output scale"),
            ctx.optional_init(n, 7, "output zero point") if len(n.input) > 7 else np.zeros((), np.uint8), None)
