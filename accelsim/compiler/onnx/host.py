"""What the host does around the chip: float ops after the last DequantizeLinear (Softmax, a final
Sigmoid, PRelu, ConvTranspose & co.: any standard op fed only by dequantized activations, run by
ONNX Runtime when it is installed, else by onnx's reference evaluator) and a Flatten/Reshape or
constant Clip of a float graph input before its QuantizeLinear."""

from __future__ import annotations

import onnx

from .context import ImportContext
from .layout import reshape_shape

#: ops that never run on the host after the chip: the quantizer's own
NOT_HOST_OPS = {"QuantizeLinear", "DequantizeLinear"}


def is_host_op(n: onnx.NodeProto) -> bool:
    """A standard float op the host may run after the chip's last DequantizeLinear."""
    return n.domain in ("", "ai.onnx") and n.op_type not in NOT_HOST_OPS


def _tail_candidates(model: onnx.ModelProto, inits: set[str]) -> list[onnx.NodeProto]:
    """Host ops fed only by activation DequantizeLinear outputs or by other such ops."""
    host_floats = {n.output[0] for n in model.graph.node if n.op_type == "DequantizeLinear" and n.input[0] not in inits}
    tail = []
    for n in model.graph.node:
        ins = [i for i in n.input if i and i not in inits]
        if is_host_op(n) and ins and all(i in host_floats for i in ins):
            tail.append(n)
            host_floats.update(n.output)
    return tail


def _without_feedback(model: onnx.ModelProto, tail: list[onnx.NodeProto]) -> list[onnx.NodeProto]:
    """Drop, until none is left, tail nodes whose outputs feed a node outside the tail."""
    while True:
        chip_inputs = {i for n in model.graph.node if n not in tail for i in n.input}
        kept = [n for n in tail if not (set(n.output) & chip_inputs)]
        if len(kept) == len(tail):
            return tail
        tail = kept


def split_host_tail(model: onnx.ModelProto) -> tuple[onnx.ModelProto, list[onnx.NodeProto]]:
    """The model without its host tail (the tail's inputs become graph outputs), and the tail."""
    inits = {i.name for i in model.graph.initializer}
    tail = _without_feedback(model, _tail_candidates(model, inits))
    if not tail:
        return model, []
    trimmed = onnx.ModelProto()
    trimmed.CopyFrom(model)
    del trimmed.graph.node[:]
    trimmed.graph.node.extend([n for n in model.graph.node if n not in tail])
    needed = {i for n in tail for i in n.input}
    produced = {o for n in tail for o in n.output}
    outs = [o for o in model.graph.output if o.name not in produced]
    kept = {o.name for o in outs}
    del trimmed.graph.output[:]
    trimmed.graph.output.extend(outs + [onnx.helper.make_empty_tensor_value_info(nm)
                                        for nm in sorted(needed - produced) if nm not in kept])
    return trimmed, tail


def host_input_op(ctx: ImportContext, n: onnx.NodeProto) -> bool:
    """A Flatten/Reshape or a constant Clip of a float graph input before its QuantizeLinear: the
    host does it (the Clip in float, as ONNX does, before quantizing).  True when ``n`` is one."""
    if n.input and n.input[0] in ctx.input_alias:
        source = ctx.input_alias[n.input[0]]
        if n.op_type in ("Flatten", "Reshape"):
            ctx.shapes[n.output[0]] = reshape_shape(ctx, n, ctx.shapes[n.input[0]])
        elif n.op_type == "Clip" and source not in ctx.graph.input_clips:
            bounds = [float(ctx.init(n, i, "bound")) if i else None for i in list(n.input[1:3]) + [""] * (3 - len(n.input))]
            ctx.shapes[n.output[0]] = ctx.shapes[n.input[0]]
            ctx.graph.input_clips[source] = (bounds[0], bounds[1])
        else:
            return False
        ctx.input_alias[n.output[0]] = source
        return True
    return False
