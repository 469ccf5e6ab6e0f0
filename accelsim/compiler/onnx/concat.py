"""Concatenation along channels: Concat (QDQ) and QLinearConcat (QOperator)."""

from __future__ import annotations

import numpy as np
import onnx

from isa.table import DTYPES

_NP = {"u8": np.uint8, "s8": np.int8, "u16": np.uint16, "s16": np.int16}

from ..ir import ModelError, QConcat, QTensor
from .context import Activation, ImportContext, attrs, clamp_for


def _check_shapes(n: onnx.NodeProto, srcs: list[QTensor]) -> int:
    """The concatenation axis; the inputs must agree on every other."""
    rank = len(srcs[0].shape)
    axis = int(attrs(n).get("axis", 1))
    axis = axis + rank if axis < 0 else axis
    if not 0 <= axis < rank:
        raise ModelError(n.name, n.op_type, f"axis {axis} outside rank-{rank} inputs")
    for t in srcs:
        if len(t.shape) != rank or t.shape[:axis] + t.shape[axis + 1:] != srcs[0].shape[:axis] + srcs[0].shape[axis + 1:]:
            raise ModelError(n.name, n.op_type, f"input shapes {[t.shape for t in srcs]} differ off axis {axis}")
    return axis


def _concat(ctx: ImportContext, n: onnx.NodeProto, srcs: list[QTensor], out_node, y_name: str, y_scale, y_zp,
            act: Activation = None) -> None:
    axis = _check_shapes(n, srcs)
    shape = list(srcs[0].shape)
    shape[axis] = sum(t.shape[axis] for t in srcs)
    shape = tuple(shape)
    y = ctx.add_tensor(out_node, y_name, shape, y_scale, y_zp)
    y.rowmajor = srcs[0].rowmajor
    if any(t.rowmajor != y.rowmajor for t in srcs):
        raise ModelError(n.name, n.op_type, "inputs in different layouts (some transposed to NHWC)")
    for t in srcs:
        same = (t.scale, t.zero_point, t.dtype) == (y.scale, y.zero_point, y.dtype)
        if not same and max(DTYPES[t.dtype][0], DTYPES[y.dtype][0]) > 8:
            raise ModelError(n.name, n.op_type, f"requantizing 16-bit input {t.name!r} is not supported")
    clamp = clamp_for(y, act) if act is not None else None
    ctx.graph.nodes.append(QConcat(n.name, n.op_type, [t.name for t in srcs], y.name, clamp, axis))


def concat(ctx: ImportContext, n: onnx.NodeProto) -> None:
    """QDQ: DequantizeLinear of each input -> Concat -> [Relu | Clip] -> QuantizeLinear."""
    srcs = ctx.quantized_inputs(n, n.input)
    out, act = ctx.activation_after(n.output[0])
    qn = ctx.output_q(n, out)
    _concat(ctx, n, srcs, qn, qn.output[0], *ctx.qparams(qn), act)
    ctx.shapes[out] = ctx.graph.tensors[qn.output[0]].shape


def qlinear_concat(ctx: ImportContext, n: onnx.NodeProto) -> None:
    """QOperator (com.microsoft): QLinearConcat(s_y, z_y, x0, s0, z0, x1, s1, z1, ...)."""
    if attrs(n).get("channels_last", 0):
        raise ModelError(n.name, n.op_type, "channels_last=1 is not supported")
    srcs = [ctx.qlinear_input(n, n.input[i], i + 1, i + 2) for i in range(2, len(n.input), 3)]
    _concat(ctx, n, srcs, n, n.output[0], ctx.init(n, n.input[0], "output scale"),
            ctx.init(n, n.input[1], "output zero point"))


def qop_concat(ctx: ImportContext, n: onnx.NodeProto) -> None:
    """A plain Concat of quantized tensors (QOperator models keep one when every input shares the
    output's quantization)."""
    srcs = [ctx.graph.tensors.get(i) for i in n.input]
    if any(t is None for t in srcs):
        raise ModelError(n.name, n.op_type, "some inputs are quantized tensors and some are not")
    first = srcs[0]
    if any((t.scale, t.zero_point, t.dtype) != (first.scale, first.zero_point, first.dtype) for t in srcs):
        raise ModelError(n.name, n.op_type, "inputs of different quantization (a QLinearConcat requantizes them)")
    _concat(ctx, n, srcs, n, n.output[0], np.float32(first.scale), np.array(first.zero_point, _NP[first.dtype]))
