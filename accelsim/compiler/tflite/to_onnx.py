"""The float network a full-integer TFLite model stands for, as an ONNX model: weights and biases
dequantized (s * (q - z)), activations float, NCHW inside, QUANTIZE / DEQUANTIZE dropped.  It is
what co-design starts from (accelsim codesign re-quantizes each layer at the widths it searches);
its input is the file's input in NCHW order (a 4-D NHWC input transposed).  Models with streaming
state are refused."""

from __future__ import annotations

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from ..ir import ModelError
from .context import nchw_axis
from .layers import pads_of
from .load import TFLiteFile, TOp, TSubgraph

_ACT = {1: ("Relu", None), 3: ("Clip", (0.0, 6.0)), 2: ("Clip", (-1.0, 1.0))}


class _Builder:
    def __init__(self, sg: TSubgraph) -> None:
        self.sg, self.nodes, self.inits, self.k = sg, [], [], 0
        self.name: dict[int, str] = {}

    def fresh(self, hint: str) -> str:
        self.k += 1
        return f"{hint}__{self.k}"

    def const(self, value: np.ndarray, hint: str) -> str:
        name = self.fresh(hint)
        self.inits.append(numpy_helper.from_array(np.asarray(value), name))
        return name

    def node(self, op: str, ins: list[str], hint: str, **attrs) -> str:
        out = self.fresh(hint)
        self.nodes.append(helper.make_node(op, ins, [out], name=out, **attrs))
        return out

    def act(self, x: str, act: int, op: TOp) -> str:
        if act == 0:
            return x
        if act not in _ACT:
            raise ModelError(op.where(), op.op, f"fused activation {act} has no float form here")
        kind, bounds = _ACT[act]
        if kind == "Relu":
            return self.node("Relu", [x], "relu")
        return self.node("Clip", [x, self.const(np.float32(bounds[0]), "lo"), self.const(np.float32(bounds[1]), "hi")],
                         "clip")

    def floats(self, idx: int) -> np.ndarray:
        """A constant dequantized along its quantized axis."""
        t = self.sg.tensors[idx]
        if not t.quantized:
            return np.asarray(t.data, np.float32)
        shape = [1] * t.data.ndim
        if t.scale.size > 1:
            shape[t.axis] = t.scale.size
        s = t.scale.astype(np.float32).reshape(shape)
        z = t.zero_point.reshape(shape) if t.zero_point.size > 1 else t.zero_point.reshape(())
        return ((t.data.astype(np.float64) - z) * s).astype(np.float32)


def _rank(b: _Builder, idx: int) -> int:
    return len(b.sg.tensors[idx].shape)


def _to_nhwc(b: _Builder, idx: int) -> str:
    """An activation in the file's order (4-D ones are NCHW inside)."""
    x = b.name[idx]
    return b.node("Transpose", [x], "nhwc", perm=[0, 2, 3, 1]) if _rank(b, idx) == 4 else x


def _from_nhwc(b: _Builder, x: str, rank: int) -> str:
    return b.node("Transpose", [x], "nchw", perm=[0, 3, 1, 2]) if rank == 4 else x


def _conv(b: _Builder, op: TOp, depthwise: bool) -> str:
    o = op.options
    x_t = b.sg.tensors[op.inputs[0]]
    w = b.floats(op.inputs[1])
    if depthwise:
        w_oihw = w[0].transpose(2, 0, 1)[:, None]
        group = x_t.shape[3]
    else:
        w_oihw = w.transpose(0, 3, 1, 2)
        group = x_t.shape[3] // w.shape[3]
    stride, dil = (o.StrideH(), o.StrideW()), (o.DilationHFactor(), o.DilationWFactor())
    pads = pads_of(o.Padding(), x_t.shape[1:3], w_oihw.shape[2:], stride, dil)
    ins = [b.name[op.inputs[0]], b.const(w_oihw, "w")]
    if len(op.inputs) > 2 and op.inputs[2] >= 0:
        bias_t = b.sg.tensors[op.inputs[2]]
        ins.append(b.const((bias_t.data.astype(np.float64) * bias_t.scale.astype(np.float64)).astype(np.float32)
                           if bias_t.quantized else bias_t.data.astype(np.float32), "b"))
    y = b.node("Conv", ins, "conv", strides=list(stride), dilations=list(dil), group=int(group),
               pads=[pads[0], pads[1], pads[2], pads[3]])
    return b.act(y, o.FusedActivationFunction(), op)


def _fc(b: _Builder, op: TOp) -> str:
    w = b.floats(op.inputs[1])
    x = b.node("Reshape", [_to_nhwc(b, op.inputs[0]), b.const(np.array([-1, w.shape[1]], np.int64), "rows")], "rows")
    ins = [x, b.const(w, "w")]
    if len(op.inputs) > 2 and op.inputs[2] >= 0:
        bt = b.sg.tensors[op.inputs[2]]
        ins.append(b.const((bt.data.astype(np.float64) * bt.scale.astype(np.float64)).astype(np.float32), "b"))
    y = b.act(b.node("Gemm", ins, "fc", transB=1), op.options.FusedActivationFunction() if op.options else 0, op)
    out = b.sg.tensors[op.outputs[0]].shape
    if len(out) != 2:
        y = _from_nhwc(b, b.node("Reshape", [y, b.const(np.array(out, np.int64), "shape")], "view"), len(out))
    return y


def _operand(b: _Builder, idx: int, rank: int) -> str:
    t = b.sg.tensors[idx]
    if t.data is None:
        return b.name[idx]
    v = b.floats(idx).reshape((1,) * (rank - t.data.ndim) + tuple(t.data.shape))
    return b.const(v.transpose(0, 3, 1, 2) if rank == 4 else v, "k")


def _pool(b: _Builder, op: TOp) -> str:
    o = op.options
    t = b.sg.tensors[op.inputs[0]]
    k, s = (o.FilterHeight(), o.FilterWidth()), (o.StrideH(), o.StrideW())
    p = pads_of(o.Padding(), t.shape[1:3], k, s, (1, 1))
    kind = "AveragePool" if op.op == "AVERAGE_POOL_2D" else "MaxPool"
    extra = {"count_include_pad": 0} if kind == "AveragePool" else {}
    y = b.node(kind, [b.name[op.inputs[0]]], "pool", kernel_shape=list(k), strides=list(s),
               pads=[p[0], p[1], p[2], p[3]], **extra)
    return b.act(y, o.FusedActivationFunction(), op)


def _op(b: _Builder, op: TOp) -> str:
    """The float tensor of op's (first) output."""
    rank_in = _rank(b, op.inputs[0]) if op.inputs and op.inputs[0] >= 0 else 0
    if op.op in ("CONV_2D", "DEPTHWISE_CONV_2D"):
        return _conv(b, op, op.op == "DEPTHWISE_CONV_2D")
    if op.op == "FULLY_CONNECTED":
        return _fc(b, op)
    if op.op in ("ADD", "MUL"):
        rank = max(_rank(b, i) for i in op.inputs[:2])
        y = b.node("Add" if op.op == "ADD" else "Mul", [_operand(b, i, rank) for i in op.inputs[:2]], op.op.lower())
        return b.act(y, op.options.FusedActivationFunction() if op.options else 0, op)
    if op.op in ("AVERAGE_POOL_2D", "MAX_POOL_2D"):
        return _pool(b, op)
    if op.op == "MEAN":
        axes = [nchw_axis(int(a), rank_in) for a in np.asarray(b.sg.tensors[op.inputs[1]].data).ravel()]
        return b.node("ReduceMean", [b.name[op.inputs[0]]], "mean", axes=sorted(set(axes)),
                      keepdims=int(bool(op.options.KeepDims())) if op.options else 0)
    if op.op == "CONCATENATION":
        y = b.node("Concat", [b.name[i] for i in op.inputs], "concat", axis=nchw_axis(op.options.Axis(), rank_in))
        return b.act(y, op.options.FusedActivationFunction(), op)
    if op.op in ("RESHAPE", "SQUEEZE", "EXPAND_DIMS"):
        out = b.sg.tensors[op.outputs[0]].shape
        y = b.node("Reshape", [_to_nhwc(b, op.inputs[0]), b.const(np.array(out, np.int64), "shape")], "reshape")
        return _from_nhwc(b, y, len(out))
    if op.op in ("PAD", "PADV2"):
        p = np.asarray(b.sg.tensors[op.inputs[1]].data, np.int64)
        order = [0, 3, 1, 2] if rank_in == 4 else list(range(rank_in))
        pads = [int(p[a, 0]) for a in order] + [int(p[a, 1]) for a in order]
        return b.node("Pad", [b.name[op.inputs[0]], b.const(np.array(pads, np.int64), "pads")], "pad")
    if op.op == "LOGISTIC":
        return b.node("Sigmoid", [b.name[op.inputs[0]]], "sigmoid")
    if op.op == "SOFTMAX":
        return b.node("Softmax", [b.name[op.inputs[0]]], "softmax", axis=nchw_axis(-1, rank_in))
    if op.op in ("QUANTIZE", "DEQUANTIZE"):
        return b.name[op.inputs[0]]
    raise ModelError(f"{op.where()}", op.op, "has no float form for co-design yet")


def float_onnx(model: TFLiteFile) -> onnx.ModelProto:
    """The float ONNX model of a TFLite model (see the module docstring)."""
    sg = model.main
    b = _Builder(sg)
    inputs, outputs = [], []
    for idx in sg.inputs:
        t = sg.tensors[idx]
        shape = [t.shape[0], t.shape[3], t.shape[1], t.shape[2]] if len(t.shape) == 4 else list(t.shape)
        inputs.append(helper.make_tensor_value_info(t.name, TensorProto.FLOAT, shape))
        b.name[idx] = t.name
    for op in sg.ops:
        if op.op in ("CALL_ONCE", "VAR_HANDLE", "READ_VARIABLE", "ASSIGN_VARIABLE"):
            raise ModelError(op.where(), op.op, "a streaming (stateful) model: co-design takes models without state")
        if len(op.outputs) != 1:
            raise ModelError(op.where(), op.op, "has several outputs; no float form for co-design yet")
        b.name[op.outputs[0]] = _op(b, op)
    for idx in sg.outputs:
        t = sg.tensors[idx]
        final = b.node("Identity", [b.name[idx]], "out")
        b.nodes[-1].output[0] = t.name
        del final
        shape = [t.shape[0], t.shape[3], t.shape[1], t.shape[2]] if len(t.shape) == 4 else list(t.shape)
        outputs.append(helper.make_tensor_value_info(t.name, TensorProto.FLOAT, shape))
    graph = helper.make_graph(b.nodes, "tflite_float", inputs, outputs, b.inits)
    m = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    m.ir_version = 8
    onnx.checker.check_model(m)
    return m
