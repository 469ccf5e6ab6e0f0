"""Flatten, Reshape and Transpose: the same integers under a new shape (a QReshape), QDQ and
QOperator forms alike.  The only Transpose the chip takes is NCHW -> NHWC (its own DRAM order)
before a Flatten."""

from __future__ import annotations

import numpy as np
import onnx

from ..ir import ModelError, QReshape, QTensor
from .context import ImportContext, attrs


def reshape_shape(ctx: ImportContext, n: onnx.NodeProto, shape: tuple) -> tuple:
    """The output shape of a Flatten or Reshape of a tensor of ``shape``."""
    if n.op_type == "Flatten":
        axis = attrs(n).get("axis", 1)
        return (int(np.prod(shape[:axis])), int(np.prod(shape[axis:])))
    target = ctx.init(n, n.input[1], "shape").astype(np.int64).tolist()
    if target and target[0] == 1 and shape and shape[0] == ctx.batch > 1:
        target[0] = ctx.batch  # a batch of 1 written into the file: the batch dim, as the input's
    total = int(np.prod(shape))
    target = [shape[i] if v == 0 else v for i, v in enumerate(target)]
    if -1 in target:
        known = int(np.prod([v for v in target if v != -1]))
        target[target.index(-1)] = total // known
    if int(np.prod(target)) != total:
        raise ModelError(n.name, n.op_type, f"cannot reshape {shape} to {target}")
    return tuple(target)


def _layout_shape(ctx: ImportContext, n: onnx.NodeProto, src: QTensor) -> tuple:
    """Output shape of a Flatten / Reshape, or of a Transpose the chip can take: NCHW -> NHWC
    (perm 0, 2, 3, 1), which is its own DRAM order, when only a Flatten or Reshape to 2-D reads it."""
    if n.op_type != "Transpose":
        shape = reshape_shape(ctx, n, src.shape)
        if src.name in ctx.nhwc_views and len(shape) != 2:
            raise ModelError(n.name, n.op_type, "a transposed (NHWC) tensor can only be flattened to 2-D")
        return shape
    perm = tuple(attrs(n).get("perm", ()))
    users = ctx.consumers.get(n.output[0], [])
    if len(src.shape) != 4 or perm != (0, 2, 3, 1):
        raise ModelError(n.name, n.op_type, f"Transpose perm={list(perm)} of {src.shape}: only NCHW -> NHWC "
                                            "(perm 0, 2, 3, 1) before a Flatten is a layout change the chip takes")
    if not users or any(u.op_type not in ("QuantizeLinear", "Flatten", "Reshape") for u in users):
        raise ModelError(n.name, n.op_type, "an NCHW -> NHWC Transpose must be followed by Flatten or Reshape to 2-D")
    return tuple(src.shape[i] for i in perm)


def _add_reshape(ctx: ImportContext, n: onnx.NodeProto, src: QTensor, out: QTensor) -> None:
    ctx.graph.nodes.append(QReshape(n.name, n.op_type, src.name, out.name,
                                    nhwc=n.op_type == "Transpose" or src.name in ctx.nhwc_views))
    if n.op_type == "Transpose":
        ctx.nhwc_views.add(out.name)


def reshape(ctx: ImportContext, n: onnx.NodeProto) -> None:
    """QDQ: DequantizeLinear -> Flatten/Reshape/Transpose -> QuantizeLinear with the same parameters."""
    src, qn = ctx.quantized_io(n)
    shape = _layout_shape(ctx, n, src)
    t = ctx.add_tensor(qn, qn.output[0], shape, *ctx.qparams(qn))
    if (t.scale, t.zero_point, t.dtype) != (src.scale, src.zero_point, src.dtype):
        raise ModelError(n.name, n.op_type, f"requantizing through a {n.op_type} is not supported")
    _add_reshape(ctx, n, src, t)
    ctx.shapes[n.output[0]] = shape


def qop_reshape(ctx: ImportContext, n: onnx.NodeProto) -> None:
    """QOperator: a Flatten/Reshape/Transpose of a quantized tensor."""
    src = ctx.quantized_input(n)
    _add_reshape(ctx, n, src, ctx.alias_tensor(n.output[0], src, _layout_shape(ctx, n, src)))
