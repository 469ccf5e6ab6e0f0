"""Ops that move codes without arithmetic: RESHAPE / SQUEEZE / EXPAND_DIMS (views: the file's
order is the chip's), PAD / PADV2, STRIDED_SLICE, SPLIT / SPLIT_V (QCopy block copies) and
CONCATENATION (QConcat; inputs quantized apart from the output go through a table)."""

from __future__ import annotations

import numpy as np

from ..ir import QConcat, QCopy, QReshape, QTensor
from ..onnx.movement import block_pieces, slice_pieces
from .context import TFLiteContext, nchw_axis
from .tables import concat_table
from .load import TOp


def reshape(ctx: TFLiteContext, op: TOp) -> None:
    """The same codes under the output's shape (and the output's declared quantization)."""
    x = ctx.q(op, 0)
    y = ctx.out(op, like=x)
    if int(np.prod(y.shape)) != int(np.prod(x.shape)):
        raise ctx.fail(op, f"reshapes {x.shape[0]} x ... ({int(np.prod(x.shape))} values) to "
                           f"{ctx.tensor(op.outputs[0]).shape}")
    if y.dtype != x.dtype:
        raise ctx.fail(op, f"changes the element type ({x.dtype} -> {y.dtype})")
    ctx.graph.nodes.append(QReshape(y.name, op.op, x.name, y.name, nhwc=True))


def _same_quantization(ctx: TFLiteContext, op: TOp, x: QTensor, y: QTensor) -> None:
    if (x.scale, x.zero_point, x.dtype) != (y.scale, y.zero_point, y.dtype):
        raise ctx.fail(op, f"output quantization ({y.scale}, {y.zero_point}) differs from the input's "
                           f"({x.scale}, {x.zero_point})")


def _file_axes(rank: int) -> list[int]:
    """The QGraph axis of each file axis."""
    return [nchw_axis(a, rank) for a in range(rank)]


def pad(ctx: TFLiteContext, op: TOp) -> None:
    """PAD / PADV2 with constant padding: the input copied into the output at its offset; the
    rest holds the output's zero point (PAD) or the constant value's code (PADV2)."""
    x = ctx.q(op, 0)
    paddings = np.asarray(ctx.const(op, 1, "paddings"), np.int64)
    rank = len(x.shape)
    if paddings.shape != (rank, 2) or (paddings < 0).any():
        raise ctx.fail(op, f"paddings {paddings.tolist()} must be {rank} pairs of non-negative counts")
    y = ctx.out(op, like=x)
    _same_quantization(ctx, op, x, y)
    fill = y.zero_point
    if op.op == "PADV2" and ctx.has_input(op, 2):
        fill = int(np.asarray(ctx.const(op, 2, "constant value")).reshape(-1)[0])
    begin = [0] * rank
    for a, g in enumerate(_file_axes(rank)):
        begin[g] = int(paddings[a, 0])
    ctx.graph.nodes.append(QCopy(y.name, op.op, [x.name], y.name, block_pieces(x.name, x.shape, y.shape,
                                                                               tuple(begin)), fill))


def _slice(ctx: TFLiteContext, op: TOp, x: QTensor, out_k: int, begin_file: list[int]) -> None:
    y = ctx.out(op, like=x, k=out_k)
    _same_quantization(ctx, op, x, y)
    rank = len(x.shape)
    begin = [0] * rank
    for a, g in enumerate(_file_axes(rank)):
        begin[g] = begin_file[a]
    ctx.graph.nodes.append(QCopy(y.name, op.op, [x.name], y.name, slice_pieces(x.name, x.shape, tuple(begin),
                                                                               y.shape)))


def strided_slice(ctx: TFLiteContext, op: TOp) -> None:
    """STRIDED_SLICE with unit strides (begin / end masks; no ellipsis, new-axis or shrink masks)."""
    x = ctx.q(op, 0)
    o = op.options
    begin = np.asarray(ctx.const(op, 1, "begin"), np.int64).ravel()
    end = np.asarray(ctx.const(op, 2, "end"), np.int64).ravel()
    strides = np.asarray(ctx.const(op, 3, "strides"), np.int64).ravel()
    file_shape = ctx.tensor(op.inputs[0]).shape
    rank = len(file_shape)
    if o is not None and (o.EllipsisMask() or o.NewAxisMask() or o.ShrinkAxisMask() or o.Offset()):
        raise ctx.fail(op, "ellipsis, new-axis, shrink-axis masks and offset are not supported")
    if begin.size != rank or end.size != rank or (strides != 1).any():
        raise ctx.fail(op, f"takes {rank} begin / end values and unit strides (strides {strides.tolist()})")
    lo = []
    for a in range(rank):
        d = file_shape[a] if a else ctx.batch * file_shape[0]
        b = 0 if o is not None and o.BeginMask() >> a & 1 else int(begin[a])
        e = d if o is not None and o.EndMask() >> a & 1 else int(end[a])
        b, e = (b + d if b < 0 else b), (e + d if e < 0 else e)
        b, e = min(max(b, 0), d), min(max(e, 0), d)
        if e - b != ctx.tensor(op.outputs[0]).shape[a] * (ctx.batch if a == 0 else 1):
            raise ctx.fail(op, f"axis {a}: [{b}, {e}) does not match the output's {ctx.tensor(op.outputs[0]).shape}")
        lo.append(b)
    _slice(ctx, op, x, 0, lo)


def split(ctx: TFLiteContext, op: TOp) -> None:
    """SPLIT (axis, input) and SPLIT_V (input, sizes, axis): one block copy per output."""
    if op.op == "SPLIT":
        axis, x = int(np.asarray(ctx.const(op, 0, "axis")).reshape(-1)[0]), ctx.q(op, 1)
    else:
        x, axis = ctx.q(op, 0), int(np.asarray(ctx.const(op, 2, "axis")).reshape(-1)[0])
    rank = len(x.shape)
    axis = axis + rank if axis < 0 else axis
    at = 0
    for k, idx in enumerate(op.outputs):
        size = ctx.tensor(idx).shape[axis] * (ctx.batch if axis == 0 else 1)
        begin = [0] * rank
        begin[axis] = at
        _slice(ctx, op, x, k, begin)
        at += size


def concatenation(ctx: TFLiteContext, op: TOp) -> None:
    """CONCATENATION along a file axis, with its fused activation."""
    xs = [ctx.q(op, k) for k in range(len(op.inputs))]
    o = op.options
    rank = len(xs[0].shape)
    y = ctx.out(op, like=xs[0])
    axis = o.Axis() if o is not None else 0
    if not -rank <= axis < rank:
        raise ctx.fail(op, f"axis {axis} of a rank-{rank} tensor")
    act = o.FusedActivationFunction() if o is not None else 0
    clamp = ctx.clamp(op, y, act)
    for x in xs:
        if x.dtype == "s8" and (x.scale, x.zero_point) != (y.scale, y.zero_point):
            raise ctx.fail(op, f"int8 input {x.name!r} is quantized apart from the output (TFLite and every "
                               "LiteRT kernel set refuse it: requantize it first)")
    tables = [None if (x.scale, x.zero_point) == (y.scale, y.zero_point) and act == 0
              else concat_table(x, y, clamp) for x in xs]
    ctx.graph.nodes.append(QConcat(y.name, op.op, [x.name for x in xs], y.name, None, nchw_axis(axis, rank),
                                   tables=tables))

