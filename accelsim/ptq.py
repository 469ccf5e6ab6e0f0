"""Post-training quantization for the chip: a float ONNX model in, a standard QDQ ONNX model out.

Steps (Krishnamoorthi's whitepaper, section 3; TensorRT's calibration):

1. Fold every BatchNormalization into the convolution before it (:func:`fold_batchnorm`).
2. Plan which tensors carry a QuantizeLinear / DequantizeLinear pair: the graph input, the output
   of every Conv / Gemm / MatMul / Add / Concat / GlobalAveragePool (after a Relu or Clip that is
   its only consumer: the activation is fused into the requantization), standalone activations;
   MaxPool, AveragePool, Flatten, Reshape and Transpose outputs share their input's parameters.
3. Calibrate the planned tensors on sample inputs (accelsim.calibrate; the float model runs in
   ONNX Runtime when it is installed, else in onnx's reference evaluator).
4. Quantize weights (per channel or per tensor; symmetric, optionally narrow or reduced range, or
   asymmetric per tensor) and biases (int32, scale ``s_in * s_w``), and write the QDQ model.

Bit widths are set globally or per layer (node name -> weight / activation bits; the activation
bits of a node are those of its output).  Widths other than 4, 8 and 16 are stored in the next
container (2 and 3 bits in int4/uint4, 5 to 7 in 8 bits) with the range of the narrower width:
weights take only its values, activations get a Clip to its range that the compiler fuses into
the requantization clamp.  4-bit and 16-bit types need opset 21; the model is converted.
"""

from __future__ import annotations

import json
import sys
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable, Optional

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from isa.quant import scale_zero_point

from .calibrate import CALIBRATORS, TensorStats, calibrated_range
from .ir import ModelError

LAYER_OPS = ("Conv", "Gemm", "MatMul")
SHARED_OPS = ("MaxPool", "AveragePool", "Flatten", "Reshape", "Transpose")   # output keeps input's parameters
OWN_OPS = ("Add", "Concat", "GlobalAveragePool")                            # output calibrated itself
ACTIVATIONS = ("Relu", "Clip")
_CONTAINER = {4: (TensorProto.UINT4, TensorProto.INT4), 8: (TensorProto.UINT8, TensorProto.INT8),
              16: (TensorProto.UINT16, TensorProto.INT16)}


@dataclass
class QuantConfig:
    """How to quantize; ``layer_bits`` maps node names to {"weight_bits", "activation_bits"}."""

    weight_bits: int = 8
    activation_bits: int = 8
    per_channel: bool = True
    symmetric_weights: bool = True
    narrow_range: bool = False          # symmetric weights in [-(2^(b-1)-1), 2^(b-1)-1]
    reduce_range: bool = False          # weights one bit narrower (ONNX Runtime's reduce_range)
    symmetric_activations: bool = False  # signed activations with zero point 0
    calibrator: str = "minmax"
    input_calibrator: str = "minmax"     # graph inputs (often few discrete values, e.g. pixels): not clipped
    percentile: float = 99.99
    momentum: float = 0.9
    batch_size: int = 16                # samples per calibration batch (moving average)
    layer_bits: dict[str, dict[str, int]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for c in (self.calibrator, self.input_calibrator):
            if c not in CALIBRATORS:
                raise ValueError(f"unknown calibrator {c!r}; choose one of {', '.join(CALIBRATORS)}")
        for b in [self.weight_bits, self.activation_bits] + [v for d in self.layer_bits.values() for v in d.values()]:
            if not 2 <= int(b) <= 16:
                raise ValueError(f"bit width {b} outside 2..16")
        if self.per_channel and not self.symmetric_weights:
            raise ValueError("asymmetric weights must be per tensor: the chip takes one weight zero point per layer")

    def weight_bits_of(self, node: str) -> int:
        return int(self.layer_bits.get(node, {}).get("weight_bits", self.weight_bits))

    def activation_bits_of(self, node: str) -> int:
        return int(self.layer_bits.get(node, {}).get("activation_bits", self.activation_bits))


def load_layer_bits(path: str | Path) -> dict[str, dict[str, int]]:
    """A JSON or TOML map from node name to {"weight_bits": w, "activation_bits": a}, or to one
    number for both."""
    p = Path(path)
    try:
        raw = tomllib.loads(p.read_text()) if p.suffix == ".toml" else json.loads(p.read_text())
    except FileNotFoundError:
        raise ValueError(f"{path}: no such file") from None
    except (json.JSONDecodeError, tomllib.TOMLDecodeError) as e:
        raise ValueError(f"{path}: {e}") from None
    out = {}
    for node, v in raw.items():
        if isinstance(v, int):
            v = {"weight_bits": v, "activation_bits": v}
        if not isinstance(v, dict) or set(v) - {"weight_bits", "activation_bits"}:
            raise ValueError(f"{path}: entry {node!r} must be a bit width or a table of weight_bits / activation_bits")
        out[str(node)] = {k: int(b) for k, b in v.items()}
    return out


def container(bits: int) -> int:
    """The chip's (and ONNX's) storage width for a bit width: 4, 8 or 16."""
    return 4 if bits <= 4 else 8 if bits <= 8 else 16


def _range(bits: int, signed: bool, narrow: bool = False) -> tuple[int, int]:
    if not signed:
        return 0, (1 << bits) - 1
    hi = (1 << (bits - 1)) - 1
    return (-hi if narrow else -hi - 1), hi


# ------------------------------------------------------------------------------------------ graph passes
def name_nodes(model: onnx.ModelProto) -> onnx.ModelProto:
    """A copy whose nodes all have unique names (ONNX allows none): unnamed or repeated ones get
    ``<op_type>_<index>``."""
    m = onnx.ModelProto()
    m.CopyFrom(model)
    seen: set[str] = set()
    for k, n in enumerate(m.graph.node):
        if not n.name or n.name in seen:
            base = n.name or n.op_type
            n.name = f"{base}_{k}"
            while n.name in seen:
                n.name += "_"
        seen.add(n.name)
    return m


def fold_batchnorm(model: onnx.ModelProto) -> onnx.ModelProto:
    """Fold each BatchNormalization whose input is a Conv's only consumer (and not a graph output)
    into that Conv: w' = w * gamma / sqrt(var + eps) per output channel,
    b' = (b - mean) * gamma / sqrt(var + eps) + beta.  Any convolution rank."""
    m = name_nodes(model)
    g = m.graph
    inits = {i.name: i for i in g.initializer}
    graph_outputs = {o.name for o in g.output}
    users: dict[str, list] = {}
    for n in g.node:
        for i in n.input:
            users.setdefault(i, []).append(n)
    producer = {o: n for n in g.node for o in n.output}
    remove = []
    for bn in list(g.node):
        if bn.op_type != "BatchNormalization" or len([o for o in bn.output if o]) != 1:
            continue
        conv = producer.get(bn.input[0])
        if conv is None or conv.op_type != "Conv" or len(users.get(bn.input[0], [])) != 1 \
                or bn.input[0] in graph_outputs or conv.input[1] not in inits \
                or any(i not in inits for i in bn.input[1:5]):
            continue
        eps = next((a.f for a in bn.attribute if a.name == "epsilon"), 1e-5)
        gamma, beta, mean, var = (numpy_helper.to_array(inits[i]).astype(np.float64) for i in bn.input[1:5])
        w = numpy_helper.to_array(inits[conv.input[1]]).astype(np.float64)
        b = numpy_helper.to_array(inits[conv.input[2]]).astype(np.float64) if len(conv.input) > 2 and conv.input[2] \
            else np.zeros(w.shape[0])
        k = gamma / np.sqrt(var + eps)
        w_name, b_name = conv.name + "_weight_bnfolded", conv.name + "_bias_bnfolded"  # node names are unique
        g.initializer.append(numpy_helper.from_array((w * k.reshape((-1,) + (1,) * (w.ndim - 1))).astype(np.float32),
                                                     w_name))
        g.initializer.append(numpy_helper.from_array(((b - mean) * k + beta).astype(np.float32), b_name))
        conv.input[1] = w_name
        if len(conv.input) > 2:
            conv.input[2] = b_name
        else:
            conv.input.append(b_name)
        conv.output[0] = bn.output[0]
        remove.append(bn)
    for bn in remove:
        g.node.remove(bn)
    used = {i for n in g.node for i in n.input}
    keep = [i for i in g.initializer if i.name in used]
    del g.initializer[:]
    g.initializer.extend(keep)
    return m


@dataclass
class _Tensor:
    """A planned activation tensor: calibrated by itself, or sharing ``source``'s parameters."""

    name: str
    node: str                     # the node whose bit width it takes
    bits: int
    source: Optional[str] = None  # shares this tensor's parameters
    scale: np.float32 = np.float32(1)
    zero_point: int = 0
    signed: bool = False
    clip: Optional[tuple[float, float]] = None


def _plan(model: onnx.ModelProto, config: QuantConfig) -> tuple[dict[str, _Tensor], dict[str, str]]:
    """The activation tensors to quantize (graph input first), and which activation node each
    layer output passes through (fused)."""
    g = model.graph
    inits = {i.name for i in g.initializer}
    users: dict[str, list] = {}
    for n in g.node:
        for i in n.input:
            users.setdefault(i, []).append(n)
    plan: dict[str, _Tensor] = {}
    fused: dict[str, str] = {}  # activation node name -> the layer it belongs to
    for inp in g.input:
        if inp.name not in inits:
            plan[inp.name] = _Tensor(inp.name, inp.name, config.activation_bits_of(inp.name))

    def follow(n) -> str:
        out = n.output[0]
        us = users.get(out, [])
        if len(us) == 1 and us[0].op_type in ACTIVATIONS and not (set(us[0].input[1:]) - inits - {""}):
            fused[us[0].name] = n.name
            return us[0].output[0]
        return out

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
            out = follow(n) if n.op_type not in ACTIVATIONS else n.output[0]
            plan[out] = _Tensor(out, n.name, config.activation_bits_of(n.name))
        elif n.op_type in SHARED_OPS:
            if not ins or ins[0] not in plan:
                raise ModelError(n.name, n.op_type, f"input {ins[0] if ins else ''!r} is not quantized")
            src = plan[ins[0]]
            plan[n.output[0]] = _Tensor(n.output[0], n.name, src.bits, source=src.source or src.name)
        # anything else stays float: it must only read dequantized tensors (it runs on the host)
    return plan, fused


# ------------------------------------------------------------------------------------------ calibration
def float_runner(model: onnx.ModelProto, outputs: list[str]) -> Callable[[dict], list[np.ndarray]]:
    """Run the float model returning ``outputs``: ONNX Runtime if installed, else onnx's reference."""
    m = onnx.ModelProto()
    m.CopyFrom(model)
    known = {o.name for o in m.graph.output}
    m.graph.output.extend([helper.make_empty_tensor_value_info(o) for o in outputs if o not in known])
    try:
        import onnxruntime as ort

        so = ort.SessionOptions()
        so.log_severity_level = 3
        sess = ort.InferenceSession(m.SerializeToString(), so, providers=["CPUExecutionProvider"])
        return lambda feed: sess.run(outputs, feed)
    except ImportError:
        from onnx.reference import ReferenceEvaluator

        ref = ReferenceEvaluator(m)
        return lambda feed: ref.run(outputs, feed)


def _batches(model: onnx.ModelProto, calib: np.ndarray, batch_size: int) -> Iterable[list[np.ndarray]]:
    """Calibration batches as lists of model feeds (one sample each when the batch size is fixed at 1)."""
    dims = model.graph.input[0].type.tensor_type.shape.dim
    fixed_one = bool(dims) and dims[0].dim_value == 1
    x = np.asarray(calib, np.float32)
    shape = tuple(d.dim_value for d in dims)
    if x.ndim == len(shape) - 1:
        x = x[:, None] if shape[1:] != x.shape[1:] else x
    for b0 in range(0, x.shape[0], batch_size):
        chunk = x[b0:b0 + batch_size]
        yield [s[None] for s in chunk] if fixed_one else [chunk]


def calibrate(model: onnx.ModelProto, calib: np.ndarray, tensors: list[str], config: QuantConfig,
              progress: bool = True) -> dict[str, TensorStats]:
    """Statistics of ``tensors`` over the calibration samples (two passes for histogram methods)."""
    run = float_runner(model, tensors)
    name = model.graph.input[0].name
    stats = {t: TensorStats() for t in tensors}
    passes = 2 if config.calibrator in ("percentile", "entropy", "mse") else 1
    batches = list(_batches(model, calib, config.batch_size))
    bar = _progress(passes * sum(len(b) for b in batches), progress, f"calibrating ({config.calibrator})")
    for p in range(passes):
        for feeds in batches:
            outs = [run({name: f}) for f in feeds]
            for k, t in enumerate(tensors):
                vals = [o[k] for o in outs]
                if p == 0:
                    stats[t].add_batch(np.concatenate([v.ravel() for v in vals]))
                else:
                    for v in vals:
                        stats[t].add_histogram(v)
            bar.update(len(feeds))
    bar.close()
    return stats


class _NoBar:
    def update(self, n: int) -> None:
        pass

    def close(self) -> None:
        pass


def _progress(total: int, enabled: bool, desc: str):
    if not enabled:
        return _NoBar()
    from tqdm import tqdm

    return tqdm(total=total, desc=desc, unit="sample", file=sys.stderr, leave=False)


# ------------------------------------------------------------------------------------------ the QDQ model
def _zp_tensor(name: str, bits: int, signed: bool, values: np.ndarray) -> onnx.TensorProto:
    dt = _CONTAINER[container(bits)][int(signed)]
    v = np.asarray(values, np.int64)
    return helper.make_tensor(name, dt, list(v.shape), v.ravel().tolist())


def _quantize_weight(w: np.ndarray, axis: Optional[int], bits: int, config: QuantConfig):
    """Integer weights, float32 scales and zero points (per ``axis`` or per tensor)."""
    c = container(bits)
    if config.symmetric_weights:
        b = bits - 1 if config.reduce_range else bits
        qmin, qmax = _range(b, True, config.narrow_range)
        if config.reduce_range and b == 7 and c == 8:  # ONNX Runtime's int8 reduce_range: [-64, 64]
            qmin, qmax = -64, 64
    else:
        qmin, qmax = _range(bits, True)
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


def quantize_model(model: onnx.ModelProto, calib: np.ndarray, config: Optional[QuantConfig] = None,
                   progress: bool = True) -> onnx.ModelProto:
    """The QDQ model of a float model, calibrated on ``calib`` (samples along the first axis)."""
    config = config or QuantConfig()
    model = fold_batchnorm(name_nodes(model))
    widths = {config.weight_bits, config.activation_bits} | {b for d in config.layer_bits.values() for b in d.values()}
    opset = next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), 17)
    need = 21 if any(container(b) != 8 for b in widths) else 13
    if opset < need:
        model = onnx.version_converter.convert_version(model, need)
        model.ir_version = min(model.ir_version, 10)
    model = onnx.shape_inference.infer_shapes(model)
    known_nodes = {n.name for n in model.graph.node} | {i.name for i in model.graph.input}
    unknown = sorted(set(config.layer_bits) - known_nodes)
    if unknown:
        raise ValueError(f"layer_bits names nodes the model does not have: {', '.join(unknown)}")
    plan, fused = _plan(model, config)
    own = [t for t in plan.values() if t.source is None]
    stats = calibrate(model, calib, [t.name for t in own], config, progress)
    graph_inputs = {i.name for i in model.graph.input}
    for t in own:
        t.signed = config.symmetric_activations
        qmin, qmax = _range(t.bits, t.signed)
        method = config.input_calibrator if t.name in graph_inputs else config.calibrator
        lo, hi = calibrated_range(stats[t.name], method, bits=t.bits, qmin=qmin, qmax=qmax,
                                  symmetric=t.signed, percentile=config.percentile, momentum=config.momentum)
        scale, zp = scale_zero_point(lo, hi, qmin, qmax, symmetric=t.signed)
        t.scale, t.zero_point = np.float32(scale), int(zp)
        if t.bits != container(t.bits):  # a narrower width in its container: clip to its range
            t.clip = (float(t.scale * (qmin - t.zero_point)), float(t.scale * (qmax - t.zero_point)))
    for t in plan.values():
        if t.source is not None:
            s = plan[t.source]
            t.scale, t.zero_point, t.signed, t.bits = s.scale, s.zero_point, s.signed, s.bits
    return _write_qdq(model, plan, fused, config)


def _write_qdq(model: onnx.ModelProto, plan: dict[str, _Tensor], fused: dict[str, str],
               config: QuantConfig) -> onnx.ModelProto:
    m = onnx.ModelProto()
    m.CopyFrom(model)
    g = m.graph
    inits = {i.name: i for i in g.initializer}
    new_inits: list[onnx.TensorProto] = []
    nodes: list[onnx.NodeProto] = []
    graph_inputs = {i.name for i in g.input}
    act_nodes = {n.name: n for n in g.node if n.name in fused}

    def qdq(t: _Tensor) -> list[onnx.NodeProto]:
        """Q/DQ pair: the producer now writes ``name__f``, the DQ restores ``name``."""
        s, z = t.name + "__scale", t.name + "__zp"
        new_inits.append(numpy_helper.from_array(np.asarray(t.scale, np.float32), s))
        new_inits.append(_zp_tensor(z, t.bits, t.signed, np.asarray(t.zero_point)))
        src = t.name + "__f"
        out = []
        if t.clip is not None and t.source is None:
            lo, hi = t.name + "__clip_lo", t.name + "__clip_hi"
            new_inits.extend([numpy_helper.from_array(np.float32(t.clip[0]), lo),
                              numpy_helper.from_array(np.float32(t.clip[1]), hi)])
            out.append(helper.make_node("Clip", [src, lo, hi], [src + "c"], name=t.name + "__clip"))
            src += "c"
        out += [helper.make_node("QuantizeLinear", [src, s, z], [t.name + "__q"], name=t.name + "__quantize"),
                helper.make_node("DequantizeLinear", [t.name + "__q", s, z], [t.name], name=t.name + "__dequantize")]
        return out

    def rename_output(n: onnx.NodeProto, name: str) -> None:
        for k, o in enumerate(n.output):
            if o == name:
                n.output[k] = name + "__f"

    # graph inputs keep their names: the Q/DQ pair reads the input, consumers read ``name__dq``
    input_dq = {}
    for name in [p for p in plan if p in graph_inputs]:
        qs = qdq(plan[name])
        qs[0].input[0] = name
        qs[-1].output[0] = input_dq[name] = name + "__dq"
        nodes += qs
    for n in g.node:
        n = _copy(n)
        if n.op_type in LAYER_OPS:  # DequantizeLinear of the integer weight and bias, just before
            nodes += _quantize_layer(n, inits, plan[n.input[0]], config, new_inits)
        for k, i in enumerate(n.input):
            n.input[k] = input_dq.get(i, i)
        out = None
        if n.name in act_nodes:  # a fused activation: its output is the layer's quantized tensor
            out = n.output[0]
            t = plan[out]
            if t.clip is not None:  # fold the narrower range into the activation instead of a Clip
                lo, hi = t.clip
                if n.op_type == "Relu":
                    lo = max(lo, 0.0)
                else:
                    lo = max(lo, float(numpy_helper.to_array(inits[n.input[1]]))) if len(n.input) > 1 and n.input[1] else lo
                    hi = min(hi, float(numpy_helper.to_array(inits[n.input[2]]))) if len(n.input) > 2 and n.input[2] else hi
                n = helper.make_node("Clip", [n.input[0], out + "__act_lo", out + "__act_hi"], list(n.output), name=n.name)
                new_inits += [numpy_helper.from_array(np.float32(lo), out + "__act_lo"),
                              numpy_helper.from_array(np.float32(hi), out + "__act_hi")]
                t.clip = None
        elif n.output and n.output[0] in plan:
            out = n.output[0]
        nodes.append(n)
        if out is not None:
            rename_output(n, out)
            nodes += qdq(plan[out])
    del g.node[:]
    g.node.extend(nodes)
    used = {i for n in nodes for i in n.input}
    keep = [i for i in g.initializer if i.name in used]
    del g.initializer[:]
    g.initializer.extend(keep + new_inits)
    m.producer_name, m.producer_version = "accelsim.ptq", "1"
    onnx.checker.check_model(m)
    return m


def _copy(n: onnx.NodeProto) -> onnx.NodeProto:
    c = onnx.NodeProto()
    c.CopyFrom(n)
    return c


def _quantize_layer(n: onnx.NodeProto, inits: dict, x: _Tensor, config: QuantConfig,
                    new_inits: list) -> list[onnx.NodeProto]:
    """Replace a layer's float weight and bias (scale s_x * s_w, ``x`` its quantized input) by
    DequantizeLinear of integer initializers (appended to ``new_inits``); returns those nodes."""
    w = numpy_helper.to_array(inits[n.input[1]]).astype(np.float32)
    bits = config.weight_bits_of(n.name)
    axis = _weight_axis(n, w.ndim) if config.per_channel else None
    q, scale, zp = _quantize_weight(w, axis, bits, config)
    base = n.name + "__w"
    new_inits.append(_zp_tensor(base + "_q", bits, True, q))
    new_inits.append(numpy_helper.from_array(scale.astype(np.float32), base + "_scale"))
    new_inits.append(_zp_tensor(base + "_zp", bits, True, zp))
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
        bscale = (np.float32(x.scale) * np.broadcast_to(scale, b.shape).astype(np.float32)).astype(np.float32)
        bq = np.clip(np.rint(b / bscale.astype(np.float64)), -(2 ** 31), 2 ** 31 - 1).astype(np.int32)
        bb = n.name + "__b"
        new_inits += [numpy_helper.from_array(bq, bb + "_q"), numpy_helper.from_array(bscale, bb + "_scale"),
                      numpy_helper.from_array(np.zeros(b.shape, np.int32), bb + "_zp")]
        pre.append(helper.make_node("DequantizeLinear", [bb + "_q", bb + "_scale", bb + "_zp"], [bb], name=bb + "_dq",
                                    axis=0))
        n.input[2] = bb
    return pre
