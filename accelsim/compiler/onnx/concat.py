"""Concatenation along channels: Concat (QDQ) and QLinearConcat (QOperator)."""

from __future__ import annotations

import onnx

from isa.table import DTYPES

from ..ir import ModelError, QConcat, QTensor
from .context import Activation, ImportContext, attrs, clamp_for


def _check_shapes(n: onnx.NodeProto, srcs: list[QTensor]) -> int:
    """The rank of the inputs, which must differ only on the channel axis (1)."""
    rank = len(srcs[0].shape)
    axis = int(attrs(n).get("axis", 1))
    axis = axis + rank if axis < 0 else axis
    if rank not in (2, 4) or axis != 1:
        raise ModelError(n.name, n.op_type, f"only concatenation along channels (axis 1 of NCHW or of a 2-D "
                                            f"tensor) is supported, got axis {axis} of rank {rank}")
    for t in srcs:
        if len(t.shape) != rank or t.shape[:1] + t.shape[2:] != srcs[0].shape[:1] + srcs[0].shape[2:]:
            raise ModelError(n.name, n.op_type, f"input shapes {[t.shape for t in srcs]} differ off the channel axis")
    return rank


def _concat(ctx: ImportContext, n: onnx.NodeProto, srcs: list[QTensor], out_node, y_name: str, y_scale, y_zp,
            act: Activation = None) -> None:
    _check_shapes(n, srcs)
    shape = (srcs[0].shape[0], sum(t.shape[1] for t in srcs)) + srcs[0].shape[2:]
    y = ctx.add_tensor(out_node, y_name, shape, y_scale, y_zp)
    for t in srcs:
        same = (t.scale, t.zero_point, t.dtype) == (y.scale, y.zero_point, y.dtype)
        if not same and max(DTYPES[t.dtype][0], DTYPES[y.dtype][0]) > 8:
            raise ModelError(n.name, n.op_type, f"requantizing 16-bit input {t.name!r} is not supported")
    clamp = clamp_for(y, act) if act is not None else None
    ctx.graph.nodes.append(QConcat(n.name, n.op_type, [t.name for t in srcs], y.name, clamp))


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
