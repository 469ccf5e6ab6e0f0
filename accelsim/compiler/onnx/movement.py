"""Data movement with the same quantization in and out: Pad (constant), Slice and Split, in QDQ
form (DequantizeLinear -> op -> QuantizeLinear with the input's parameters) and on quantized
tensors directly (QOperator).  Each becomes a QCopy: strided block copies in the tensors' DRAM
order (NHWC for 4-D) and, for Pad, the fill code in the elements no copy writes."""

from __future__ import annotations

import itertools

import numpy as np
import onnx

from isa.quant import quantize
from isa.table import DTYPES

from ..ir import ModelError, Piece, QCopy, QLut, QTensor, memory_axis, memory_dims
from .chains import Chain, chain_table
from .context import ImportContext, attrs


def _strides(dims: tuple) -> list[int]:
    out, acc = [], 1
    for d in reversed(dims):
        out.append(acc)
        acc *= d
    return out[::-1]


def block_pieces(src: str, src_shape: tuple, dst_shape: tuple, begin: tuple) -> list[Piece]:
    """Copy all of ``src`` (NCHW / row-major ``src_shape``) into the output at ``begin`` (the offset
    of its first element, per ONNX axis), as pieces over contiguous runs of the DRAM order."""
    rank = len(src_shape)
    order = [memory_axis(a, rank) for a in range(rank)]
    mem_src, mem_dst = memory_dims(src_shape), memory_dims(dst_shape)
    mem_begin = [0] * rank
    for a in range(rank):
        mem_begin[order[a]] = begin[a]
    s_str, d_str = _strides(mem_src), _strides(mem_dst)
    # the innermost memory dims that are copied whole form one row; the one above them is the row index
    inner = rank
    while inner > 0 and mem_src[inner - 1] == mem_dst[inner - 1] and mem_begin[inner - 1] == 0:
        inner -= 1
    row_axis = inner - 1  # the outermost dim of a contiguous run; the dim above it counts the rows
    if row_axis < 0:
        total = int(np.prod(mem_src))
        return [Piece(src, 0, 1, total, total, 0, total)]
    rows = mem_src[row_axis - 1] if row_axis >= 1 else 1
    cols = int(np.prod(mem_src[row_axis:]))
    outer_axes = list(range(max(row_axis - 1, 0)))
    pieces = []
    for idx in itertools.product(*(range(mem_src[a]) for a in outer_axes)):
        s_at = sum(i * s_str[a] for i, a in zip(idx, outer_axes))
        d_at = sum((i + mem_begin[a]) * d_str[a] for i, a in zip(idx, outer_axes))
        if row_axis >= 1:
            r = row_axis - 1
            d_at += mem_begin[r] * d_str[r] + mem_begin[row_axis] * d_str[row_axis]
            pieces.append(Piece(src, s_at, rows, cols, s_str[r], d_at, d_str[r]))
        else:
            pieces.append(Piece(src, s_at, 1, cols, cols, d_at + mem_begin[0] * d_str[0], cols))
    return pieces


def slice_pieces(src: str, src_shape: tuple, begin: tuple, dst_shape: tuple) -> list[Piece]:
    """Copy the block of ``src`` starting at ``begin`` (per ONNX axis) and of ``dst_shape`` into
    the whole output: block_pieces with the roles of source and destination exchanged."""
    pieces = block_pieces(src, dst_shape, src_shape, begin)
    return [Piece(src, p.dst_at, p.rows, p.cols, p.dst_pitch, p.src_at, p.src_pitch) for p in pieces]


def _io(ctx: ImportContext, n: onnx.NodeProto, out: str) -> tuple[QTensor, str, object]:
    """The quantized input of a movement node, and the quantized name and node of output ``out``
    (QDQ: its QuantizeLinear, which must keep the input's parameters)."""
    src = ctx.graph.tensors.get(n.input[0])
    if src is not None:  # QOperator: on the quantized tensor itself
        return src, out, None
    (src,) = ctx.quantized_inputs(n, n.input[:1])
    qn = ctx.output_q(n, out)
    return src, qn.output[0], qn


def _same_params(a: QTensor, b: QTensor) -> bool:
    return (a.scale, a.zero_point, a.dtype) == (b.scale, b.zero_point, b.dtype)


def _requant(ctx: ImportContext, n: onnx.NodeProto, src: QTensor, dst: QTensor) -> None:
    """Q(DQ(code)) from ``src`` to ``dst`` (a QDQ movement op whose QuantizeLinear changes the
    parameters): one lookup table, ONNX Runtime's float DequantizeLinear -> QuantizeLinear."""
    if DTYPES[src.dtype][0] > 8 or DTYPES[dst.dtype][0] > 8:
        raise ModelError(n.name, n.op_type, f"requantizing {src.dtype} -> {dst.dtype}: the lookup table takes "
                                            "8-bit codes")
    ctx.graph.nodes.append(QLut(f"{n.name}:requant", f"{n.op_type}+requant", src.name, dst.name,
                                chain_table(src, dst, Chain(src.name, (), False, (), ()))))


def _add_output(ctx: ImportContext, n: onnx.NodeProto, src: QTensor, name: str, qn, shape: tuple) -> QTensor:
    """The tensor a movement op copies into: the output itself, or (when its QuantizeLinear has other
    parameters than the input) an intermediate one at the input's parameters that _finish_output
    requantizes."""
    if qn is None:
        return ctx.alias_tensor(name, src, shape)
    t = ctx.add_tensor(qn, name, shape, *ctx.qparams(qn))
    if _same_params(t, src):
        return t
    return ctx.alias_tensor(name + "::moved", src, shape)


def _finish_output(ctx: ImportContext, n: onnx.NodeProto, y: QTensor, name: str) -> None:
    """The requantization after a copy into an intermediate tensor (see _add_output)."""
    if y.name != name:
        _requant(ctx, n, y, ctx.graph.tensors[name])


def pad(ctx: ImportContext, n: onnx.NodeProto) -> None:
    """Pad, mode constant, non-negative pads on any axis (channels included)."""
    a = attrs(n)
    mode = a.get("mode", b"constant")
    if mode not in (b"constant", "constant"):
        raise ModelError(n.name, n.op_type, f"mode {mode.decode() if isinstance(mode, bytes) else mode} is not "
                                            "supported (only constant)")
    src, name, qn = _io(ctx, n, n.output[0])
    rank = len(src.shape)
    pads = np.asarray(ctx.optional_init(n, 1, "pads") if len(n.input) > 1 else a.get("pads"), np.int64).ravel()
    if len(n.input) > 3 and n.input[3]:
        raise ModelError(n.name, n.op_type, "the axes input is not supported")
    if pads.size != 2 * rank or (pads < 0).any():
        raise ModelError(n.name, n.op_type, f"pads {pads.tolist()} must be {2 * rank} non-negative values")
    value = ctx.optional_init(n, 2, "constant value")
    begin, end = tuple(int(p) for p in pads[:rank]), tuple(int(p) for p in pads[rank:])
    shape = tuple(d + b + e for d, b, e in zip(src.shape, begin, end))
    if qn is None:  # a constant of the quantized type (QOperator); absent: 0
        y = ctx.alias_tensor(name, src, shape)
        fill = int(np.asarray(value).reshape(())) if value is not None else 0
    else:  # the float constant, quantized with the output's parameters (the input requantized first)
        y = ctx.add_tensor(qn, name, shape, *ctx.qparams(qn))
        if not _same_params(y, src):
            moved = QTensor(name + "::requant", src.shape, y.dtype, y.scale, y.zero_point, src.rowmajor)
            ctx.graph.tensors[moved.name] = moved
            _requant(ctx, n, src, moved)
            src = moved
        v = np.float32(np.asarray(value, np.float32).reshape(())) if value is not None else np.float32(0)
        fill = int(quantize(np.array([v]), y.scale, y.zero_point, y.dtype)[0])
    ctx.graph.nodes.append(QCopy(n.name, n.op_type, [src.name], y.name, block_pieces(src.name, src.shape, shape, begin),
                                 fill))
    ctx.shapes[n.output[0]] = shape


def _axis(n: onnx.NodeProto, axis: int, rank: int) -> int:
    axis = axis + rank if axis < 0 else axis
    if not 0 <= axis < rank:
        raise ModelError(n.name, n.op_type, f"axis {axis} outside a rank-{rank} tensor")
    return axis


def slice_(ctx: ImportContext, n: onnx.NodeProto) -> None:
    """Slice with step 1 along any axes (ends clamped as ONNX says)."""
    src, name, qn = _io(ctx, n, n.output[0])
    rank = len(src.shape)
    starts = np.asarray(ctx.init(n, n.input[1], "starts"), np.int64).ravel()
    ends = np.asarray(ctx.init(n, n.input[2], "ends"), np.int64).ravel()
    axes = ctx.optional_init(n, 3, "axes")
    steps = ctx.optional_init(n, 4, "steps")
    axes = list(range(starts.size)) if axes is None else [int(x) for x in np.asarray(axes).ravel()]
    if steps is not None and (np.asarray(steps) != 1).any():
        raise ModelError(n.name, n.op_type, "steps other than 1 are not supported")
    begin, shape = [0] * rank, list(src.shape)
    for s, e, ax in zip(starts, ends, axes):
        ax = _axis(n, ax, rank)
        d = src.shape[ax]
        s = int(min(max(s + d if s < 0 else s, 0), d))
        e = int(min(max(e + d if e < 0 else e, 0), d))
        if e <= s:
            raise ModelError(n.name, n.op_type, f"an empty slice {s}:{e} of axis {ax}")
        begin[ax], shape[ax] = s, e - s
    y = _add_output(ctx, n, src, name, qn, tuple(shape))
    ctx.graph.nodes.append(QCopy(n.name, n.op_type, [src.name], y.name,
                                 slice_pieces(src.name, src.shape, tuple(begin), tuple(shape))))
    _finish_output(ctx, n, y, name)
    ctx.shapes[n.output[0]] = tuple(shape)


def split(ctx: ImportContext, n: onnx.NodeProto) -> None:
    """Split along an axis into the given sizes (an input or attribute) or equal parts."""
    qoperator = n.input[0] in ctx.graph.tensors
    src = ctx.graph.tensors[n.input[0]] if qoperator else ctx.quantized_inputs(n, n.input[:1])[0]
    rank = len(src.shape)
    axis = _axis(n, int(attrs(n).get("axis", 0)), rank)
    sizes = ctx.optional_init(n, 1, "split")
    if sizes is None:
        sizes = attrs(n).get("split")
    outputs = [o for o in n.output]
    if sizes is None:
        if src.shape[axis] % len(outputs):
            raise ModelError(n.name, n.op_type, f"{src.shape[axis]} does not split into {len(outputs)} equal parts")
        sizes = [src.shape[axis] // len(outputs)] * len(outputs)
    sizes = [int(s) for s in np.asarray(sizes).ravel()]
    if sum(sizes) != src.shape[axis] or len(sizes) != len(outputs):
        raise ModelError(n.name, n.op_type, f"sizes {sizes} do not split axis {axis} of {src.shape}")
    start = 0
    for out, size in zip(outputs, sizes):
        begin = [0] * rank
        begin[axis] = start
        shape = list(src.shape)
        shape[axis] = size
        start += size
        if not out:
            continue
        qn = None if qoperator else ctx.output_q(n, out)
        name = out if qn is None else qn.output[0]
        y = _add_output(ctx, n, src, name, qn, tuple(shape))
        ctx.graph.nodes.append(QCopy(f"{n.name}:{out}", n.op_type, [src.name], y.name,
                                     slice_pieces(src.name, src.shape, tuple(begin), tuple(shape))))
        _finish_output(ctx, n, y, name)
        ctx.shapes[out] = tuple(shape)
