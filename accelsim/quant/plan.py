"""Which activation tensors carry a QuantizeLinear / DequantizeLinear pair, and which share
another's parameters.

The graph input and the output of every float op that reads a quantized activation are
quantized: Conv / Gemm / MatMul (after a Relu or Clip that is its only consumer: the activation is
fused into the requantization), Add, Mul, Concat, HardSigmoid, Sigmoid, GlobalAveragePool, Resize
(linear) and the rest are calibrated themselves; data movement (MaxPool, AveragePool, Pad, Slice,
Split, Flatten, Reshape, Transpose, a nearest Resize) keeps its input's parameters.  The
activation inputs and the output of each Add, Mul and Concat share one bit width.  Shape arithmetic on integer
tensors stays as it is.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import numpy as np
import onnx

from ..compiler.ir import ModelError
from .config import QuantConfig

LAYER_OPS = ("Conv", "Gemm", "MatMul")
#: outputs keep their input's parameters (data movement, max, nearest resampling)
SHARED_OPS = ("MaxPool", "Flatten", "Reshape", "Transpose", "Squeeze", "Unsqueeze", "Pad", "Slice", "Split",
              "Identity", "AveragePool")
ACTIVATIONS = ("Relu", "Clip")
#: ops whose activation inputs and output share one bit width (the vector unit reads and writes one type)
SAME_WIDTH_OPS = ("Add", "Sub", "Mul", "Div", "Concat", "Sum", "Max", "Min")


@dataclass
class PlannedTensor:
    """A planned activation tensor: calibrated by itself, or sharing ``source``'s parameters."""

    name: str
    node: str                     # the node whose bit width it takes
    bits: int
    source: Optional[str] = None  # shares this tensor's parameters
    scale: np.float32 = np.float32(1)
    zero_point: int = 0
    signed: bool = False
    clip: Optional[tuple[float, float]] = None


def _users(g: onnx.GraphProto) -> dict[str, list[onnx.NodeProto]]:
    users: dict[str, list] = {}
    for n in g.node:
        for i in n.input:
            users.setdefault(i, []).append(n)
    return users


def _fused_activation(n: onnx.NodeProto, users: dict, inits: set[str]) -> Optional[onnx.NodeProto]:
    """The Relu / Clip (constant bounds) that is a layer output's only consumer, or None."""
    us = users.get(n.output[0], [])
    if len(us) == 1 and us[0].op_type in ACTIVATIONS and not (set(us[0].input[1:]) - inits - {""}):
        return us[0]
    return None


def _own_output(n: onnx.NodeProto, users: dict, inits: set[str], fused: dict[str, str]) -> str:
    """The tensor a calibrated node's output is quantized at: after its fused activation, if any."""
    if n.op_type in ACTIVATIONS:
        return n.output[0]
    act = _fused_activation(n, users, inits)
    if act is None:
        return n.output[0]
    fused[act.name] = n.name
    return act.output[0]


def float_tensors(model: onnx.ModelProto) -> set[str]:
    """Names of the float32 tensors of a shape-inferred model (activations and float constants)."""
    g = model.graph
    typed = list(g.input) + list(g.value_info) + list(g.output)
    names = {v.name for v in typed if v.type.tensor_type.elem_type == onnx.TensorProto.FLOAT}
    return names | {i.name for i in g.initializer if i.data_type == onnx.TensorProto.FLOAT}


def _is_shared(n: onnx.NodeProto) -> bool:
    """A node whose outputs keep its input's parameters: data movement, or a nearest Resize."""
    if n.op_type == "Resize":
        mode = next((a.s for a in n.attribute if a.name == "mode"), b"nearest")
        return mode == b"nearest"
    return n.op_type in SHARED_OPS


def _plan_node(n: onnx.NodeProto, ins: list[str], plan: dict, users: dict, inits: set[str], fused: dict,
               floats: set[str], config: QuantConfig) -> None:
    """Plan the float outputs of one node that reads quantized activations ``ins``."""
    if n.op_type in LAYER_OPS and (len(n.input) < 2 or n.input[1] not in inits):
        raise ModelError(n.name, n.op_type, "weights must be an initializer")
    outs = [o for o in n.output if o and (o in floats or not floats)]
    if _is_shared(n):
        src = plan[ins[0]]
        for o in outs:
            plan[o] = PlannedTensor(o, n.name, src.bits, source=src.source or src.name)
        return
    if len(outs) == 1:
        out = _own_output(n, users, inits, fused) if n.op_type not in ACTIVATIONS else outs[0]
        plan[out] = PlannedTensor(out, n.name, config.activation_bits_of(n.name))
        return
    for o in outs:
        plan[o] = PlannedTensor(o, n.name, config.activation_bits_of(n.name))


def _root(plan: dict[str, PlannedTensor], name: str) -> str:
    return plan[name].source or name


def width_groups(model: onnx.ModelProto, plan: dict[str, PlannedTensor]) -> list[set[str]]:
    """The tensors (by the name whose parameters they carry) that must share one bit width: the
    inputs and outputs of each Add, Mul and Concat, merged where groups meet."""
    parent: dict[str, str] = {}

    def find(x: str) -> str:
        while parent.get(x, x) != x:
            x = parent[x]
        return x

    own: dict[str, list[str]] = {}  # node -> the tensors quantized at its width (after a fused Relu too)
    for t in plan.values():
        if t.source is None:
            own.setdefault(t.node, []).append(t.name)
    for n in model.graph.node:
        names = [_root(plan, i) for i in n.input if i in plan] + own.get(n.name, [])
        if n.op_type in SAME_WIDTH_OPS and len(names) > 1:
            for other in names[1:]:
                ra, rb = find(names[0]), find(other)
                if ra != rb:
                    parent[rb] = ra
    groups: dict[str, set[str]] = {}
    for t in plan.values():
        if t.source is None:
            groups.setdefault(find(t.name), set()).add(t.name)
    return list(groups.values())


def share_widths(model: onnx.ModelProto, plan: dict[str, PlannedTensor]) -> None:
    """One bit width for the activations of each residual Add, Mul and Concat, inputs and output
    (the widest of them), carried through shared tensors: groups that meet in one node merge."""
    for group in width_groups(model, plan):
        widest = max(plan[t].bits for t in group)
        for t in group:
            plan[t].bits = widest
    for t in plan.values():
        if t.source is not None:
            t.bits = plan[t.source].bits


def plan_tensors(model: onnx.ModelProto, config: QuantConfig) -> tuple[dict[str, PlannedTensor], dict[str, str]]:
    """The activation tensors to quantize (graph input first), and the layer each fused
    activation node belongs to.  Every float op that reads a quantized activation gets its output
    quantized (its own parameters, or its input's for data movement); shape arithmetic on integer
    tensors is left alone."""
    g = model.graph
    inits = {i.name for i in g.initializer}
    floats = float_tensors(model)
    users = _users(g)
    plan: dict[str, PlannedTensor] = {inp.name: PlannedTensor(inp.name, inp.name, config.activation_bits_of(inp.name))
                                      for inp in g.input if inp.name not in inits}
    fused: dict[str, str] = {}
    for n in g.node:
        if n.name in fused:
            continue
        ins = [i for i in n.input if i in plan]
        unplanned = [i for i in n.input if i and i not in plan and i not in inits and (i in floats or not floats)]
        if unplanned and ins:
            raise ModelError(n.name, n.op_type, f"input {unplanned[0]!r} comes from an op the quantizer does not handle")
        if ins:
            _plan_node(n, ins, plan, users, inits, fused, floats, config)
    share_widths(model, plan)
    return plan, fused
