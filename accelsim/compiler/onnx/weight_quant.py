"""ONNX Runtime's WeightBiasQuantization graph transformer, applied before import so the chip sees
the weights ORT computes with.

A Conv, ConvTranspose or Gemm whose input comes from a DequantizeLinear with a per-tensor scale
and whose output reaches a QuantizeLinear through Relu / Clip nodes without branching, but whose
weight is a float32 initializer (QOperator models leave ConvTranspose so, and any layer the
quantizer skipped), gets its weight quantized by ORT at load time: int8, per tensor, asymmetric
(qmath.h GetQuantizationParameter: the range widened to 0, ``s = (max - min) / 255``,
``z = round_half_even(clamp(-128 - min / s))``, all in float32), then dequantized again.  A 1-D
float bias becomes int32 ``round_half_even(b / (s_x * s_w))`` behind a DequantizeLinear with
that scale.  Without this the float result differs from ORT's in the last bits.
"""

from __future__ import annotations

import numpy as np
import onnx
from onnx import helper, numpy_helper

from isa.quant import quantize

LAYERS = ("Conv", "ConvTranspose", "Gemm")


def _consumers(model: onnx.ModelProto) -> dict[str, list[onnx.NodeProto]]:
    users: dict[str, list] = {}
    for n in model.graph.node:
        for i in n.input:
            users.setdefault(i, []).append(n)
    return users


def reaches_quantize(n: onnx.NodeProto, users: dict, outputs: set[str]) -> bool:
    """Whether ``n``'s single output reaches a QuantizeLinear through single-consumer Relu / Clip."""
    while True:
        if len(n.output) != 1 or n.output[0] in outputs:
            return False
        us = users.get(n.output[0], [])
        if len(us) != 1:
            return False
        if us[0].op_type == "QuantizeLinear":
            return True
        if us[0].op_type not in ("Relu", "Clip"):
            return False
        n = us[0]


def weight_parameters(w: np.ndarray) -> tuple[np.float32, int]:
    """ORT's GetQuantizationParameter<int8_t> (asymmetric, full range) in float32."""
    w = np.asarray(w, np.float32)
    lo = min(np.float32(w.min()), np.float32(0)) if w.size else np.float32(0)
    hi = max(np.float32(w.max()), np.float32(0)) if w.size else np.float32(0)
    scale = np.float32(1) if hi == lo else np.float32(np.float32(hi - lo) / np.float32(255))
    initial = np.float32(np.float32(-128) - np.float32(lo / scale))
    return scale, int(np.rint(np.clip(initial, np.float32(-128), np.float32(127))))


def _dq(name: str, q: np.ndarray, scale, zp, inits: list, axis: int | None = None) -> onnx.NodeProto:
    """A DequantizeLinear of a new integer initializer ``name``_q."""
    inits += [numpy_helper.from_array(q, name + "_q"), numpy_helper.from_array(np.asarray(scale, np.float32), name + "_scale"),
              numpy_helper.from_array(np.asarray(zp, q.dtype), name + "_zp")]
    attrs = {} if axis is None else {"axis": axis}
    return helper.make_node("DequantizeLinear", [name + "_q", name + "_scale", name + "_zp"], [name + "_dq"],
                            name=name + "_dq", **attrs)


def _weight_dq(n: onnx.NodeProto, w: np.ndarray, inits: list) -> tuple[onnx.NodeProto, np.ndarray]:
    scale, zp = weight_parameters(w)
    q = quantize(w, scale, zp, "s8").astype(np.int8)
    return _dq(n.name + "_weight", q, scale, zp, inits), np.asarray(scale, np.float32)


def _bias_dq(n: onnx.NodeProto, b: np.ndarray, bias_scale: np.ndarray, inits: list) -> onnx.NodeProto:
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        v = np.rint((np.asarray(b, np.float32) / bias_scale).astype(np.float32))
    q = np.clip(v, -(2 ** 31), 2 ** 31 - 1).astype(np.int32)
    return _dq(n.name + "_bias", q, bias_scale, np.zeros(bias_scale.shape, np.int32), inits,
               axis=None if bias_scale.size == 1 else 0)


def quantize_float_weights(model: onnx.ModelProto) -> onnx.ModelProto:
    """A copy with ORT's load-time weight (and bias) quantization applied (see the module)."""
    g = model.graph
    inits = {i.name: i for i in g.initializer}
    producer = {o: n for n in g.node for o in n.output}
    users, outputs = _consumers(model), {o.name for o in g.output}
    new_inits: list = []
    new_nodes: list = []
    for n in g.node:
        if n.op_type in LAYERS and len(n.input) > 1:
            new_nodes += _rewrite(n, producer, inits, users, outputs, new_inits)
        new_nodes.append(n)
    if not new_inits:
        return model
    m = onnx.ModelProto()
    m.CopyFrom(model)
    del m.graph.node[:]
    m.graph.node.extend(new_nodes)
    m.graph.initializer.extend(new_inits)
    return m


def _scalar_dq_input(n: onnx.NodeProto, producer: dict, inits: dict):
    """The per-tensor DequantizeLinear feeding ``n``'s input, or None."""
    dq = producer.get(n.input[0])
    if dq is None or dq.op_type != "DequantizeLinear" or dq.input[1] not in inits:
        return None
    return dq if numpy_helper.to_array(inits[dq.input[1]]).size == 1 else None


def _rewrite(n: onnx.NodeProto, producer: dict, inits: dict, users: dict, outputs: set[str],
             new_inits: list) -> list[onnx.NodeProto]:
    """The DequantizeLinear nodes ORT would put before layer ``n`` (``n``'s inputs are redirected)."""
    dq_x = _scalar_dq_input(n, producer, inits)
    if dq_x is None or not reaches_quantize(n, users, outputs):
        return []
    dq_w = producer.get(n.input[1])
    w_init = inits.get(n.input[1])
    if not (dq_w is not None and dq_w.op_type == "DequantizeLinear") and \
            (w_init is None or w_init.data_type != onnx.TensorProto.FLOAT):
        return []
    has_dq_w = dq_w is not None and dq_w.op_type == "DequantizeLinear"
    bias = inits.get(n.input[2]) if len(n.input) > 2 and n.input[2] else None
    if len(n.input) > 2 and n.input[2] and (bias is None or len(bias.dims) != 1):
        return []
    if has_dq_w and bias is None:
        return []
    added = []
    if has_dq_w:
        w_scale = np.asarray(numpy_helper.to_array(inits[dq_w.input[1]]), np.float32)
        if w_scale.size > 1 and (w_scale.ndim != 1 or bias is None or w_scale.size != bias.dims[0]):
            return []
    else:
        node, w_scale = _weight_dq(n, numpy_helper.to_array(w_init), new_inits)
        n.input[1] = node.output[0]
        added.append(node)
    if bias is not None and bias.data_type == onnx.TensorProto.FLOAT:
        x_scale = np.float32(numpy_helper.to_array(inits[dq_x.input[1]]))
        node = _bias_dq(n, numpy_helper.to_array(bias), (x_scale * w_scale.ravel()).astype(np.float32), new_inits)
        n.input[2] = node.output[0]
        added.append(node)
    return added
