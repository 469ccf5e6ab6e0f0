"""QuantizeLinear and DequantizeLinear: graph inputs, graph outputs, and the activation edges
between the ops of a QDQ model."""

from __future__ import annotations

import onnx

from ..ir import ModelError, QReshape
from . import chains, islands
from .context import ImportContext, dtype_name, scalar_f32, scalar_int


def quantize_linear(ctx: ImportContext, n: onnx.NodeProto) -> None:
    """A QuantizeLinear the op before it has not taken: of a graph input, or of a tensor quantized
    a second time (ORT's dedicated QDQ pairs), which must repeat the first one's parameters."""
    src = n.input[0]
    if n.output[0] in ctx.graph.tensors:  # registered by the node that produces ``src``
        return
    if src in ctx.chains:  # the end of a chain of elementwise float ops: a lookup table
        chains.finish(ctx, n, ctx.chains[src])
        return
    if src in ctx.lazy:  # the end of a float region: a host step
        islands.finish(ctx, n)
        return
    first = ctx.quantized_at[src]
    if first is n and src in ctx.input_alias:
        t = ctx.add_tensor(n, n.output[0], ctx.shapes[src], *ctx.qparams(n))
        ctx.graph.inputs[ctx.input_alias[src]] = t.name
        return
    if first is not n and first.output[0] in ctx.graph.tensors:
        prev = ctx.graph.tensors[first.output[0]]
        zp = ctx.init(n, n.input[2], "zero point")
        again = (scalar_f32(ctx.init(n, n.input[1], "scale")), scalar_int(zp), dtype_name(zp, n.name, n.op_type))
        if again != (prev.scale, prev.zero_point, prev.dtype):
            raise ModelError(n.name, n.op_type, f"quantizes {src!r} a second time with other parameters")
        ctx.alias_tensor(n.output[0], prev)
        ctx.graph.nodes.append(QReshape(n.name or n.output[0], n.op_type, prev.name, n.output[0]))
        return
    if src in ctx.q_of_float:  # QuantizeLinear(DequantizeLinear(x)): x again, or x requantized
        _requantize(ctx, n, ctx.graph.tensors[ctx.q_of_float[src]])
        return
    raise ModelError(n.name, n.op_type, f"quantizes {src!r}, which no node the chip runs produces")


def _requantize(ctx: ImportContext, n: onnx.NodeProto, prev) -> None:
    """Q(DQ(x)): an alias of x with the same parameters, else a requantizing lookup table."""
    zp = ctx.init(n, n.input[2], "zero point")
    again = (scalar_f32(ctx.init(n, n.input[1], "scale")), scalar_int(zp), dtype_name(zp, n.name, n.op_type))
    if again == (prev.scale, prev.zero_point, prev.dtype):
        ctx.alias_tensor(n.output[0], prev)
        ctx.graph.nodes.append(QReshape(n.name or n.output[0], n.op_type, prev.name, n.output[0]))
        return
    chains.finish(ctx, n, chains.chain_of(ctx, n.input[0]))


def dequantize_linear(ctx: ImportContext, n: onnx.NodeProto) -> None:
    """A DequantizeLinear of an activation: the float edge its consumers read (or a graph output).
    Those of initializers (weights, biases) were collected when the import began."""
    if n.input[0] in ctx.inits:
        return
    if n.input[0] not in ctx.graph.tensors:
        raise ModelError(n.name, n.op_type, f"dequantizes {n.input[0]!r}, which no QuantizeLinear produced")
    ctx.q_of_float[n.output[0]] = n.input[0]
    ctx.shapes[n.output[0]] = ctx.graph.tensors[n.input[0]].shape
    if n.output[0] in ctx.graph_outputs:
        ctx.graph.outputs[n.output[0]] = n.input[0]
