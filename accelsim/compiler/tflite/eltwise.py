"""ADD and MUL of two quantized tensors (or a tensor and a constant) on the vector unit, in the
engine's VADD / VMUL mode; TFLite broadcasting (dims aligned on the right in the file's order)."""

from __future__ import annotations

import numpy as np

from ..ir import QAdd, QMul, QReshape, QTensor
from .context import TFLiteContext, nchw
from .load import TOp


def _operand(ctx: TFLiteContext, op: TOp, k: int, rank: int) -> QTensor:
    """Input ``k`` as a rank-``rank`` QTensor: an activation (viewed at that rank when it has
    fewer dims) or a constant placed in DRAM."""
    t = ctx.tensor(op.inputs[k])
    if t.data is None:
        x = ctx.q(op, k)
        file_shape = (x.shape[0], x.shape[2], x.shape[3], x.shape[1]) if len(x.shape) == 4 else tuple(x.shape)
        if len(file_shape) == rank:
            return x
        view = QTensor(f"{x.name}:rank{rank}", nchw((1,) * (rank - len(file_shape)) + file_shape), x.dtype,
                       x.scale, x.zero_point)
        ctx.graph.tensors[view.name] = view
        ctx.graph.nodes.append(QReshape(view.name, "RESHAPE", x.name, view.name, nhwc=True))
        return view
    if not t.quantized or t.type not in ("INT8", "UINT8"):
        raise ctx.fail(op, f"constant operand {t.name!r} is not a quantized int8 / uint8 tensor")
    shape = (1,) * (rank - t.data.ndim) + tuple(t.data.shape)
    data = t.data.reshape(shape)
    q = QTensor(f"{t.name}#{t.index}:const", nchw(shape), "s8" if t.type == "INT8" else "u8",
                np.float32(t.scale[0]), int(t.zero_point[0]))
    ctx.graph.tensors[q.name] = q
    ctx.graph.constants[q.name] = data.transpose(0, 3, 1, 2) if rank == 4 else data
    return q


def binary(ctx: TFLiteContext, op: TOp) -> None:
    """ADD / MUL with a fused activation; the operand that broadcasts goes second."""
    ranks = [len(ctx.tensor(i).shape) for i in op.inputs[:2]]
    rank = max(max(ranks), 1)
    a, b = (_operand(ctx, op, k, rank) for k in (0, 1))
    if int(np.prod(b.shape)) > int(np.prod(a.shape)):
        a, b = b, a
    y = ctx.out(op)
    if tuple(y.shape) != tuple(a.shape):
        raise ctx.fail(op, f"broadcasts both operands (output {ctx.tensor(op.outputs[0]).shape}); the vector unit "
                           "broadcasts the second only")
    for t in (a, b):
        if t.dtype not in ("s8", "u8") or t.dtype != y.dtype:
            raise ctx.fail(op, f"operand types {a.dtype}, {b.dtype} -> {y.dtype}: int8 or uint8 throughout")
    act = op.options.FusedActivationFunction() if op.options is not None else 0
    cls = QMul if op.op == "MUL" else QAdd
    ctx.graph.nodes.append(cls(y.name, op.op, a.name, b.name, y.name, ctx.clamp(op, y, act, delegated=True),
                               requant=ctx.engine.mul if op.op == "MUL" else ctx.engine.add))


HANDLERS = {"ADD": binary, "MUL": binary}
