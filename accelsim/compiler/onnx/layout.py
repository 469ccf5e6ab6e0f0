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
    """Output shape of a Flatten / Reshape, or of the Transpose the chip takes: NCHW -> NHWC (perm 0,
    2, 3, 1) of a 4-D tensor, which is its own DRAM order (the output is a row-major view)."""
    if n.op_type != "Transpose":
        return reshape_shape(ctx, n, src.shape)
    perm = tuple(attrs(n).get("perm", ()))
    if len(src.shape) != 4 or perm != (0, 2, 3, 1) or src.rowmajor:
        raise ModelError(n.name, n.op_type, f"Transpose perm={list(perm)} of {src.shape}: only NCHW -> NHWC "
                                            "(perm 0, 2, 3, 1) is a layout change the chip takes")
    return tuple(src.shape[i] for i in perm)


def _rowmajor(n: onnx.NodeProto, src: QTensor, shape: tuple) -> bool:
    """Whether a reshape's (or the Transpose's) output is stored row-major: a row-major input, a
    Transpose, or any output that is not 4-D."""
    return n.op_type == "Transpose" or src.rowmajor or len(shape) != 4


def _add_reshape(ctx: ImportContext, n: onnx.NodeProto, src: QTensor, out: QTensor) -> None:
    ctx.graph.nodes.append(QReshape(n.name, n.op_type, src.name, out.name, nhwc=_rowmajor(n, src, out.shape)
                                    and (src.rowmajor or n.op_type == "Transpose")))


def reshape(ctx: ImportContext, n: onnx.NodeProto) -> None:
    """QDQ: DequantizeLinear -> Flatten/Reshape/Transpose -> QuantizeLinear with the same parameters
    (or a Flatten/Reshape of a chain of float ops, which moves after its table)."""
    from . import islands
    from .chains import reshape_of_chain

    if n.input[0] in ctx.lazy and n.op_type != "Transpose":
        islands.reshape(ctx, n)
        return
    if n.op_type != "Transpose" and reshape_of_chain(ctx, n):
        return
    src, qn = ctx.quantized_io(n)
    shape = _layout_shape(ctx, n, src)
    t = ctx.add_tensor(qn, qn.output[0], shape, *ctx.qparams(qn))
    if (t.scale, t.zero_point, t.dtype) != (src.scale, src.zero_point, src.dtype):
        raise ModelError(n.name, n.op_type, f"requantizing through a {n.op_type} is not supported")
    t.rowmajor = len(shape) == 4 and _rowmajor(n, src, shape)
    _add_reshape(ctx, n, src, t)
    ctx.shapes[n.output[0]] = shape


def qop_reshape(ctx: ImportContext, n: onnx.NodeProto) -> None:
    """QOperator: a Flatten/Reshape/Transpose of a quantized tensor."""
    src = ctx.quantized_input(n)
    shape = _layout_shape(ctx, n, src)
    t = ctx.alias_tensor(n.output[0], src, shape)
    t.rowmajor = len(shape) == 4 and _rowmajor(n, src, shape)
    _add_reshape(ctx, n, src, t)


def shape(ctx: ImportContext, n: onnx.NodeProto) -> None:
    """Shape of a tensor whose shape the importer knows (one onnx's inference could not follow
    through a com.microsoft op): a constant."""
    src = n.input[0]
    known = ctx.graph.tensors[src].shape if src in ctx.graph.tensors else ctx.shapes.get(src)
    if known is None:
        raise ModelError(n.name, n.op_type, f"the shape of {src!r} is not known at compile time")
    a = attrs(n)
    dims = np.array(known, np.int64)
    ctx.inits[n.output[0]] = dims[a.get("start", 0):a.get("end", len(dims))]
