"""The QDQ writer: a float ONNX model and its planned activation quantization in, a standard QDQ
model out (integer weights and int32 biases behind DequantizeLinear, a QuantizeLinear /
DequantizeLinear pair on every planned activation).  ONNX Runtime and accelsim both run it."""

from __future__ import annotations

from typing import Optional

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from isa.quant import scale_zero_point

from ..compiler.ir import ModelError
from .config import QuantConfig, bit_range, container
from .plan import LAYER_OPS, PlannedTensor

_CONTAINER = {4: (TensorProto.UINT4, TensorProto.INT4), 8: (TensorProto.UINT8, TensorProto.INT8),
              16: (TensorProto.UINT16, TensorProto.INT16)}


def _zp_tensor(name: str, bits: int, signed: bool, values: np.ndarray, min_container: int = 4) -> onnx.TensorProto:
    dt = _CONTAINER[max(container(bits), min_container)][int(signed)]
    v = np.asarray(values, np.int64)
    return helper.make_tensor(name, dt, list(v.shape), v.ravel().tolist())


def _quantize_weight(w: np.ndarray, axis: Optional[int], bits: int, config: QuantConfig):
    """Integer weights, float32 scales and zero points (per ``axis`` or per tensor)."""
    c = container(bits)
    if config.symmetric_weights:
        b = bits - 1 if config.reduce_range else bits
        qmin, qmax = bit_range(b, True, config.narrow_range)
        if config.reduce_range and b == 7 and c == 8:  # ONNX Runtime's int8 reduce_range: [-64, 64]
            qmin, qmax = -64, 64
    else:
        qmin, qmax = bit_range(bits, True)
    if axis is None:
        lo, hi = np.float32(w.min()), np.float32(w.max())
    else:
        red = tuple(d for d in range(w.ndim) if d != axis)
        lo, hi = w.min(axis=red).astype(np.float32), w.max(axis=red).astype(np.float32)
    scale, zp = scale_zero_point(lo, hi, qmin, qmax, symmetric=config.symmetric_weights)
    shape = [1] * w.ndim
    if axis is not None:
        shape[axis] = -1
    s, z = np.asarray(scale, np.float32).reshape(shape), np.asarray(zp).reshape(shape)
    q = np.clip(np.rint(w.astype(np.float32) / s) + z, qmin, qmax).astype(np.int64)
    return q, np.asarray(scale, np.float32), np.asarray(zp, np.int64)


def _weight_axis(node: onnx.NodeProto, w_ndim: int) -> int:
    if node.op_type == "Conv":
        return 0
    if node.op_type == "Gemm":
        trans_b = next((a.i for a in node.attribute if a.name == "transB"), 0)
        return 0 if trans_b else 1
    return w_ndim - 1  # MatMul: (K, N)
def integer_clamp(scale: np.float32, zp: int, bits: int, signed: bool, lo: float = -np.inf, hi: float = np.inf,
                  min_container: int = 4) -> tuple[int, int]:
    """The code range of a tensor of ``bits`` produced after an activation with float bounds
    ``lo``, ``hi``: the container's range, the narrower width's, and each float bound quantized
    (``rint(fl32(bound) / s) + z``, as the compiler's clamp_for derives it from a Clip)."""
    c = max(container(bits), min_container)
    cmin, cmax = bit_range(c, signed)
    if bits != c:
        qmin, qmax = bit_range(bits, signed)
        lo, hi = max(lo, float(scale * (qmin - zp))), min(hi, float(scale * (qmax - zp)))
    if np.isfinite(lo):
        cmin = max(cmin, int(np.rint(np.float32(lo) / np.float32(scale))) + zp)
    if np.isfinite(hi):
        cmax = min(cmax, int(np.rint(np.float32(hi) / np.float32(scale))) + zp)
    return cmin, cmax


class QdqWriter:
    """Builds the QDQ model node by node; new initializers collect in new_inits.

    ``integer_clamps``: a produced tensor's fused Relu / Clip and narrow width become one Clip on
    its integer codes, after its QuantizeLinear (8-bit containers: ONNX Runtime has no 16-bit Clip), so ONNX Runtime fuses
    the layer into its integer kernel and clamps exactly as the chip does; otherwise a float Clip
    before the QuantizeLinear.  ``min_container``: store narrow widths in at least this many bits
    (8: a twin ONNX Runtime runs with integer kernels)."""

    def __init__(self, model: onnx.ModelProto, plan: dict[str, PlannedTensor], fused: dict[str, str],
                 config: QuantConfig, weights: Optional[dict[str, tuple[np.ndarray, np.ndarray]]] = None,
                 integer_clamps: bool = False, min_container: int = 4) -> None:
        self.model = onnx.ModelProto()
        self.model.CopyFrom(model)
        self.plan, self.config = plan, config
        self.integer_clamps, self.min_container = integer_clamps, min_container
        self.weights = weights or {}  # layer -> (integer codes, float32 scales) given, not calibrated
        self.inits = {i.name: i for i in self.model.graph.initializer}
        self.act_nodes = {n.name for n in self.model.graph.node if n.name in fused}
        self.new_inits: list[onnx.TensorProto] = []
        self.nodes: list[onnx.NodeProto] = []
        self.input_dq: dict[str, str] = {}  # graph input -> the dequantized tensor its consumers read
        self.input_names = {i.name for i in self.model.graph.input}

    def _integer(self, t: PlannedTensor) -> bool:
        return self.integer_clamps and max(container(t.bits), self.min_container) == 8

    def _int_clip(self, t: PlannedTensor, lo: float, hi: float) -> list[onnx.NodeProto]:
        """Clip on the codes after the QuantizeLinear; the DQ reads ``name__qc``."""
        c_lo, c_hi = integer_clamp(t.scale, t.zero_point, t.bits, t.signed, lo, hi, self.min_container)
        names = t.name + "__clamp_lo", t.name + "__clamp_hi"
        self.new_inits += [_zp_tensor(names[0], t.bits, t.signed, np.asarray(c_lo), self.min_container),
                           _zp_tensor(names[1], t.bits, t.signed, np.asarray(c_hi), self.min_container)]
        return [helper.make_node("Clip", [t.name + "__q", *names], [t.name + "__qc"], name=t.name + "__clamp")]

    def qdq(self, t: PlannedTensor, src: Optional[str] = None, act: tuple[float, float] = (-np.inf, np.inf)
            ) -> list[onnx.NodeProto]:
        """Q/DQ pair: the producer now writes ``name__f`` (or ``src``), the DQ restores ``name``
        (a Clip for a fused activation or a width narrower than its container)."""
        s, z = t.name + "__scale", t.name + "__zp"
        self.new_inits.append(numpy_helper.from_array(np.asarray(t.scale, np.float32), s))
        self.new_inits.append(_zp_tensor(z, t.bits, t.signed, np.asarray(t.zero_point), self.min_container))
        if t.source is None and self._integer(t) and t.name not in self.input_names:
            q = t.name + "__q"
            narrow = t.bits != max(container(t.bits), self.min_container)
            clamp = self._int_clip(t, *act) if narrow or act != (-np.inf, np.inf) else []
            return [helper.make_node("QuantizeLinear", [src or t.name + "__f", s, z], [q], name=t.name + "__quantize"),
                    *clamp,
                    helper.make_node("DequantizeLinear", [clamp[0].output[0] if clamp else q, s, z], [t.name],
                                     name=t.name + "__dequantize")]
        src = src or t.name + "__f"
        out = []
        if t.clip is not None and t.source is None:
            lo, hi = t.name + "__clip_lo", t.name + "__clip_hi"
            self.new_inits.extend([numpy_helper.from_array(np.float32(t.clip[0]), lo),
                                   numpy_helper.from_array(np.float32(t.clip[1]), hi)])
            out.append(helper.make_node("Clip", [src, lo, hi], [src + "c"], name=t.name + "__clip"))
            src += "c"
        out += [helper.make_node("QuantizeLinear", [src, s, z], [t.name + "__q"], name=t.name + "__quantize"),
                helper.make_node("DequantizeLinear", [t.name + "__q", s, z], [t.name], name=t.name + "__dequantize")]
        return out

    def graph_inputs(self) -> None:
        """Graph inputs keep their names: the Q/DQ pair reads the input, consumers read ``name__dq``."""
        names = {i.name for i in self.model.graph.input}
        for name in [p for p in self.plan if p in names]:
            qs = self.qdq(self.plan[name])
            qs[0].input[0] = name
            qs[-1].output[0] = self.input_dq[name] = name + "__dq"
            self.nodes += qs

    def _bound(self, n: onnx.NodeProto, index: int) -> Optional[float]:
        if len(n.input) > index and n.input[index]:
            return float(numpy_helper.to_array(self.inits[n.input[index]]))
        return None

    def _act_bounds(self, n: onnx.NodeProto) -> tuple[float, float]:
        """The float bounds of a fused Relu / Clip."""
        if n.op_type == "Relu":
            return 0.0, np.inf
        lo, hi = self._bound(n, 1), self._bound(n, 2)
        return (-np.inf if lo is None else lo), (np.inf if hi is None else hi)

    def _narrowed_activation(self, n: onnx.NodeProto, t: PlannedTensor) -> onnx.NodeProto:
        """A fused Relu/Clip whose tensor has a width narrower than its container: one Clip with the
        narrower range folded in, instead of a Clip of its own."""
        lo, hi = t.clip
        if n.op_type == "Relu":
            lo = max(lo, 0.0)
        else:
            b_lo, b_hi = self._bound(n, 1), self._bound(n, 2)
            lo = lo if b_lo is None else max(lo, b_lo)
            hi = hi if b_hi is None else min(hi, b_hi)
        out = n.output[0]
        self.new_inits += [numpy_helper.from_array(np.float32(lo), out + "__act_lo"),
                           numpy_helper.from_array(np.float32(hi), out + "__act_hi")]
        t.clip = None
        return helper.make_node("Clip", [n.input[0], out + "__act_lo", out + "__act_hi"], list(n.output), name=n.name)

    def node(self, n: onnx.NodeProto) -> None:
        """Copy one float node, with its layer's DequantizeLinear of integer weights before it and
        the Q/DQ pair of its planned output after it."""
        n = _copy(n)
        if n.op_type in LAYER_OPS:  # DequantizeLinear of the integer weight and bias, just before
            self.nodes += _quantize_layer(n, self.inits, self.plan[n.input[0]], self.config, self.new_inits,
                                          self.weights.get(n.name), self.min_container)
        for k, i in enumerate(n.input):
            n.input[k] = self.input_dq.get(i, i)
        out = None
        if n.name in self.act_nodes and self._integer(self.plan[n.output[0]]):  # becomes a Clip on the codes
            self.nodes += self.qdq(self.plan[n.output[0]], src=n.input[0], act=self._act_bounds(n))
            return
        if n.name in self.act_nodes:  # a fused activation: its output is the layer's quantized tensor
            out = n.output[0]
            if self.plan[out].clip is not None:
                n = self._narrowed_activation(n, self.plan[out])
        elif n.output and n.output[0] in self.plan:
            out = n.output[0]
        self.nodes.append(n)
        if out is not None:
            for k, o in enumerate(n.output):
                if o == out:
                    n.output[k] = out + "__f"
            self.nodes += self.qdq(self.plan[out])

    def finish(self) -> onnx.ModelProto:
        g = self.model.graph
        del g.node[:]
        g.node.extend(self.nodes)
        used = {i for n in self.nodes for i in n.input}
        keep = [i for i in g.initializer if i.name in used]
        del g.initializer[:]
        g.initializer.extend(keep + self.new_inits)
        self.model.producer_name, self.model.producer_version = "accelsim.ptq", "1"
        onnx.checker.check_model(self.model)
        return self.model


def write_qdq(model: onnx.ModelProto, plan: dict[str, PlannedTensor], fused: dict[str, str],
              config: QuantConfig, weights: Optional[dict[str, tuple[np.ndarray, np.ndarray]]] = None,
              producer: str = "accelsim.ptq", integer_clamps: bool = False, min_container: int = 4
              ) -> onnx.ModelProto:
    """The QDQ model of ``model`` with every planned tensor quantized as ``plan`` says; ``weights``
    gives a layer's symmetric integer weight codes and float32 scales (QAT) instead of
    quantizing its float weight (QdqWriter for the other options)."""
    w = QdqWriter(model, plan, fused, config, weights, integer_clamps, min_container)
    w.graph_inputs()
    for n in model.graph.node:
        w.node(n)
    out = w.finish()
    out.producer_name = producer
    return out


def _copy(n: onnx.NodeProto) -> onnx.NodeProto:
    c = onnx.NodeProto()
    c.CopyFrom(n)
    return c


def bias_codes(b: np.ndarray, x_scale: np.float32, w_scale: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """int32 bias codes ``rint(b / fl(s_x * s_w))`` (the division in float64, saturated) and
    their float32 scales, as ONNX Runtime's quantizer writes them."""
    bscale = (np.float32(x_scale) * np.broadcast_to(w_scale, b.shape).astype(np.float32)).astype(np.float32)
    bq = np.clip(np.rint(np.asarray(b, np.float64) / bscale.astype(np.float64)), -(2 ** 31), 2 ** 31 - 1)
    return bq.astype(np.int32), bscale


def _quantize_layer(n: onnx.NodeProto, inits: dict, x: PlannedTensor, config: QuantConfig,
                    new_inits: list, given: Optional[tuple[np.ndarray, np.ndarray]] = None,
                    min_container: int = 4) -> list[onnx.NodeProto]:
    """Replace a layer's float weight and bias (scale s_x * s_w, ``x`` its quantized input) by
    DequantizeLinear of integer initializers (appended to ``new_inits``); returns those nodes."""
    w = numpy_helper.to_array(inits[n.input[1]]).astype(np.float32)
    bits = config.weight_bits_of(n.name)
    axis = _weight_axis(n, w.ndim) if config.per_channel else None
    if given is None:
        q, scale, zp = _quantize_weight(w, axis, bits, config)
    else:
        q, scale = np.asarray(given[0], np.int64), np.asarray(given[1], np.float32).reshape(-1)
        zp = np.zeros(scale.shape, np.int64)
        if q.shape != w.shape or scale.size != w.shape[axis]:
            raise ModelError(n.name, n.op_type, f"given weight codes {q.shape} / scales {scale.shape} do not fit "
                                                f"the weight {w.shape}")
    base = n.name + "__w"
    new_inits.append(_zp_tensor(base + "_q", bits, True, q, min_container))
    new_inits.append(numpy_helper.from_array(scale.astype(np.float32), base + "_scale"))
    new_inits.append(_zp_tensor(base + "_zp", bits, True, zp, min_container))
    attrs = {"axis": axis} if axis is not None else {}
    deq = helper.make_node("DequantizeLinear", [base + "_q", base + "_scale", base + "_zp"], [base], name=base + "_dq",
                           **attrs)
    n.input[1] = base
    pre = [deq]
    if len(n.input) > 2 and n.input[2]:
        b = numpy_helper.to_array(inits[n.input[2]]).astype(np.float64)
        n_out = q.shape[_weight_axis(n, q.ndim)]
        if b.size not in (1, n_out):
            raise ModelError(n.name, n.op_type, f"bias of shape {b.shape} does not broadcast over {n_out} outputs")
        b = np.broadcast_to(b.ravel(), (n_out,)).copy()  # Gemm's C may be (1, N) or a scalar
        bq, bscale = bias_codes(b, x.scale, scale)
        bb = n.name + "__b"
        new_inits += [numpy_helper.from_array(bq, bb + "_q"), numpy_helper.from_array(bscale, bb + "_scale"),
                      numpy_helper.from_array(np.zeros(b.shape, np.int32), bb + "_zp")]
        pre.append(helper.make_node("DequantizeLinear", [bb + "_q", bb + "_scale", bb + "_zp"], [bb], name=bb + "_dq",
                                    axis=0))
        n.input[2] = bb
    return pre
