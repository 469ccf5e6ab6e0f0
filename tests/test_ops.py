"""The op set of today's mobile CNNs and detectors, each in a small float network quantized by
ONNX Runtime's quantize_static (QDQ with int8 and with uint8 activations, QOperator with uint8,
per-channel weights), run on the chip at batch 1 and 3 and compared with ONNX Runtime bit for bit; the
report says where each op ran (chip or host)."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from accelsim.compiler import compile_model
from accelsim.quant.ort_static import ort_quantize

from .ort_models import session

C = 8  # channels of the feature maps


class Net:
    """A float network being built: x (N, 3, H, W) -> conv 3x3 -> ... -> output."""

    def __init__(self, h: int = 12, w: int = 16, seed: int = 0):
        self.rng = np.random.default_rng(seed)
        self.nodes, self.inits, self.k = [], [], 0
        self.h, self.w = h, w
        self.x = self.conv("input", 3, C)

    def name(self, stem: str) -> str:
        self.k += 1
        return f"{stem}{self.k}"

    def const(self, value: np.ndarray, stem: str = "c") -> str:
        n = self.name(stem)
        self.inits.append(numpy_helper.from_array(np.asarray(value, np.float32), n))
        return n

    def op(self, op: str, inputs: list[str], **attrs) -> str:
        out = self.name(op.lower())
        self.nodes.append(helper.make_node(op, inputs, [out], name=out, **attrs))
        return out

    def conv(self, x: str, cin: int, cout: int, k: int = 3, relu: bool = True, **attrs) -> str:
        w = self.const(self.rng.normal(0, 1 / np.sqrt(cin * k * k), (cout, cin, k, k)), "w")
        b = self.const(self.rng.normal(0, 0.1, cout), "b")
        y = self.op("Conv", [x, w, b], pads=[k // 2] * 4, **attrs)
        return self.op("Relu", [y]) if relu else y

    def model(self, out: str, out_shape=None) -> onnx.ModelProto:
        g = helper.make_graph(self.nodes, "net",
                              [helper.make_tensor_value_info("input", TensorProto.FLOAT, [1, 3, self.h, self.w])],
                              [helper.make_tensor_value_info(out, TensorProto.FLOAT, out_shape)], self.inits)
        m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 14)])  # HardSwish is opset 14
        m.ir_version = 8
        return m


def _se(net: Net) -> str:
    """Squeeze-excite: GAP -> 1x1 conv -> Relu -> 1x1 conv -> HardSigmoid, times the features."""
    x = net.x
    s = net.op("GlobalAveragePool", [x])
    s = net.conv(s, C, C // 2, k=1)
    s = net.conv(s, C // 2, C, k=1, relu=False)
    s = net.op("HardSigmoid", [s], alpha=1 / 6, beta=0.5)
    return net.op("Mul", [x, s])


def _hardswish_written_out(net: Net) -> str:
    """x * relu6(x + 3) / 6 with constants, as PaddlePaddle exports it."""
    x = net.conv(net.x, C, C, relu=False)
    t = net.op("Add", [x, net.const(np.float32(3))])
    t = net.op("Clip", [t, net.const(np.float32(0)), net.const(np.float32(6))])
    t = net.op("Mul", [x, t])
    return net.op("Div", [t, net.const(np.float32(6))])


def _silu(net: Net) -> str:
    x = net.conv(net.x, C, C, relu=False)
    return net.op("Mul", [x, net.op("Sigmoid", [x])])


def _per_channel_affine(net: Net) -> str:
    x = net.op("Mul", [net.x, net.const(net.rng.uniform(0.5, 2, (1, C, 1, 1)))])
    return net.op("Add", [x, net.const(net.rng.normal(0, 0.5, (1, C, 1, 1)))])


def _channel_pad(net: Net) -> str:
    x = net.op("MaxPool", [net.x], kernel_shape=[2, 2], strides=[2, 2])
    y = net.op("Pad", [x, net.const(np.array([0, 0, 0, 0, 0, 4, 0, 0], np.int64).astype(np.float32), "p")])
    return y


def _fpn(net: Net) -> str:
    """A feature-pyramid step: stride-2 conv, nearest 2x upsample, add, concat."""
    lo = net.conv(net.x, C, C, strides=[2, 2])
    up = net.op("Resize", [lo, "", net.const(np.array([1, 1, 2, 2], np.float32), "s")], mode="nearest")
    return net.op("Concat", [net.op("Add", [net.x, up]), net.x], axis=1)


def _bilinear(net: Net) -> str:
    lo = net.conv(net.x, C, C, strides=[2, 2])
    return net.op("Resize", [lo, "", net.const(np.array([1, 1, 2, 2], np.float32), "s")], mode="linear")


def _deconv(net: Net) -> str:
    w = net.const(net.rng.normal(0, 0.3, (C, C // 2, 2, 2)), "wt")
    b = net.const(net.rng.normal(0, 0.1, C // 2), "bt")
    return net.op("ConvTranspose", [net.x, w, b], strides=[2, 2])


def _split_slice(net: Net) -> str:
    a, b = (net.name("split"), net.name("split"))
    net.nodes.append(helper.make_node("Split", [net.x], [a, b], name=a, axis=1))
    starts, ends, axes = (net.const(np.array(v, np.int64).astype(np.float32), "sl") for v in ([2], [6], [1]))
    sl = net.op("Slice", [b, starts, ends, axes])
    return net.op("Concat", [a, sl], axis=1)


def _reduce_mean_tail(net: Net) -> str:
    m = net.op("ReduceMean", [net.x], axes=[2, 3], keepdims=1)
    return net.conv(m, C, 4, k=1, relu=False)


def _activations(net: Net) -> str:
    x = net.conv(net.x, C, C, relu=False)
    x = net.op("LeakyRelu", [x], alpha=0.1)
    x = net.op("Tanh", [net.conv(x, C, C, relu=False)])
    x = net.op("HardSwish", [net.conv(x, C, C, relu=False)])
    slope = net.const(net.rng.uniform(0, 0.5, (C, 1, 1)))
    return net.op("PRelu", [net.conv(x, C, C, relu=False), slope])


def _classifier(net: Net) -> str:
    """GAP -> Flatten -> Gemm -> Softmax (ORT fuses it into QLinearSoftmax)."""
    g = net.op("Flatten", [net.op("GlobalAveragePool", [net.x])])
    w = net.const(net.rng.normal(0, 0.5, (5, C)))
    return net.op("Softmax", [net.op("Gemm", [g, w, net.const(np.zeros(5))], transB=1)], axis=-1)


def _float_gap_after_hardswish(net: Net) -> str:
    """GAP of x/6 (QOperator keeps Div, hence the GAP, in float: a host step)."""
    x = _hardswish_written_out(net)
    return net.conv(net.op("GlobalAveragePool", [x]), C, C, k=1)


NETS = {"se": _se, "hardswish": _hardswish_written_out, "silu": _silu, "affine": _per_channel_affine,
        "channel_pad": _channel_pad, "fpn": _fpn, "bilinear": _bilinear, "deconv": _deconv, "split_slice": _split_slice,
        "reduce_mean": _reduce_mean_tail, "activations": _activations, "classifier": _classifier,
        "float_gap": _float_gap_after_hardswish}


def _int_consts(m: onnx.ModelProto) -> onnx.ModelProto:
    """Pads / starts / ends / axes initializers back to int64 (built as float above)."""
    ints = {n.input[i] for n in m.graph.node for i in range(1, len(n.input))
            if n.op_type in ("Pad", "Slice") and n.input[i]}
    for k, t in enumerate(m.graph.initializer):
        if t.name in ints:
            m.graph.initializer[k].CopyFrom(numpy_helper.from_array(numpy_helper.to_array(t).astype(np.int64), t.name))
    return m


def build(name: str) -> onnx.ModelProto:
    net = Net()
    out = NETS[name](net)
    return _int_consts(net.model(out))


def _calib(n: int = 16) -> np.ndarray:
    return np.random.default_rng(1).normal(0, 1, (n, 3, 12, 16)).astype(np.float32)


@pytest.fixture(scope="module")
def quantized_nets():
    cache = {}

    def get(name: str, fmt: str) -> onnx.ModelProto:
        if (name, fmt) not in cache:
            kind, _, act = fmt.partition("-")
            act = act or ("int8" if kind == "QDQ" else "uint8")
            cache[name, fmt] = ort_quantize(build(name), _calib(), fmt=kind, activation=act)
        return cache[name, fmt]

    return get


def _ort(q: onnx.ModelProto, x: np.ndarray) -> list[np.ndarray]:
    sess = session(q)
    parts = [sess.run(None, {"input": x[i:i + 1]}) for i in range(len(x))]
    return [np.concatenate(p) for p in zip(*parts)]


#: QDQ with int8 activations, QOperator with uint8 (ORT's defaults for each), and QDQ with uint8
FORMATS = ["QDQ", "QOperator", "QDQ-uint8"]


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("name", sorted(NETS))
def test_op_equals_onnxruntime_at_batch_1_and_3(quantized_nets, name, fmt):
    q = quantized_nets(name, fmt)
    compiled = compile_model(q)
    x = np.random.default_rng(7).normal(0, 1.2, (3, 3, 12, 16)).astype(np.float32)
    for xb in (x[:1], x):
        out, report = compiled.run({"input": xb})
        for got, want in zip(out.values(), _ort(q, xb)):
            np.testing.assert_array_equal(got, want)
    assert report.images == 3


def _where(q: onnx.ModelProto) -> dict[str, set]:
    return {r.op: r.where for r in compile_model(q).layers}


def test_report_says_where_each_op_ran(quantized_nets):
    assert _where(quantized_nets("se", "QDQ"))["Mul"] == "chip"
    assert _where(quantized_nets("float_gap", "QOperator"))["Div+GlobalAveragePool"] == "host"
    assert _where(quantized_nets("classifier", "QDQ"))["QLinearSoftmax"] == "host"
    assert _where(quantized_nets("fpn", "QDQ"))["Resize"] == "chip"
