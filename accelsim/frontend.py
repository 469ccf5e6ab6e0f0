"""Import ONNX models quantized by onnxruntime.quantization (QDQ or QOperator) into accelsim.ir.

Supported so far: QuantizeLinear at the inputs, DequantizeLinear at the outputs, Conv /
QLinearConv (group 1), Gemm / MatMul / QGemm / QLinearMatMul as fully connected layers, Relu and
Clip folded into the preceding layer's clamp, Flatten / Reshape.  Anything else is refused with a
:class:`ModelError` naming the node, its op type and the reason.
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import numpy as np
import onnx
from onnx import numpy_helper

from .ir import ModelError, QAdd, QAvgPool, QConcat, QConv, QGlobalAvgPool, QGraph, QLut, QMaxPool, QReshape, QTensor

_NP_DTYPE = {np.dtype(np.uint8): "u8", np.dtype(np.int8): "s8", np.dtype(np.uint16): "u16",
             np.dtype(np.int16): "s16", np.dtype(np.int32): "s32"}
_LAYER_OPS = {"Conv", "Gemm", "MatMul"}
DTYPES_BITS = {"u4": 4, "s4": 4, "u8": 8, "s8": 8, "u16": 16, "s16": 16}
# float ops the host runs after the chip's last DequantizeLinear (listed as "host" in reports)
HOST_OPS = {"Softmax", "LogSoftmax", "Sigmoid", "Tanh", "Identity", "Flatten", "Reshape", "Squeeze", "Unsqueeze",
            "ArgMax", "TopK", "Exp", "Log", "Mul", "Add", "Div", "Sub", "Transpose",
            "BatchNormalization", "Relu", "Clip", "LeakyRelu"}
_Q_LAYER_OPS = {"QLinearConv", "QGemm", "QLinearMatMul"}


def load_model(path: str | Path) -> onnx.ModelProto:
    """Read an ONNX file; a missing, truncated or corrupt file is a ModelError."""
    try:
        model = onnx.load(str(path))
        onnx.checker.check_model(model)
    except FileNotFoundError:
        raise ModelError(str(path), "file", "no such file") from None
    except Exception as e:  # onnx raises DecodeError, ValidationError, ...
        raise ModelError(str(path), "file", f"not a valid ONNX model ({type(e).__name__}: {str(e)[:200]})") from None
    return model


def _dtype_name(arr: np.ndarray, node: str, op: str) -> str:
    name = _NP_DTYPE.get(np.asarray(arr).dtype)
    if name is None:
        if "int4" in str(np.asarray(arr).dtype):
            return "s4" if "uint" not in str(np.asarray(arr).dtype) else "u4"
        raise ModelError(node, op, f"unsupported quantized type {np.asarray(arr).dtype}")
    return name


def _attrs(node: onnx.NodeProto) -> dict:
    return {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}


def _conv_geometry(node: onnx.NodeProto, in_shape: tuple, w_shape: tuple) -> tuple:
    a = _attrs(node)
    if a.get("auto_pad", b"NOTSET") not in (b"NOTSET", "NOTSET"):
        raise ModelError(node.name, node.op_type, "auto_pad is not supported; export explicit pads")
    kh, kw = w_shape[2], w_shape[3]
    strides = tuple(a.get("strides", (1, 1)))
    dil = tuple(a.get("dilations", (1, 1)))
    p = tuple(a.get("pads", (0, 0, 0, 0)))  # ONNX: top, left, bottom, right
    group = int(a.get("group", 1))
    n, c, h, w = in_shape
    oh = (h + p[0] + p[2] - dil[0] * (kh - 1) - 1) // strides[0] + 1
    ow = (w + p[1] + p[3] - dil[1] * (kw - 1) - 1) // strides[1] + 1
    return strides, (p[0], p[1], p[2], p[3]), dil, group, (n, w_shape[0], oh, ow)


class _Importer:
    def __init__(self, model: onnx.ModelProto) -> None:
        self.model = model
        self.graph = QGraph()
        self.inits = {i.name: numpy_helper.to_array(i) for i in model.graph.initializer}
        self.consumers: dict[str, list[onnx.NodeProto]] = {}
        for n in model.graph.node:
            for i in n.input:
                self.consumers.setdefault(i, []).append(n)
        self.shapes: dict[str, tuple] = {}
        self.input_alias: dict[str, str] = {}  # float tensor -> the graph input it reshapes (host side)
        self.nhwc_views: set[str] = set()  # quantized tensors a Transpose made NHWC (only a Flatten may read them)
        for vi in model.graph.input:
            self.input_alias[vi.name] = vi.name
        for vi in model.graph.input:
            dims = tuple(d.dim_value if d.dim_value > 0 else 1 for d in vi.type.tensor_type.shape.dim)
            self.shapes[vi.name] = dims

    def host_reshape(self, n: onnx.NodeProto) -> bool:
        """A Flatten/Reshape or a constant Clip of a float graph input before its QuantizeLinear:
        the host does it (the Clip in float, as ONNX does, before quantizing)."""
        if n.op_type in ("Flatten", "Reshape") and n.input[0] in self.input_alias:
            self.shapes[n.output[0]] = _reshape(self, n, self.shapes[n.input[0]])
            self.input_alias[n.output[0]] = self.input_alias[n.input[0]]
            return True
        if n.op_type == "Clip" and n.input[0] in self.input_alias \
                and self.input_alias[n.input[0]] not in self.graph.input_clips:
            bounds = [float(self.init(n, i, "bound")) if i else None for i in list(n.input[1:3]) + [""] * (3 - len(n.input))]
            self.shapes[n.output[0]] = self.shapes[n.input[0]]
            self.input_alias[n.output[0]] = self.input_alias[n.input[0]]
            self.graph.input_clips[self.input_alias[n.input[0]]] = (bounds[0], bounds[1])
            return True
        return False

    def qparams(self, qn: onnx.NodeProto) -> tuple[np.ndarray, np.ndarray]:
        """Scale and zero point of a QuantizeLinear (or QLinear node's output) from its inputs 1, 2."""
        return self.init(qn, qn.input[1], "scale"), self.init(qn, qn.input[2], "zero point")

    def init(self, node: onnx.NodeProto, name: str, what: str) -> np.ndarray:
        if name not in self.inits:
            raise ModelError(node.name, node.op_type, f"{what} {name!r} is not an initializer (missing or computed)")
        return self.inits[name]

    def add_tensor(self, node, name: str, shape: tuple, scale: np.ndarray, zp: np.ndarray) -> QTensor:
        scale, zp = np.asarray(scale), np.asarray(zp)
        if scale.size != 1 or zp.size != 1:
            raise ModelError(node.name, node.op_type, f"activation {name!r} must be quantized per tensor")
        dtype = _dtype_name(zp, node.name, node.op_type)
        if dtype not in ("u4", "s4", "u8", "s8", "u16", "s16"):
            raise ModelError(node.name, node.op_type, f"activation {name!r} has type {dtype}: the chip takes "
                                                      "4, 8 or 16-bit activations")
        t = QTensor(name, tuple(shape), dtype, np.float32(scale.reshape(())), int(zp.reshape(())))
        self.graph.tensors[name] = t
        return t

    def weight_params(self, node, w: np.ndarray, scale: np.ndarray, zp: np.ndarray, n_out: int):
        zp = np.asarray(zp).ravel()
        if zp.size > 1 and not np.all(zp == zp[0]):
            raise ModelError(node.name, node.op_type, "per-channel weight zero points differ; the chip takes one")
        scale = np.asarray(scale, dtype=np.float32).ravel()
        if scale.size not in (1, n_out):
            raise ModelError(node.name, node.op_type, f"weight scale has {scale.size} values for {n_out} channels")
        return np.broadcast_to(scale, (n_out,)).astype(np.float32), int(zp[0]) if zp.size else 0

    def activation_after(self, node, out: str) -> tuple[str, Optional[tuple[str, float, float]]]:
        """Follow Relu/Clip after a layer output; returns (float name reaching Q, activation)."""
        act = None
        users = self.consumers.get(out, [])
        if len(users) == 1 and users[0].op_type in ("Relu", "Clip"):
            a = users[0]
            lo, hi = 0.0, np.inf
            if a.op_type == "Clip":
                lo = float(self.init(a, a.input[1], "min")) if len(a.input) > 1 and a.input[1] else -np.inf
                hi = float(self.init(a, a.input[2], "max")) if len(a.input) > 2 and a.input[2] else np.inf
            act, out = (a.op_type, lo, hi), a.output[0]
        return out, act

    @staticmethod
    def clamp_for(t: QTensor, act) -> tuple[int, int]:
        from isa.quant import qrange

        lo, hi = qrange(t.dtype)
        if act is not None:
            _, flo, fhi = act
            if np.isfinite(flo):
                lo = max(lo, int(np.rint(np.float32(flo) / t.scale)) + t.zero_point)
            if np.isfinite(fhi):
                hi = min(hi, int(np.rint(np.float32(fhi) / t.scale)) + t.zero_point)
        return lo, hi


def _import_graph(imp: _Importer) -> None:
    g = imp.graph
    q_of_float: dict[str, str] = {}       # float tensor produced by an activation DQ -> QTensor name
    weights: dict[str, tuple] = {}        # float tensor produced by a weight DQ -> (ints, scale, zp)
    floats: dict[str, np.ndarray] = {}    # the same, dequantized (float32), for float parameters (BN)
    quantized_at: dict[str, onnx.NodeProto] = {}  # float tensor -> the (first) QuantizeLinear consuming it
    for n in imp.model.graph.node:
        if n.op_type == "QuantizeLinear":
            quantized_at.setdefault(n.input[0], n)
        if n.op_type == "DequantizeLinear" and n.input[0] in imp.inits:
            zp = imp.inits[n.input[2]] if len(n.input) > 2 and n.input[2] else np.zeros((), np.int8)
            weights[n.output[0]] = (imp.inits[n.input[0]], imp.init(n, n.input[1], "scale"), zp)
            axis = int(_attrs(n).get("axis", 1))
            q, s = imp.inits[n.input[0]].astype(np.int64), np.asarray(imp.inits[n.input[1]], np.float32)
            z = np.asarray(zp).astype(np.int64)
            if s.ndim == 1 and s.size > 1:  # per axis: broadcast along ``axis``
                shape = [1] * q.ndim
                shape[axis] = s.size
                s, z = s.reshape(shape), z.reshape(shape)
            floats[n.output[0]] = (q - z).astype(np.float32) * s  # ONNX Runtime's DequantizeLinear

    def quantized_inputs(n: onnx.NodeProto, names) -> list[QTensor]:
        """The quantized tensors behind float inputs ``names`` (each after a DequantizeLinear)."""
        for x in names:
            if x not in q_of_float:
                raise ModelError(n.name, n.op_type, f"input {x!r} is not quantized (no DequantizeLinear before it)")
        return [g.tensors[q_of_float[x]] for x in names]

    def output_q(n: onnx.NodeProto, out: Optional[str] = None) -> onnx.NodeProto:
        """The QuantizeLinear of a node's output (or of ``out``, after a fused activation)."""
        qn = quantized_at.get(out or n.output[0])
        if qn is None:
            raise ModelError(n.name, n.op_type, f"output {out or n.output[0]!r} is not followed by a QuantizeLinear")
        return qn

    def quantized_io(n: onnx.NodeProto, out: Optional[str] = None) -> tuple[QTensor, onnx.NodeProto]:
        """The quantized tensor behind a node's first input and the QuantizeLinear of its output."""
        return quantized_inputs(n, n.input[:1])[0], output_q(n, out)

    consumed: set[int] = set()  # nodes already imported with the node before them
    for n in imp.model.graph.node:
        op = n.op_type
        if id(n) in consumed:
            continue
        if imp.host_reshape(n):
            continue
        if op in _QOPERATOR_OPS or (op != "DequantizeLinear" and n.input and n.input[0] in g.tensors):
            _qoperator_node(imp, n)  # a QOperator node: reads quantized tensors directly
            continue
        if op == "QuantizeLinear":
            src = n.input[0]
            if n.output[0] in g.tensors:  # registered by the node that produces ``src``
                continue
            first = quantized_at[src]
            if first is n and src in imp.input_alias:
                t = imp.add_tensor(n, n.output[0], imp.shapes[src], imp.init(n, n.input[1], "scale"),
                                   imp.init(n, n.input[2], "zero point"))
                g.inputs[imp.input_alias[src]] = t.name
                continue
            if first is not n and first.output[0] in g.tensors:  # the same float tensor quantized again
                prev = g.tensors[first.output[0]]
                zp = np.asarray(imp.init(n, n.input[2], "zero point"))
                again = (np.float32(np.asarray(imp.init(n, n.input[1], "scale")).reshape(())), int(zp.reshape(())),
                         _dtype_name(zp, n.name, op))
                if again != (prev.scale, prev.zero_point, prev.dtype):
                    raise ModelError(n.name, op, f"quantizes {src!r} a second time with other parameters")
                g.tensors[n.output[0]] = QTensor(n.output[0], prev.shape, prev.dtype, prev.scale, prev.zero_point)
                g.nodes.append(QReshape(n.name or n.output[0], op, prev.name, n.output[0]))
                continue
            raise ModelError(n.name, op, f"quantizes {src!r}, which no node the chip runs produces")
        if op == "DequantizeLinear":
            if n.input[0] in imp.inits:
                continue
            if n.input[0] not in g.tensors:
                raise ModelError(n.name, op, f"dequantizes {n.input[0]!r}, which no QuantizeLinear produced")
            q_of_float[n.output[0]] = n.input[0]
            imp.shapes[n.output[0]] = g.tensors[n.input[0]].shape
            if any(n.output[0] == o.name for o in imp.model.graph.output):
                g.outputs[n.output[0]] = n.input[0]
            continue
        if op in ("Relu", "Clip", "LeakyRelu"):
            if n.input[0] in q_of_float:  # standalone, between DequantizeLinear and QuantizeLinear: a table
                users = imp.consumers.get(n.output[0], [])
                reshape = users[0] if (n.output[0] not in quantized_at and len(users) == 1
                                       and users[0].op_type in ("Flatten", "Reshape")) else None
                src, qn = quantized_io(n, reshape.output[0] if reshape is not None else None)
                ys, yz = imp.qparams(qn)
                if reshape is None:
                    _add_lut(imp, n, src, qn, qn.output[0], ys, yz, _activation_fn(n, imp))
                else:  # activation -> Flatten/Reshape -> Q: the table, then the reshape
                    mapped = qn.output[0] + "::mapped"
                    _add_lut(imp, n, src, qn, mapped, ys, yz, _activation_fn(n, imp))
                    shape = _reshape(imp, reshape, src.shape)
                    t = g.tensors[mapped]
                    g.tensors[qn.output[0]] = QTensor(qn.output[0], shape, t.dtype, t.scale, t.zero_point)
                    g.nodes.append(QReshape(reshape.name, reshape.op_type, mapped, qn.output[0]))
                    imp.shapes[reshape.output[0]] = shape
                    consumed.add(id(reshape))
                imp.shapes[n.output[0]] = src.shape
                continue
            if op == "LeakyRelu":
                raise ModelError(n.name, op, "LeakyRelu on a float tensor (its input is not dequantized)")
            continue  # folded into the layer before it (activation_after)
        if op == "BatchNormalization":
            if n.input[0] not in q_of_float:
                raise ModelError(n.name, op, "BatchNormalization on a float tensor (fold it into the conv before "
                                             "quantizing: onnxruntime.quantization.quant_pre_process)")
            params = []
            for name, what in zip(n.input[1:5], ("scale", "bias", "mean", "var")):
                v = floats.get(name)
                params.append(v if v is not None else np.asarray(imp.init(n, name, what), np.float32))
            out, act = imp.activation_after(n, n.output[0])
            src, qn = quantized_io(n, out)
            _batchnorm(imp, n, src, qn, qn.output[0], *imp.qparams(qn), params, act)
            imp.shapes[out] = src.shape
            continue
        if op == "AveragePool":
            src, qn = quantized_io(n)
            _avgpool(imp, n, src, qn, qn.output[0], *imp.qparams(qn))
            imp.shapes[n.output[0]] = g.tensors[qn.output[0]].shape
            continue
        if op == "Concat":
            srcs = quantized_inputs(n, n.input)
            out, act = imp.activation_after(n, n.output[0])
            qn = output_q(n, out)
            _concat(imp, n, srcs, qn, qn.output[0],
                    *imp.qparams(qn), act)
            imp.shapes[out] = g.tensors[qn.output[0]].shape
            continue
        if op in _LAYER_OPS:
            (x,) = quantized_inputs(n, n.input[:1])
            wname = n.input[1]
            if wname not in weights:
                raise ModelError(n.name, op, f"weight {wname!r} is not a quantized initializer (missing scale?)")
            w, ws, wz = weights[wname]
            bias = None
            if len(n.input) > 2 and n.input[2]:
                if n.input[2] not in weights:
                    raise ModelError(n.name, op, f"bias {n.input[2]!r} is not a quantized initializer")
                bias = weights[n.input[2]][0]
            out, act = imp.activation_after(n, n.output[0])
            qn = output_q(n, out)
            _add_layer(imp, n, x.name, w, ws, wz, bias, qn.output[0], *imp.qparams(qn), act, out)
            imp.shapes[out] = g.tensors[qn.output[0]].shape
            continue
        if op == "Add":
            a, b = quantized_inputs(n, n.input)  # (a constant addend has no DequantizeLinear of an activation)
            out, act = imp.activation_after(n, n.output[0])
            qn = output_q(n, out)
            _add(imp, n, a, b, qn.output[0],
                 *imp.qparams(qn), act)
            imp.shapes[out] = g.tensors[qn.output[0]].shape
            continue
        if op == "GlobalAveragePool":
            out, act = imp.activation_after(n, n.output[0])
            src, qn = quantized_io(n, out)
            if len(src.shape) != 4:
                raise ModelError(n.name, op, f"expects an NCHW input, got shape {src.shape}")
            t = imp.add_tensor(qn, qn.output[0], (src.shape[0], src.shape[1], 1, 1),
                               *imp.qparams(qn))
            g.nodes.append(QGlobalAvgPool(n.name, op, src.name, t.name, imp.clamp_for(t, act)))
            imp.shapes[out] = t.shape
            continue
        if op == "MaxPool":
            src, qn = quantized_io(n)
            qs, qz = imp.qparams(qn)
            qs, qz = np.float32(np.asarray(qs).reshape(())), np.asarray(qz)
            if (qs, int(qz.reshape(())), _dtype_name(qz, qn.name, qn.op_type)) == (src.scale, src.zero_point, src.dtype):
                _maxpool(imp, n, src, qn.output[0])
            else:  # max commutes with the monotone DequantizeLinear: pool, then requantize by a table
                _maxpool(imp, n, src, qn.output[0] + "::pooled")
                pooled = g.tensors[qn.output[0] + "::pooled"]
                _add_lut(imp, n, pooled, qn, qn.output[0], qs, qz, lambda v: v)
            imp.shapes[n.output[0]] = g.tensors[qn.output[0]].shape
            continue
        if op in ("Flatten", "Reshape", "Transpose"):
            src, qn = quantized_io(n)
            shape = _layout_shape(imp, n, src)
            t = imp.add_tensor(qn, qn.output[0], shape, *imp.qparams(qn))
            if (t.scale, t.zero_point, t.dtype) != (src.scale, src.zero_point, src.dtype):
                raise ModelError(n.name, op, f"requantizing through a {op} is not supported")
            g.nodes.append(QReshape(n.name, op, src.name, t.name, nhwc=op == "Transpose" or src.name in imp.nhwc_views))
            if op == "Transpose":
                imp.nhwc_views.add(t.name)
            imp.shapes[n.output[0]] = shape
            continue
        raise ModelError(n.name, op, "unsupported op (runs on neither the chip nor the host yet)")


def _pool_geometry(n: onnx.NodeProto, src: QTensor) -> tuple:
    """(kernel, strides, dilations, pads top/left/bottom/right, output shape) of a 2-D pool."""
    a = _attrs(n)
    if len(src.shape) != 4:
        raise ModelError(n.name, n.op_type, f"expects an NCHW input, got shape {src.shape}")
    if len(n.output) > 1 and n.output[1]:
        raise ModelError(n.name, n.op_type, "the Indices output is not supported")
    if a.get("auto_pad", b"NOTSET") not in (b"NOTSET", "NOTSET"):
        raise ModelError(n.name, n.op_type, "auto_pad is not supported; export explicit pads")
    if len(a.get("kernel_shape", ())) != 2:
        raise ModelError(n.name, n.op_type, f"only 2-D pooling is supported (kernel_shape {a.get('kernel_shape')})")
    kh, kw = a["kernel_shape"]
    sh, sw = a.get("strides", (1, 1))
    dh, dw = a.get("dilations", (1, 1))
    pt, pl, pb, pr = a.get("pads", (0, 0, 0, 0))
    _, c, h, w = src.shape

    def out(size, k, s, d, p0, p1):
        span = size + p0 + p1 - d * (k - 1) - 1
        o = (-(-span // s) if a.get("ceil_mode", 0) else span // s) + 1
        if a.get("ceil_mode", 0) and (o - 1) * s >= size + p0:  # the last window must start inside
            o -= 1
        return o

    shape = (src.shape[0], c, out(h, kh, sh, dh, pt, pb), out(w, kw, sw, dw, pl, pr))
    return (kh, kw), (sh, sw), (dh, dw), (pt, pl, pb, pr), shape


def _maxpool(imp: _Importer, n: onnx.NodeProto, src: QTensor, out_name: str) -> None:
    k, st, dil, pads, shape = _pool_geometry(n, src)
    t = QTensor(out_name, shape, src.dtype, src.scale, src.zero_point)
    imp.graph.tensors[out_name] = t
    imp.graph.nodes.append(QMaxPool(n.name, n.op_type, src.name, out_name, k, st, pads, dil))


def _avgpool(imp: _Importer, n: onnx.NodeProto, src: QTensor, out_node, y_name: str, y_scale, y_zp) -> None:
    k, st, dil, pads, shape = _pool_geometry(n, src)
    y = imp.add_tensor(out_node, y_name, shape, y_scale, y_zp)
    if DTYPES_BITS[y.dtype] > 8 or DTYPES_BITS[src.dtype] > 8:
        raise ModelError(n.name, n.op_type, "average pooling of 16-bit tensors is not supported")
    imp.graph.nodes.append(QAvgPool(n.name, n.op_type, src.name, y.name, k, st, pads, dil,
                                    count_include_pad=bool(_attrs(n).get("count_include_pad", 0))))


def lut_table(src: QTensor, dst: QTensor, fn) -> np.ndarray:
    """The table Q(fn(DQ(x))) over the 256 codes of an 8-bit element (ONNX Runtime's float rule:
    DQ = float32(x - z) * s; Q divides, rounds half to even and saturates)."""
    from isa.quant import quantize

    bits, signed = DTYPES_BITS[src.dtype], src.dtype.startswith("s")
    codes = np.arange(256, dtype=np.int64)
    v = codes & ((1 << bits) - 1)
    if signed:
        v = np.where(v >= 1 << (bits - 1), v - (1 << bits), v)
    x = np.float32(src.scale) * (v - src.zero_point).astype(np.float32)
    y = np.asarray(fn(x.astype(np.float32)), np.float32)
    return quantize(y, dst.scale, dst.zero_point, dst.dtype).astype(np.int64)


def _activation_fn(n: onnx.NodeProto, imp: _Importer):
    """The float function of a standalone Relu / Clip / LeakyRelu node (exact in float32)."""
    if n.op_type == "Relu":
        return lambda x: np.maximum(x, np.float32(0))
    if n.op_type == "LeakyRelu":
        alpha = np.float32(_attrs(n).get("alpha", 0.01))
        return lambda x: np.where(x >= 0, x, alpha * x)
    lo = np.float32(imp.init(n, n.input[1], "min")) if len(n.input) > 1 and n.input[1] else np.float32(-np.inf)
    hi = np.float32(imp.init(n, n.input[2], "max")) if len(n.input) > 2 and n.input[2] else np.float32(np.inf)
    return lambda x: np.minimum(np.maximum(x, lo), hi)


def _add_lut(imp: _Importer, n: onnx.NodeProto, src: QTensor, out_node, y_name: str, y_scale, y_zp, fn) -> None:
    if DTYPES_BITS[src.dtype] > 8:
        raise ModelError(n.name, n.op_type, f"a standalone {n.op_type} on a {src.dtype} tensor is not supported "
                                            "(the lookup table takes 8-bit codes)")
    y = imp.add_tensor(out_node, y_name, src.shape, y_scale, y_zp)
    if DTYPES_BITS[y.dtype] > 8:
        raise ModelError(n.name, n.op_type, f"output type {y.dtype}: the lookup table yields at most 8 bits")
    imp.graph.nodes.append(QLut(n.name, n.op_type, src.name, y.name, lut_table(src, y, fn)))


def _batchnorm(imp: _Importer, n: onnx.NodeProto, src: QTensor, out_node, y_name: str, y_scale, y_zp, params,
               act) -> None:
    """A BatchNormalization between DequantizeLinear and QuantizeLinear as one table per channel,
    with ONNX Runtime's float arithmetic (batch_norm.h): inv_std = 1 / sqrt(var + eps),
    new_scale = inv_std * scale, new_bias = bias - mean * new_scale, y = x * new_scale + new_bias,
    then any Relu / Clip, then QuantizeLinear."""
    a = _attrs(n)
    if len(n.output) > 1 and any(n.output[1:]) or a.get("training_mode", 0):
        raise ModelError(n.name, n.op_type, "training-mode BatchNormalization is not supported")
    if len(src.shape) < 2:
        raise ModelError(n.name, n.op_type, f"expects an (N, C, ...) input, got shape {src.shape}")
    c = src.shape[1]
    scale, bias, mean, var = (np.asarray(p, np.float32).reshape(-1) for p in params)
    if not all(p.size == c for p in (scale, bias, mean, var)):
        raise ModelError(n.name, n.op_type, f"parameters must have {c} values (one per channel)")
    eps = np.float32(a.get("epsilon", 1e-5))
    with np.errstate(divide="ignore", invalid="ignore"):
        inv_std = np.float32(1) / np.sqrt(var + eps)
    new_scale = inv_std * scale
    new_bias = bias - mean * new_scale
    if DTYPES_BITS[src.dtype] > 8:
        raise ModelError(n.name, n.op_type, f"a BatchNormalization on a {src.dtype} tensor is not supported "
                                            "(the lookup table takes 8-bit codes)")
    y = imp.add_tensor(out_node, y_name, src.shape, y_scale, y_zp)
    if DTYPES_BITS[y.dtype] > 8:
        raise ModelError(n.name, n.op_type, f"output type {y.dtype}: the lookup table yields at most 8 bits")
    lo, hi = (np.float32(0), np.float32(np.inf)) if act is None or act[0] == "Relu" else \
        (np.float32(act[1]), np.float32(act[2]))
    if act is None:
        lo = np.float32(-np.inf)
    tables = np.stack([lut_table(src, y, lambda x, k=k: np.minimum(np.maximum(x * new_scale[k] + new_bias[k], lo), hi))
                       for k in range(c)])
    imp.graph.nodes.append(QLut(n.name, n.op_type, src.name, y.name, tables))


def _concat(imp: _Importer, n: onnx.NodeProto, srcs: list[QTensor], out_node, y_name: str, y_scale, y_zp,
            act=None) -> None:
    rank = len(srcs[0].shape)
    axis = int(_attrs(n).get("axis", 1))
    axis = axis + rank if axis < 0 else axis
    if rank not in (2, 4) or axis != 1:
        raise ModelError(n.name, n.op_type, f"only concatenation along channels (axis 1 of NCHW or of a 2-D "
                                            f"tensor) is supported, got axis {axis} of rank {rank}")
    for t in srcs:
        if len(t.shape) != rank or t.shape[:1] + t.shape[2:] != srcs[0].shape[:1] + srcs[0].shape[2:]:
            raise ModelError(n.name, n.op_type, f"input shapes {[t.shape for t in srcs]} differ off the channel axis")
    shape = (srcs[0].shape[0], sum(t.shape[1] for t in srcs)) + srcs[0].shape[2:]
    y = imp.add_tensor(out_node, y_name, shape, y_scale, y_zp)
    for t in srcs:
        same = (t.scale, t.zero_point, t.dtype) == (y.scale, y.zero_point, y.dtype)
        if not same and max(DTYPES_BITS[t.dtype], DTYPES_BITS[y.dtype]) > 8:
            raise ModelError(n.name, n.op_type, f"requantizing 16-bit input {t.name!r} is not supported")
    clamp = imp.clamp_for(y, act) if act is not None else None
    imp.graph.nodes.append(QConcat(n.name, n.op_type, [t.name for t in srcs], y.name, clamp))


def _add(imp: _Importer, n: onnx.NodeProto, a: QTensor, b: QTensor, y_name: str, y_scale, y_zp, act) -> None:
    if a.shape != b.shape:
        raise ModelError(n.name, n.op_type, f"broadcasting add of {a.shape} and {b.shape} is not supported")
    if a.dtype != b.dtype:
        raise ModelError(n.name, n.op_type, f"inputs of different types {a.dtype} and {b.dtype}")
    y = imp.add_tensor(n, y_name, a.shape, y_scale, y_zp)
    if y.dtype != a.dtype:
        raise ModelError(n.name, n.op_type, f"output type {y.dtype} differs from the inputs' {a.dtype}")
    imp.graph.nodes.append(QAdd(n.name, n.op_type, a.name, b.name, y.name, imp.clamp_for(y, act)))


def _layout_shape(imp: _Importer, n: onnx.NodeProto, src: QTensor) -> tuple:
    """Output shape of a Flatten / Reshape, or of a Transpose the chip can take: NCHW -> NHWC
    (perm 0, 2, 3, 1), which is its own DRAM order, when only a Flatten or Reshape to 2-D reads it."""
    if n.op_type != "Transpose":
        if src.name in imp.nhwc_views and len(_reshape(imp, n, src.shape)) != 2:
            raise ModelError(n.name, n.op_type, "a transposed (NHWC) tensor can only be flattened to 2-D")
        return _reshape(imp, n, src.shape)
    perm = tuple(_attrs(n).get("perm", ()))
    users = imp.consumers.get(n.output[0], [])
    if len(src.shape) != 4 or perm != (0, 2, 3, 1):
        raise ModelError(n.name, n.op_type, f"Transpose perm={list(perm)} of {src.shape}: only NCHW -> NHWC "
                                            "(perm 0, 2, 3, 1) before a Flatten is a layout change the chip takes")
    if not users or any(u.op_type not in ("QuantizeLinear", "Flatten", "Reshape") for u in users):
        raise ModelError(n.name, n.op_type, "an NCHW -> NHWC Transpose must be followed by Flatten or Reshape to 2-D")
    return tuple(src.shape[i] for i in perm)


def _reshape(imp: _Importer, n: onnx.NodeProto, shape: tuple) -> tuple:
    if n.op_type == "Flatten":
        axis = _attrs(n).get("axis", 1)
        return (int(np.prod(shape[:axis])), int(np.prod(shape[axis:])))
    target = imp.init(n, n.input[1], "shape").astype(np.int64).tolist()
    total = int(np.prod(shape))
    target = [shape[i] if v == 0 else v for i, v in enumerate(target)]
    if -1 in target:
        known = int(np.prod([v for v in target if v != -1]))
        target[target.index(-1)] = total // known
    if int(np.prod(target)) != total:
        raise ModelError(n.name, n.op_type, f"cannot reshape {shape} to {target}")
    return tuple(target)


def _add_layer(imp: _Importer, n, x_name: str, w, ws, wz, bias, y_name, y_scale, y_zp, act, out_float: str) -> None:
    g = imp.graph
    x = g.tensors[x_name]
    op = n.op_type
    a = _attrs(n)
    if op in ("Conv", "QLinearConv"):
        if w.ndim != 4:
            raise ModelError(n.name, op, f"only 2-D convolutions are supported (weight rank {w.ndim})")
        stride, pads, dil, group, out_shape = _conv_geometry(n, x.shape, w.shape)
        if x.shape[1] % group or w.shape[0] % group or w.shape[1] * group != x.shape[1]:
            raise ModelError(n.name, op, f"group={group} does not divide input channels {x.shape[1]} and "
                                         f"output channels {w.shape[0]} (weight shape {w.shape})")
        weight = w
    else:  # fully connected: Gemm / MatMul / QGemm / QLinearMatMul
        if a.get("transA", 0):
            raise ModelError(n.name, op, "transA=1 is not supported")
        if op in ("Gemm", "QGemm") and not a.get("transB", 0):
            w = w.T
        elif op in ("MatMul", "QLinearMatMul"):
            w = w.T
        if len(x.shape) != 2 or x.shape[1] != w.shape[1]:
            raise ModelError(n.name, op, f"input shape {x.shape} does not match weight {w.shape}")
        if float(a.get("alpha", 1.0)) != 1.0 or float(a.get("beta", 1.0)) != 1.0:
            raise ModelError(n.name, op, "alpha/beta other than 1 are not supported")
        weight = w.reshape(w.shape[0], w.shape[1], 1, 1)
        stride, pads, dil, group, out_shape = (1, 1), (0, 0, 0, 0), (1, 1), 1, (x.shape[0], w.shape[0])
    n_out = weight.shape[0]
    w_scale, w_zp = imp.weight_params(n, weight, ws, wz, n_out)
    b = np.zeros(n_out, np.int64) if bias is None else np.asarray(bias, np.int64).ravel()
    if b.size != n_out:
        raise ModelError(n.name, op, f"bias has {b.size} values for {n_out} channels")
    y = imp.add_tensor(n, y_name, out_shape, y_scale, y_zp)
    g.nodes.append(QConv(n.name, op, x.name, y.name, np.asarray(weight, np.int64),
                         _dtype_name(w, n.name, op), w_scale, w_zp, b, stride, pads, dil, group,
                         imp.clamp_for(y, act)))


_QOPERATOR_OPS = _Q_LAYER_OPS | {"QLinearAdd", "QLinearGlobalAveragePool", "QLinearConcat", "QLinearAveragePool",
                                 "QLinearLeakyRelu"}


def _qoperator_node(imp: _Importer, n: onnx.NodeProto) -> None:
    """One node of a QOperator model that reads quantized tensors directly."""
    g = imp.graph
    op = n.op_type
    if op in _Q_LAYER_OPS:
        x = n.input[0]
        if x not in g.tensors:
            raise ModelError(n.name, op, f"input {x!r} is not a quantized tensor")
        if op == "QLinearConv":
            w, ws, wz = (imp.init(n, n.input[i], what) for i, what in ((3, "weight"), (4, "weight scale"),
                                                                      (5, "weight zero point")))
            ys, yz = imp.init(n, n.input[6], "output scale"), imp.init(n, n.input[7], "output zero point")
            bias = imp.init(n, n.input[8], "bias") if len(n.input) > 8 and n.input[8] else None
        elif op == "QGemm":
            w, ws, wz = (imp.init(n, n.input[i], what) for i, what in ((3, "weight"), (4, "weight scale"),
                                                                      (5, "weight zero point")))
            bias = imp.init(n, n.input[6], "bias") if len(n.input) > 6 and n.input[6] else None
            if len(n.input) < 9:
                raise ModelError(n.name, op, "QGemm without an output scale (float output) is not supported")
            ys, yz = imp.init(n, n.input[7], "output scale"), imp.init(n, n.input[8], "output zero point")
        else:
            w, ws, wz = (imp.init(n, n.input[i], what) for i, what in ((3, "weight"), (4, "weight scale"),
                                                                      (5, "weight zero point")))
            ys, yz, bias = imp.init(n, n.input[6], "output scale"), imp.init(n, n.input[7], "output zero point"), None
        xs, xz = imp.init(n, n.input[1], "input scale"), imp.init(n, n.input[2], "input zero point")
        xt = g.tensors[x]
        if np.float32(np.asarray(xs).reshape(())) != xt.scale or int(np.asarray(xz).reshape(())) != xt.zero_point:
            raise ModelError(n.name, op, f"input quantization of {x!r} differs from its producer's")
        _add_layer(imp, n, x, w, ws, wz, bias, n.output[0], ys, yz, None, n.output[0])
    elif op == "QLinearAdd":
        a, b = g.tensors.get(n.input[0]), g.tensors.get(n.input[3])
        if a is None or b is None:
            raise ModelError(n.name, op, "both inputs must be quantized tensors")
        for t, si, zi in ((a, 1, 2), (b, 4, 5)):
            if np.float32(np.asarray(imp.init(n, n.input[si], "scale")).reshape(())) != t.scale or \
                    int(np.asarray(imp.init(n, n.input[zi], "zero point")).reshape(())) != t.zero_point:
                raise ModelError(n.name, op, f"input quantization of {t.name!r} differs from its producer's")
        _add(imp, n, a, b, n.output[0], imp.init(n, n.input[6], "output scale"),
             imp.init(n, n.input[7], "output zero point"), None)
    elif op == "QLinearGlobalAveragePool":
        src = g.tensors.get(n.input[0])
        if src is None:
            raise ModelError(n.name, op, f"input {n.input[0]!r} is not a quantized tensor")
        if _attrs(n).get("channels_last", 0):
            raise ModelError(n.name, op, "channels_last=1 is not supported")
        t = imp.add_tensor(n, n.output[0], (src.shape[0], src.shape[1], 1, 1),
                           imp.init(n, n.input[3], "output scale"), imp.init(n, n.input[4], "output zero point"))
        g.nodes.append(QGlobalAvgPool(n.name, op, src.name, t.name))
    elif op in ("QLinearConcat", "QLinearAveragePool", "QLinearLeakyRelu"):
        _qlinear_misc(imp, n)
    elif op == "MaxPool":
        src = g.tensors.get(n.input[0])
        if src is None:
            raise ModelError(n.name, op, f"input {n.input[0]!r} is not a quantized tensor")
        _maxpool(imp, n, src, n.output[0])
    elif op in ("Flatten", "Reshape", "Transpose"):
        src = g.tensors.get(n.input[0])
        if src is None:
            raise ModelError(n.name, op, f"input {n.input[0]!r} is not a quantized tensor")
        shape = _layout_shape(imp, n, src)
        g.tensors[n.output[0]] = QTensor(n.output[0], shape, src.dtype, src.scale, src.zero_point)
        g.nodes.append(QReshape(n.name, op, src.name, n.output[0], nhwc=op == "Transpose" or src.name in imp.nhwc_views))
        if op == "Transpose":
            imp.nhwc_views.add(n.output[0])
    else:
        raise ModelError(n.name, op, "unsupported op (runs on neither the chip nor the host yet)")


def _qlinear_input(imp: _Importer, n: onnx.NodeProto, x: str, si: int, zi: int) -> QTensor:
    """The quantized tensor ``x`` feeding a QOperator node, checked against the node's own scale and zero point."""
    t = imp.graph.tensors.get(x)
    if t is None:
        raise ModelError(n.name, n.op_type, f"input {x!r} is not a quantized tensor")
    if np.float32(np.asarray(imp.init(n, n.input[si], "scale")).reshape(())) != t.scale or \
            int(np.asarray(imp.init(n, n.input[zi], "zero point")).reshape(())) != t.zero_point:
        raise ModelError(n.name, n.op_type, f"input quantization of {x!r} differs from its producer's")
    return t


def _qlinear_misc(imp: _Importer, n: onnx.NodeProto) -> None:
    """QLinearConcat, QLinearAveragePool and QLinearLeakyRelu (com.microsoft)."""
    a = _attrs(n)
    if a.get("channels_last", 0):
        raise ModelError(n.name, n.op_type, "channels_last=1 is not supported")
    if n.op_type == "QLinearConcat":
        srcs = [_qlinear_input(imp, n, n.input[i], i + 1, i + 2) for i in range(2, len(n.input), 3)]
        _concat(imp, n, srcs, n, n.output[0], imp.init(n, n.input[0], "output scale"),
                imp.init(n, n.input[1], "output zero point"))
        return
    src = _qlinear_input(imp, n, n.input[0], 1, 2)
    ys, yz = imp.init(n, n.input[3], "output scale"), imp.init(n, n.input[4], "output zero point")
    if n.op_type == "QLinearAveragePool":
        _avgpool(imp, n, src, n, n.output[0], ys, yz)
    else:
        alpha = np.float32(a.get("alpha", 0.01))
        _add_lut(imp, n, src, n, n.output[0], ys, yz, lambda x: np.where(x >= 0, x, alpha * x))


def _split_host_tail(model: onnx.ModelProto) -> tuple[onnx.ModelProto, list]:
    """Separate float nodes that run after the chip: those fed only by DequantizeLinear outputs
    (of activations) or by other such nodes, and leading to graph outputs."""
    inits = {i.name for i in model.graph.initializer}
    host_floats: set[str] = set()
    for n in model.graph.node:
        if n.op_type == "DequantizeLinear" and n.input[0] not in inits:
            host_floats.add(n.output[0])
    tail = []
    for n in model.graph.node:
        ins = [i for i in n.input if i and i not in inits]
        if n.op_type in HOST_OPS and ins and all(i in host_floats for i in ins):
            tail.append(n)
            host_floats.update(n.output)
    # only nodes none of whose outputs feed the chip part again
    while True:  # drop, until none is left, tail nodes whose outputs feed a node outside the tail
        chip_inputs = {i for n in model.graph.node if n not in tail for i in n.input}
        kept = [n for n in tail if not (set(n.output) & chip_inputs)]
        if len(kept) == len(tail):
            break
        tail = kept
    if not tail:
        return model, []
    trimmed = onnx.ModelProto()
    trimmed.CopyFrom(model)
    del trimmed.graph.node[:]
    trimmed.graph.node.extend([n for n in model.graph.node if n not in tail])
    needed = {i for n in tail for i in n.input}
    produced = {o for n in tail for o in n.output}
    outs = [o for o in model.graph.output if o.name not in produced]
    del trimmed.graph.output[:]
    trimmed.graph.output.extend(outs + [onnx.helper.make_empty_tensor_value_info(nm) for nm in sorted(needed - produced)
                                        if nm not in {o.name for o in outs}])
    return trimmed, tail


def import_model(model: onnx.ModelProto) -> QGraph:
    """The quantized graph of a QDQ or QOperator model."""
    graph_outputs = [o.name for o in model.graph.output]
    model, tail = _split_host_tail(model)
    imp = _Importer(model)
    ops = {n.op_type for n in model.graph.node}
    qoperator = bool(ops & _QOPERATOR_OPS)
    _import_graph(imp)  # QDQ groups and QOperator nodes (and QOperator models' float islands) alike
    imp.graph.host_nodes = tail
    imp.graph.graph_outputs = graph_outputs
    host_inputs = {i for n in tail for i in n.input}
    imp.graph.host_initializers = [i for i in model.graph.initializer if i.name in host_inputs]
    imp.graph.opset = next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), 17)
    imp.graph.source_format = "QOperator" if qoperator else "QDQ"
    if not imp.graph.inputs:
        raise ModelError("<graph>", "QuantizeLinear", "no graph input is quantized by a QuantizeLinear")
    if not imp.graph.outputs:
        raise ModelError("<graph>", "DequantizeLinear", "no graph output comes from a DequantizeLinear")
    return imp.graph
