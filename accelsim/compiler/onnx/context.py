"""The state of one ONNX import and the helpers every op handler shares: initializers, the
DequantizeLinear -> op -> QuantizeLinear pattern of QDQ models, the quantization parameters of
QOperator nodes, activation fusion into the output clamp."""

from __future__ import annotations

from typing import Optional

import numpy as np
import onnx
from onnx import numpy_helper

from isa.quant import qrange

from ..ir import ModelError, QGraph, QTensor

_NP_DTYPE = {np.dtype(np.uint8): "u8", np.dtype(np.int8): "s8", np.dtype(np.uint16): "u16",
             np.dtype(np.int16): "s16", np.dtype(np.int32): "s32"}
ACTIVATION_DTYPES = ("u4", "s4", "u8", "s8", "u16", "s16")
#: a Relu or Clip after a layer: (op type, float lower bound, float upper bound)
Activation = Optional[tuple[str, float, float]]


def attrs(node: onnx.NodeProto) -> dict:
    """A node's attributes by name."""
    return {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}


def explicit_pads(node: onnx.NodeProto, spatial: tuple, kernel: tuple, strides: tuple, dilations: tuple) -> tuple:
    """Pads (top, left, bottom, right) of a 2-D conv or pool, from ``pads`` or ``auto_pad`` (ONNX:
    SAME_UPPER / SAME_LOWER give ceil(in / stride) outputs, the odd pad at the end / start)."""
    a = attrs(node)
    mode = a.get("auto_pad", b"NOTSET")
    mode = mode.decode() if isinstance(mode, bytes) else mode
    if mode == "NOTSET":
        p = tuple(a.get("pads", (0, 0, 0, 0)))
        return (p[0], p[1], p[2], p[3])
    if mode == "VALID":
        return (0, 0, 0, 0)
    if mode not in ("SAME_UPPER", "SAME_LOWER"):
        raise ModelError(node.name, node.op_type, f"auto_pad {mode!r} is not an ONNX mode")
    begin, end = [], []
    for size, k, s, d in zip(spatial, kernel, strides, dilations):
        out = -(-size // s)
        total = max((out - 1) * s + (k - 1) * d + 1 - size, 0)
        small, big = total // 2, total - total // 2
        begin.append(small if mode == "SAME_UPPER" else big)
        end.append(big if mode == "SAME_UPPER" else small)
    return (begin[0], begin[1], end[0], end[1])


def dtype_name(arr: np.ndarray, node: str, op: str) -> str:
    """The chip's name ("u8", "s4", ...) of an integer array's element type."""
    dt = np.asarray(arr).dtype
    name = _NP_DTYPE.get(dt)
    if name is not None:
        return name
    if "int4" in str(dt):
        return "u4" if "uint" in str(dt) else "s4"
    raise ModelError(node, op, f"unsupported quantized type {dt}")


def check_scale(value: np.ndarray, node: onnx.NodeProto, what: str) -> None:
    """Quantization scales are finite positive float32 values (ONNX leaves 0 and NaN undefined)."""
    v = np.asarray(value)
    if v.dtype.kind != "f":
        raise ModelError(node.name, node.op_type, f"{what} holds {v.dtype} values, not floats")
    bad = v[~(np.isfinite(v) & (v > 0))]
    if bad.size:
        raise ModelError(node.name, node.op_type, f"{what} holds {str(bad.flat[0])}: scales must be finite and positive")


def check_zero_point(value: np.ndarray, node: onnx.NodeProto, what: str) -> None:
    """Zero points are integers of a type the chip holds (their type is the quantized tensor's)."""
    v = np.asarray(value)
    if v.dtype.kind not in "iu" and "int4" not in str(v.dtype):
        raise ModelError(node.name, node.op_type, f"{what} holds {v.dtype} values, not integers")
    dtype_name(v, node.name, node.op_type)


def scalar_f32(v) -> np.float32:
    return np.float32(np.asarray(v).reshape(()))


def scalar_int(v) -> int:
    return int(np.asarray(v).reshape(()))


class ImportContext:
    """One model being imported: the ONNX graph, the QGraph being built and what is known so far."""

    def __init__(self, model: onnx.ModelProto) -> None:
        self.model = model
        self.graph = QGraph()
        self.inits = {i.name: numpy_helper.to_array(i) for i in model.graph.initializer}
        self.consumers: dict[str, list[onnx.NodeProto]] = {}
        for n in model.graph.node:
            for i in n.input:
                self.consumers.setdefault(i, []).append(n)
        self.graph_outputs = {o.name for o in model.graph.output}
        self.shapes: dict[str, tuple] = {vi.name: tuple(d.dim_value if d.dim_value > 0 else 1
                                                        for d in vi.type.tensor_type.shape.dim)
                                         for vi in model.graph.input}
        self.input_alias: dict[str, str] = {vi.name: vi.name for vi in model.graph.input}  # float -> graph input
        self.declared: dict[str, tuple] = {}  # graph input -> its dims in the file (None: free)
        self.q_of_float: dict[str, str] = {}  # float tensor out of an activation DequantizeLinear -> QTensor name
        self.consumed: set[int] = set()       # nodes already imported with the node before them
        self.chains: dict = {}                # float tensor -> its chain of elementwise ops (onnx.chains)
        self.lazy: dict = {}                  # float tensor of a host region -> its Lazy (onnx.islands)
        self.quantized_at: dict[str, onnx.NodeProto] = {}  # float tensor -> its (first) QuantizeLinear
        self.weights: dict[str, tuple] = {}   # float tensor out of a weight DequantizeLinear -> (ints, scale, zp)
        self.floats: dict[str, np.ndarray] = {}  # the same, dequantized (float32), for float parameters (BN)
        for n in model.graph.node:
            if n.op_type == "QuantizeLinear":
                self.quantized_at.setdefault(n.input[0], n)
            if n.op_type == "DequantizeLinear" and n.input[0] in self.inits:
                self._add_weight(n)

    def _add_weight(self, n: onnx.NodeProto) -> None:
        """A DequantizeLinear of an initializer: its integers, and its float values as ORT computes them."""
        zp = self.optional_init(n, 2, "zero point")
        zp = np.zeros((), np.int8) if zp is None else zp
        q = self.inits[n.input[0]]
        self.weights[n.output[0]] = (q, self.init(n, n.input[1], "scale"), zp)
        s, z = np.asarray(self.inits[n.input[1]], np.float32), np.asarray(zp).astype(np.int64)
        if s.ndim == 1 and s.size > 1:  # per axis: broadcast along ``axis``
            shape = [1] * q.ndim
            shape[int(attrs(n).get("axis", 1))] = s.size
            s, z = s.reshape(shape), z.reshape(shape)
        self.floats[n.output[0]] = (q.astype(np.int64) - z).astype(np.float32) * s  # ORT's DequantizeLinear

    @property
    def batch(self) -> int:
        """Images per run: the first dim of the first graph input."""
        first = next(iter(self.shapes.values()), (1,))
        return int(first[0]) if first else 1

    # ---- initializers and quantization parameters
    def init(self, node: onnx.NodeProto, name: str, what: str) -> np.ndarray:
        """Initializer ``name``, an input of ``node``; a scale must be finite and positive, a zero
        point an integer of a type the chip holds."""
        if name not in self.inits:
            raise ModelError(node.name, node.op_type, f"{what} {name!r} is not an initializer (missing or computed)")
        value = self.inits[name]
        if what.endswith("scale"):
            check_scale(value, node, f"{what} {name!r}")
        elif what.endswith("zero point"):
            check_zero_point(value, node, f"{what} {name!r}")
        return value

    def optional_init(self, node: onnx.NodeProto, index: int, what: str) -> Optional[np.ndarray]:
        """Input ``index`` of a node as an initializer, or None when the input is absent."""
        if len(node.input) > index and node.input[index]:
            return self.init(node, node.input[index], what)
        return None

    def qparams(self, qn: onnx.NodeProto) -> tuple[np.ndarray, np.ndarray]:
        """Scale and zero point of a QuantizeLinear (or QLinear node's output) from its inputs 1, 2."""
        return self.init(qn, qn.input[1], "scale"), self.init(qn, qn.input[2], "zero point")

    def add_tensor(self, node: onnx.NodeProto, name: str, shape: tuple, scale, zp) -> QTensor:
        """Register a quantized activation (per tensor, 4, 8 or 16 bits)."""
        scale, zp = np.asarray(scale), np.asarray(zp)
        if scale.size != 1 or zp.size != 1:
            raise ModelError(node.name, node.op_type, f"activation {name!r} must be quantized per tensor")
        dtype = dtype_name(zp, node.name, node.op_type)
        if dtype not in ACTIVATION_DTYPES:
            raise ModelError(node.name, node.op_type, f"activation {name!r} has type {dtype}: the chip takes "
                                                      "4, 8 or 16-bit activations")
        t = QTensor(name, tuple(shape), dtype, scalar_f32(scale), scalar_int(zp))
        self.graph.tensors[name] = t
        return t

    def alias_tensor(self, name: str, src: QTensor, shape: Optional[tuple] = None) -> QTensor:
        """A tensor with ``src``'s quantization (a reshape or a second name of the same data)."""
        t = QTensor(name, src.shape if shape is None else tuple(shape), src.dtype, src.scale, src.zero_point,
                    src.rowmajor and shape is None)
        self.graph.tensors[name] = t
        return t

    def weight_params(self, node: onnx.NodeProto, scale, zp, n_out: int) -> tuple[np.ndarray, int]:
        """Per-channel float32 weight scales and the one weight zero point the chip takes."""
        zp = np.asarray(zp).ravel()
        if zp.size > 1 and not np.all(zp == zp[0]):
            raise ModelError(node.name, node.op_type, "per-channel weight zero points differ; the chip takes one")
        scale = np.asarray(scale, dtype=np.float32).ravel()
        if scale.size not in (1, n_out):
            raise ModelError(node.name, node.op_type, f"weight scale has {scale.size} values for {n_out} channels")
        return np.broadcast_to(scale, (n_out,)).astype(np.float32), int(zp[0]) if zp.size else 0

    # ---- the QDQ pattern: DequantizeLinear -> op -> [Relu | Clip] -> QuantizeLinear
    def quantized_inputs(self, n: onnx.NodeProto, names) -> list[QTensor]:
        """The quantized tensors behind float inputs ``names`` (each after a DequantizeLinear)."""
        for x in names:
            if x not in self.q_of_float:
                raise ModelError(n.name, n.op_type, f"input {x!r} is not quantized (no DequantizeLinear before it)")
        return [self.graph.tensors[self.q_of_float[x]] for x in names]

    def output_q(self, n: onnx.NodeProto, out: Optional[str] = None) -> onnx.NodeProto:
        """The QuantizeLinear of a node's output (or of ``out``, after a fused activation)."""
        qn = self.quantized_at.get(out or n.output[0])
        if qn is None:
            raise ModelError(n.name, n.op_type, f"output {out or n.output[0]!r} is not followed by a QuantizeLinear")
        return qn

    def quantized_io(self, n: onnx.NodeProto, out: Optional[str] = None) -> tuple[QTensor, onnx.NodeProto]:
        """The quantized tensor behind a node's first input and the QuantizeLinear of its output."""
        return self.quantized_inputs(n, n.input[:1])[0], self.output_q(n, out)

    def activation_after(self, out: str) -> tuple[str, Activation]:
        """Follow a Relu/Clip that is a layer output's only consumer; returns (the float tensor that
        reaches the QuantizeLinear, the activation or None)."""
        users = self.consumers.get(out, [])
        if len(users) != 1 or users[0].op_type not in ("Relu", "Clip"):
            return out, None
        a = users[0]
        lo, hi = 0.0, np.inf
        if a.op_type == "Clip":
            lo = float(self.init(a, a.input[1], "min")) if len(a.input) > 1 and a.input[1] else -np.inf
            hi = float(self.init(a, a.input[2], "max")) if len(a.input) > 2 and a.input[2] else np.inf
        return a.output[0], (a.op_type, lo, hi)

    # ---- QOperator nodes: quantized tensors in, with their parameters repeated on the node
    def qlinear_input(self, n: onnx.NodeProto, x: str, si: int, zi: int) -> QTensor:
        """The quantized tensor ``x`` feeding a QOperator node, checked against the node's own
        scale (input ``si``) and zero point (input ``zi``)."""
        t = self.graph.tensors.get(x)
        if t is None:
            raise ModelError(n.name, n.op_type, f"input {x!r} is not a quantized tensor")
        if scalar_f32(self.init(n, n.input[si], "scale")) != t.scale or \
                scalar_int(self.init(n, n.input[zi], "zero point")) != t.zero_point:
            raise ModelError(n.name, n.op_type, f"input quantization of {x!r} differs from its producer's")
        return t

    def quantized_input(self, n: onnx.NodeProto) -> QTensor:
        """The quantized tensor a QOperator-form node (MaxPool, Reshape, ...) reads as input 0."""
        t = self.graph.tensors.get(n.input[0])
        if t is None:
            raise ModelError(n.name, n.op_type, f"input {n.input[0]!r} is not a quantized tensor")
        return t


def clamp_for(t: QTensor, act: Activation) -> tuple[int, int]:
    """The integer output range of ``t`` after a fused activation (its float bounds quantized)."""
    lo, hi = qrange(t.dtype)
    if act is not None:
        _, flo, fhi = act
        if np.isfinite(flo):
            lo = max(lo, int(np.rint(np.float32(flo) / t.scale)) + t.zero_point)
        if np.isfinite(fhi):
            hi = min(hi, int(np.rint(np.float32(fhi) / t.scale)) + t.zero_point)
    return lo, hi
