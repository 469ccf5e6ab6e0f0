"""Which activation tensors carry a QuantizeLinear / DequantizeLinear pair, and which share
another's parameters.

The graph input, the output of every Conv / Gemm / MatMul / Add / Concat / GlobalAveragePool
(after a Relu or Clip that is its only consumer: the activation is fused into the
requantization) and of standalone activations are calibrated themselves; MaxPool, AveragePool,
Flatten, Reshape and Transpose outputs share their input's parameters.  Anything else stays
float and must only read dequantized tensors (it runs on the host).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import numpy as np
import onnx

from ..compiler.ir import ModelError
from .config import QuantConfig

LAYER_OPS = ("Conv", "Gemm", "MatMul")
SHARED_OPS = ("MaxPool", "AveragePool", "Flatten", "Reshape", "Transpose")   # output keeps input's parameters
OWN_OPS = ("Add", "Concat", "GlobalAveragePool")                            # output calibrated itself
ACTIVATIONS = ("Relu", "Clip")


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


def plan_tensors(model: onnx.ModelProto, config: QuantConfig) -> tuple[dict[str, PlannedTensor], dict[str, str]]:
    """The activation tensors to quantize (graph input first), and the layer each fused
    activation node belongs to."""
    g = model.graph
    inits = {i.name for i in g.initializer}
    users = _users(g)
    plan: dict[str, PlannedTensor] = {inp.name: PlannedTensor(inp.name, inp.name, config.activation_bits_of(inp.name))
                                      for inp in g.input if inp.name not in inits}
    fused: dict[str, str] = {}
    for n in g.node:
        ins = [i for i in n.input if i and i not in inits]
        if n.name in fused:
            continue
        if n.op_type in LAYER_OPS + OWN_OPS + ACTIVATIONS + ("BatchNormalization",):
            for i in ins:
                if i not in plan:
                    raise ModelError(n.name, n.op_type, f"input {i!r} comes from an op the quantizer does not handle")
            if n.op_type in LAYER_OPS and (len(n.input) < 2 or n.input[1] not in inits):
                raise ModelError(n.name, n.op_type, "weights must be an initializer")
            out = _own_output(n, users, inits, fused)
            plan[out] = PlannedTensor(out, n.name, config.activation_bits_of(n.name))
        elif n.op_type in SHARED_OPS:
            if not ins or ins[0] not in plan:
                raise ModelError(n.name, n.op_type, f"input {ins[0] if ins else ''!r} is not quantized")
            src = plan[ins[0]]
            plan[n.output[0]] = PlannedTensor(n.output[0], n.name, src.bits, source=src.source or src.name)
    return plan, fused
