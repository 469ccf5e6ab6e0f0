"""``prepare(model, config)``: a PyTorch module or a float ONNX model becomes a ``QatNet`` with the
method's quantizers at the widths the quantization plan gives (the user trains it with their own
loop; ``export`` writes it)."""

from __future__ import annotations

import copy

import onnx
import torch

from .config import QatConfig, QatError, activation_quantizer, input_quantizer, weight_quantizer
from .deploy import plan_widths
from .steps import AddStep, DropoutStep, FlattenStep, InputStep, LayerStep, MaxPoolStep, QatNet, Step
from .trace import Spec, from_onnx, from_torch


def _after_relu(spec: Spec) -> bool:
    return spec.act is not None and spec.act.lo is not None and spec.act.lo >= 0


def _step(spec: Spec, config: QatConfig, bits: int) -> Step:
    """One step with its quantizers (``bits``: its output's width)."""
    if spec.kind == "input":
        return InputStep(spec.name, input_quantizer(bits))
    oq = activation_quantizer(config.method, bits, _after_relu(spec), config.momentum)
    if spec.kind in ("conv", "linear"):
        wq = weight_quantizer(config.method, config.weight_bits_of(spec.name), spec.weight)
        return LayerStep(spec.name, spec.inputs, spec.kind, spec.weight, spec.bias, spec.geometry, spec.bn,
                         spec.act, wq, oq)
    if spec.kind == "add":
        return AddStep(spec.name, spec.inputs, spec.act, oq)
    if spec.kind == "maxpool":
        return MaxPoolStep(spec.name, spec.inputs, **spec.pool)
    if spec.kind == "flatten":
        return FlattenStep(spec.name, spec.inputs)
    return DropoutStep(spec.name, spec.inputs, spec.p)


def _activation_bits(specs: list[Spec], config: QatConfig) -> dict[str, int]:
    """The asked-for output width of each quantized step (the ends at 8 bits unless named)."""
    last = specs[-1].name
    out = {}
    for s in specs:
        if s.kind not in ("input", "conv", "linear", "add"):
            continue
        named = s.name in config.layer_bits and "activation_bits" in config.layer_bits[s.name]
        out[s.name] = 8 if config.keep_ends and not named and s.name in ("input", last) \
            else config.activation_bits_of(s.name)
    return out


def prepare(model: torch.nn.Module | onnx.ModelProto, config: QatConfig | None = None) -> QatNet:
    """The network to train: fake quantization as ``config`` says, BatchNorm folded into its
    convolution, ReLU / ReLU6 / Clip fused into the layer before.  ``model`` is left unchanged."""
    config = config or QatConfig()
    if isinstance(model, onnx.ModelProto):
        specs, _ = from_onnx(model)
    else:
        specs = from_torch(copy.deepcopy(model))
    names = {s.name for s in specs}
    unknown = sorted(set(config.layer_bits) - names)
    if unknown:
        raise QatError(f"layer_bits names steps the model does not have: {', '.join(unknown)}")
    asked = _activation_bits(specs, config)
    weights = {s.name: config.weight_bits_of(s.name) for s in specs if s.kind in ("conv", "linear")}
    net = QatNet([_step(s, config, asked.get(s.name, 8)) for s in specs], specs[-1].name)
    widths, qconfig = plan_widths(net, asked, weights)
    for k, s in enumerate(net.steps):
        if s.out_quant is not None and widths[s.step_name] != asked[s.step_name]:  # widened by sharing
            net.steps[k] = _step(specs[k], config, widths[s.step_name])
    net.quant_config = qconfig
    net.qat_config = config
    return net
