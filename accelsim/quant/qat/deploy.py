"""From the trained network to what the chip runs: the float graph of the steps, its
quantization plan (accelsim.quant.plan, so widths are shared as the PTQ path shares them), the
deployed integers (``Deployment``) and the QDQ model the project's writer makes of them.

The integer-exact evaluation forward (accelsim.quant.qat.integer) and the exported file read the
same ``Deployment``, so the codes training measures are the codes in the file.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

import numpy as np
import onnx
import torch
from onnx import TensorProto, helper, numpy_helper

from ..config import QuantConfig, bit_range, container
from ..plan import PlannedTensor, plan_tensors
from ..qdq import bias_codes, integer_clamp, write_qdq
from .steps import AddStep, DropoutStep, FlattenStep, InputStep, LayerStep, MaxPoolStep, QatNet

OUTPUT = "output"


# ------------------------------------------------------------------------------------------ float graph
class _Graph:
    def __init__(self) -> None:
        self.nodes: list[onnx.NodeProto] = []
        self.inits: list[onnx.TensorProto] = []
        self.tensor: dict[str, str] = {}  # step -> the tensor that holds its output

    def const(self, name: str, value: np.ndarray) -> str:
        self.inits.append(numpy_helper.from_array(np.asarray(value, np.float32), name))
        return name

    def node(self, op: str, name: str, inputs: list[str], **attrs) -> str:
        out = name + "_y"
        self.nodes.append(helper.make_node(op, inputs, [out], name=name, **attrs))
        return out

    def activation(self, step, y: str) -> str:
        if step.act is None:
            return y
        op, bounds = step.act.onnx
        ins = [y] + [self.const(f"{step.step_name}_act_{k}", np.float32(v)) for k, v in zip(("lo", "hi"), bounds)]
        return self.node(op, step.step_name + "_act", ins)


def _layer(g: _Graph, s: LayerStep, x: str, deployed: bool) -> str:
    if deployed:
        codes, scale, bias = s.deployed()
        w = (codes.astype(np.float32) * scale.reshape((-1,) + (1,) * (codes.ndim - 1))).astype(np.float32)
    else:
        w, bias = s.weight.detach().numpy(), np.zeros(s.weight.shape[0], np.float32)
    ins = [x, g.const(s.step_name + ".weight", w), g.const(s.step_name + ".bias", bias)]
    if s.kind == "linear":
        return g.activation(s, g.node("Gemm", s.step_name, ins, transB=1))
    geo = s.geometry
    y = g.node("Conv", s.step_name, ins, kernel_shape=list(w.shape[2:]), strides=list(geo.stride),
               pads=list(geo.padding) * 2, dilations=list(geo.dilation), group=geo.groups)
    return g.activation(s, y)


def float_model(net: QatNet, input_shape: Optional[list] = None, deployed: bool = False) -> tuple[onnx.ModelProto, dict]:
    """The float ONNX graph of the steps (node names = step names; the deployed weights when
    ``deployed``), and the map step -> the tensor holding its output."""
    g = _Graph()
    for s in net.steps:
        xs = [g.tensor[i] for i in s.inputs]
        if isinstance(s, InputStep):
            g.tensor[s.step_name] = s.step_name
        elif isinstance(s, LayerStep):
            g.tensor[s.step_name] = _layer(g, s, xs[0], deployed)
        elif isinstance(s, MaxPoolStep):
            g.tensor[s.step_name] = g.node("MaxPool", s.step_name, xs, kernel_shape=list(s.kernel),
                                           strides=list(s.stride), pads=list(s.padding) * 2,
                                           dilations=list(s.dilation), ceil_mode=int(s.ceil_mode))
        elif isinstance(s, FlattenStep):
            g.tensor[s.step_name] = g.node("Flatten", s.step_name, xs, axis=1)
        elif isinstance(s, DropoutStep):
            g.tensor[s.step_name] = xs[0]
        elif isinstance(s, AddStep):
            g.tensor[s.step_name] = g.activation(s, g.node("Add", s.step_name, xs))
    last = g.tensor[net.output]
    for n in g.nodes:
        n.output[:] = [OUTPUT if o == last else o for o in n.output]
    g.tensor = {k: OUTPUT if v == last else v for k, v in g.tensor.items()}
    first = net.steps[0].step_name
    graph = helper.make_graph(g.nodes, "accelsim_qat",
                              [helper.make_tensor_value_info(first, TensorProto.FLOAT, input_shape)],
                              [helper.make_tensor_value_info(OUTPUT, TensorProto.FLOAT, None)], g.inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 21)], producer_name="accelsim.qat")
    model.ir_version = 10
    return onnx.shape_inference.infer_shapes(model), g.tensor


def plan_widths(net: QatNet, activation_bits: dict[str, int], weight_bits: dict[str, int]
                ) -> tuple[dict[str, int], QuantConfig]:
    """Each quantized step's output width after the plan's sharing rules (the inputs and output of
    an Add share one width), and the QuantConfig the writer takes."""
    model, tensor = float_model(net)
    layer_bits = {k: {"activation_bits": b} for k, b in activation_bits.items()}
    for k, b in weight_bits.items():
        layer_bits.setdefault(k, {})["weight_bits"] = b
    config = QuantConfig(layer_bits=layer_bits)
    plan, _ = plan_tensors(model, config)
    widths = {s.step_name: plan[tensor[s.step_name]].bits for s in net.steps if s.out_quant is not None}
    return widths, config


# ------------------------------------------------------------------------------------------ deployment
@dataclass
class Quantized:
    """A deployed activation tensor: scale, zero point, signedness, width, and the integer clamp
    the chip applies where it is produced (its width and fused activation)."""

    scale: np.float32
    zero_point: int
    signed: bool
    bits: int
    lo: int
    hi: int
    clip: Optional[tuple[float, float]] = None  # float Clip the writer adds for a narrow width


@dataclass
class Deployment:
    """Everything the chip computes with, per step."""

    tensors: dict[str, Quantized] = field(default_factory=dict)      # step -> its output's parameters
    weights: dict[str, tuple[np.ndarray, np.ndarray]] = field(default_factory=dict)  # layer -> codes, scales
    biases: dict[str, np.ndarray] = field(default_factory=dict)      # layer -> int32 codes
    float_bias: dict[str, np.ndarray] = field(default_factory=dict)  # layer -> folded float32 bias


def _narrow_clip(scale: np.float32, zp: int, bits: int, signed: bool) -> Optional[tuple[float, float]]:
    """The float Clip of a width below its 4-bit container (before the QuantizeLinear of a graph
    input, or merged into a fused activation: accelsim.quant.ptq._set_parameters)."""
    if bits == container(bits):
        return None
    qmin, qmax = bit_range(bits, signed)
    return float(scale * (qmin - zp)), float(scale * (qmax - zp))


def _bounds(act) -> tuple[float, float]:
    if act is None:
        return -np.inf, np.inf
    return (-np.inf if act.lo is None else act.lo), (np.inf if act.hi is None else act.hi)


def deployment(net: QatNet) -> Deployment:
    """The deployed integers of a trained network (eval mode, BatchNorm folded with its running
    statistics)."""
    d = Deployment()
    for s in net.steps:
        if s.out_quant is not None:
            scale, zp, signed = s.out_quant.deployed()
            scale, zp, bits = np.float32(scale), int(zp), s.out_quant.bits
            if isinstance(s, InputStep):  # a narrow input's Clip runs in float before its QuantizeLinear
                lo, hi = bit_range(container(bits), signed)
                clip = _narrow_clip(scale, zp, bits, signed)
            else:
                (lo, hi), clip = integer_clamp(scale, zp, bits, signed, *_bounds(getattr(s, "act", None))), None
            d.tensors[s.step_name] = Quantized(scale, zp, bool(signed), bits, lo, hi, clip)
        else:
            d.tensors[s.step_name] = d.tensors[s.inputs[0]]
        if isinstance(s, LayerStep):
            codes, w_scale, b = s.deployed()
            d.weights[s.step_name] = (codes, w_scale)
            d.float_bias[s.step_name] = b
            d.biases[s.step_name] = bias_codes(b, d.tensors[s.inputs[0]].scale, w_scale)[0]
    return d


def _fill_plan(plan: dict[str, PlannedTensor], tensor: dict[str, str], d: Deployment, net: QatNet) -> None:
    own = {tensor[s.step_name]: s.step_name for s in net.steps if s.out_quant is not None}
    for t in plan.values():
        if t.source is None:
            q = d.tensors[own[t.name]]
            if q.bits != t.bits:
                raise ValueError(f"{t.name}: trained at {q.bits} bits, planned at {t.bits} (prepare the network again)")
            t.scale, t.zero_point, t.signed = q.scale, q.zero_point, q.signed
            t.clip = _narrow_clip(q.scale, q.zero_point, q.bits, q.signed)
    for t in plan.values():
        if t.source is not None:
            s = plan[t.source]
            t.scale, t.zero_point, t.signed, t.bits = s.scale, s.zero_point, s.signed, s.bits


def _lowest_opset(q: onnx.ModelProto) -> None:
    """Opset 13 unless a 4-bit type needs 21: ONNX Runtime 1.31 fuses QDQ groups into its integer
    kernels at opset 13 (at 21 it leaves them as float convolutions)."""
    four = {TensorProto.INT4, TensorProto.UINT4}
    if not any(i.data_type in four for i in q.graph.initializer):
        next(o for o in q.opset_import if o.domain in ("", "ai.onnx")).version = 13
        onnx.checker.check_model(q)


def to_qdq(net: QatNet, input_shape: Optional[list] = None, min_container: int = 4
           ) -> tuple[onnx.ModelProto, Deployment]:
    """The standard QDQ model of the trained network and the deployment it holds.  Fused
    activations and narrow widths are integer Clips on the codes (after QuantizeLinear) where the
    container is 8 bits; ``min_container=8`` stores every width in 8 bits (the twin ONNX Runtime
    runs with its integer kernels: it has none for 4-bit types)."""
    was = net.training
    net.eval()
    try:
        d = deployment(net)
        model, tensor = float_model(net, input_shape, deployed=True)
        config = net.quant_config
        plan, fused = plan_tensors(model, config)
        _fill_plan(plan, tensor, d, net)
        q = write_qdq(model, plan, fused, config, weights=d.weights, producer="accelsim.qat", integer_clamps=True,
                      min_container=min_container)
        _lowest_opset(q)
    finally:
        net.train(was)
    return q, d


def export(net: QatNet, example_input: torch.Tensor, path: str | Path) -> onnx.ModelProto:
    """Write the trained network as a QDQ ONNX model (input shape that of ``example_input`` with
    a free batch axis); ONNX Runtime and ``accelsim run`` both take it."""
    shape = ["batch"] + list(example_input.shape[1:])
    q, _ = to_qdq(net, shape)
    onnx.save(q, str(path))
    return q
