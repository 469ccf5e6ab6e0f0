"""A zoo of float ONNX test models with random (seeded) weights, built by name.

The models are the inputs of the compiler tests: they are quantized with
``onnxruntime.quantization.quantize_static`` and then run on the simulated chip, so they are
meant to look like real exported networks (torchvision-style topology, node and initializer
names such as ``layer2.0.conv1`` / ``layer2.0.conv1.weight``, explicit BatchNormalization nodes,
ReLU6 as ``Clip``), not like toy single-node graphs.

Only the ``onnx`` package is used (``onnx.helper`` / ``onnx.numpy_helper``).

>>> from accelsim import zoo
>>> model = zoo.build("resnet18", input_size=64, seed=1)
>>> zoo.input_shape(model)
(1, 3, 64, 64)

Every model has one float32 NCHW input called ``"input"`` and one output called ``"output"``.
Weights use He-normal init (std = sqrt(2 / fan_in)) so that activations stay in a sane range
through deep networks; biases are small; BatchNormalization parameters are
gamma ~ U(0.5, 1.5), beta ~ N(0, 0.1), mean ~ N(0, 0.1), var ~ U(0.5, 1.5).
The same (name, input_size, seed, options) always gives the same model, byte for byte.
``build(..., fold_bn=True)`` folds every BatchNormalization into its conv, as an eval-mode
``torch.onnx.export`` (or onnxruntime's ``quant_pre_process``) would.

Note for quantizing: onnxruntime 1.31's ``quantize_static`` mutates a ``ModelProto`` passed to it
(it saves it with external data into a temporary directory it then deletes), so pass a file path
or a copy, not a model you will use again.
"""

from __future__ import annotations

import inspect
import math
from typing import Callable

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

__all__ = ["NAMES", "DEFAULT_OPSET", "IR_VERSION", "build", "default_input_size", "describe",
           "input_shape", "output_shape", "parameter_count"]

DEFAULT_OPSET = 17
MIN_OPSET = 11  # Clip takes min/max as inputs from opset 11 on
IR_VERSION = 10  # onnx 1.23 writes IR 14 by default, which onnxruntime 1.31 refuses

_BN_EPS = 1e-5


class _Graph:
    """Accumulates nodes and initializers; every helper returns the name of its output tensor.

    A node's output tensor has the node's name, except the last node of the model, whose output
    the caller names ``"output"``.
    """

    def __init__(self, seed: int, fold_bn: bool = False):
        self.rng = np.random.default_rng(seed)
        self.fold_bn = fold_bn
        self.nodes: list[onnx.NodeProto] = []
        self.inits: list[onnx.TensorProto] = []
        self._names: set[str] = set()
        self._relu6_bounds: tuple[str, str] | None = None

    # -- bookkeeping -------------------------------------------------------------------------
    def _unique(self, name: str) -> str:
        if name in self._names:
            raise ValueError(f"duplicate node name {name!r}")  # a bug in a builder below
        self._names.add(name)
        return name

    def init(self, name: str, array: np.ndarray) -> str:
        self._unique(name)
        self.inits.append(numpy_helper.from_array(np.asarray(array, order="C"), name))
        return name

    def node(self, op: str, inputs: list[str], name: str, out: str | None = None,
             **attrs) -> str:
        self._unique(name)
        out = out or name
        self.nodes.append(helper.make_node(op, inputs, [out], name=name, **attrs))
        return out

    # -- random parameters -------------------------------------------------------------------
    def he_normal(self, shape: tuple[int, ...], fan_in: int) -> np.ndarray:
        std = math.sqrt(2.0 / fan_in)
        return (self.rng.standard_normal(shape) * std).astype(np.float32)

    def small_bias(self, n: int) -> np.ndarray:
        return (self.rng.standard_normal(n) * 0.01).astype(np.float32)

    # -- layers ------------------------------------------------------------------------------
    def conv(self, x: str, cin: int, cout: int, k: int | tuple[int, int], name: str, *,
             stride: int = 1, pad: int | list[int] | None = None, dilation: int = 1,
             group: int = 1, bias: bool = False, out: str | None = None,
             weight: np.ndarray | None = None, bias_value: np.ndarray | None = None) -> str:
        kh, kw = (k, k) if isinstance(k, int) else k
        if cin % group or cout % group:
            raise ValueError(f"{name}: channels {cin}->{cout} not divisible by group {group}")
        if pad is None:  # "same"-style symmetric padding for odd kernels
            pad = [dilation * (kh - 1) // 2, dilation * (kw - 1) // 2] * 2
        elif isinstance(pad, int):
            pad = [pad] * 4
        if weight is None:
            weight = self.conv_weight(cin, cout, (kh, kw), group)
        inputs = [x, self.init(f"{name}.weight", weight)]
        if bias_value is None and bias:
            bias_value = self.small_bias(cout)
        if bias_value is not None:
            inputs.append(self.init(f"{name}.bias", bias_value))
        return self.node("Conv", inputs, name, out, kernel_shape=[kh, kw], strides=[stride, stride],
                         pads=list(pad), dilations=[dilation, dilation], group=group)

    def conv_weight(self, cin: int, cout: int, k: tuple[int, int], group: int) -> np.ndarray:
        fan_in = (cin // group) * k[0] * k[1]
        return self.he_normal((cout, cin // group, *k), fan_in)

    def bn_params(self, c: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        r = self.rng
        gamma = r.uniform(0.5, 1.5, c).astype(np.float32)
        beta = (r.standard_normal(c) * 0.1).astype(np.float32)
        mean = (r.standard_normal(c) * 0.1).astype(np.float32)
        var = r.uniform(0.5, 1.5, c).astype(np.float32)
        return gamma, beta, mean, var

    def bn(self, x: str, c: int, name: str, out: str | None = None) -> str:
        gamma, beta, mean, var = self.bn_params(c)
        inputs = [x, self.init(f"{name}.weight", gamma), self.init(f"{name}.bias", beta),
                  self.init(f"{name}.running_mean", mean), self.init(f"{name}.running_var", var)]
        return self.node("BatchNormalization", inputs, name, out, epsilon=_BN_EPS, momentum=0.9)

    def relu(self, x: str, name: str, out: str | None = None) -> str:
        return self.node("Relu", [x], name, out)

    def relu6(self, x: str, name: str, out: str | None = None) -> str:
        if self._relu6_bounds is None:  # one shared pair of scalars, as torch.onnx exports
            self._relu6_bounds = (self.init("relu6.min", np.array(0.0, np.float32)),
                                  self.init("relu6.max", np.array(6.0, np.float32)))
        return self.node("Clip", [x, *self._relu6_bounds], name, out)

    def maxpool(self, x: str, name: str, k: int, stride: int, pad: int = 0,
                out: str | None = None) -> str:
        return self.node("MaxPool", [x], name, out, kernel_shape=[k, k], strides=[stride, stride],
                         pads=[pad] * 4)

    def avgpool(self, x: str, name: str, k: int, stride: int, pads: list[int],
                count_include_pad: int = 0, out: str | None = None) -> str:
        return self.node("AveragePool", [x], name, out, kernel_shape=[k, k], strides=[stride, stride],
                         pads=pads, count_include_pad=count_include_pad)

    def gap(self, x: str, name: str) -> str:
        return self.node("GlobalAveragePool", [x], name)

    def flatten(self, x: str, name: str) -> str:
        return self.node("Flatten", [x], name, axis=1)

    def gemm(self, x: str, fin: int, fout: int, name: str, out: str | None = None) -> str:
        # torch.nn.Linear layout: weight [out, in] with transB=1
        w = self.init(f"{name}.weight", self.he_normal((fout, fin), fin))
        b = self.init(f"{name}.bias", self.small_bias(fout))
        return self.node("Gemm", [x, w, b], name, out, alpha=1.0, beta=1.0, transB=1)

    def add(self, a: str, b: str, name: str) -> str:
        return self.node("Add", [a, b], name)

    def concat(self, xs: list[str], name: str) -> str:
        return self.node("Concat", xs, name, axis=1)

    def conv_bn(self, x: str, cin: int, cout: int, k: int, conv_name: str, bn_name: str, *,
                act: str | None = None, act_name: str | None = None, out: str | None = None,
                **conv_kw) -> str:
        """Conv (no bias) + BatchNormalization (+ "relu" / "relu6").

        With ``fold_bn`` the BatchNormalization is folded into the conv (weight and a bias), as
        ``torch.onnx.export`` does for an eval-mode model; the random draws are the same, so the
        folded model computes the same function as the unfolded one.
        """
        out_bn = None if act else out
        if self.fold_bn:
            kk = (k, k) if isinstance(k, int) else k
            w = self.conv_weight(cin, cout, kk, conv_kw.get("group", 1))
            gamma, beta, mean, var = self.bn_params(cout)
            scale = gamma.astype(np.float64) / np.sqrt(var.astype(np.float64) + _BN_EPS)
            w = (w * scale[:, None, None, None]).astype(np.float32)
            b = (beta - mean * scale).astype(np.float32)
            y = self.conv(x, cin, cout, k, conv_name, weight=w, bias_value=b, out=out_bn, **conv_kw)
        else:
            y = self.conv(x, cin, cout, k, conv_name, **conv_kw)
            y = self.bn(y, cout, bn_name, out=out_bn)
        if act == "relu":
            y = self.relu(y, act_name or f"{bn_name}.relu", out)
        elif act == "relu6":
            y = self.relu6(y, act_name or f"{bn_name}.relu6", out)
        elif act is not None:
            raise ValueError(f"unknown activation {act!r}")
        return y


# ------------------------------------------------------------------------------------------
# model builders: (graph, input_size) -> (input shape, output tensor, output shape, model doc)
# ------------------------------------------------------------------------------------------

def _mlp(g: _Graph, input_size: int, *, in_channels: int = 1,
         hidden: tuple[int, ...] = (48, 32), num_classes: int = 10):
    x = g.flatten("input", "flatten")
    fin = in_channels * input_size * input_size
    for i, h in enumerate(hidden):
        x = g.relu(g.gemm(x, fin, h, f"fc{i + 1}"), f"relu{i + 1}")
        fin = h
    g.gemm(x, fin, num_classes, f"fc{len(hidden) + 1}", out="output")
    return [1, in_channels, input_size, input_size], [1, num_classes]


def _small_cnn(g: _Graph, input_size: int, *, in_channels: int = 1, channels: tuple[int, int] = (8, 16),
               num_classes: int = 10):
    c1, c2 = channels
    x = g.relu(g.conv("input", in_channels, c1, 3, "conv1", bias=True), "relu1")
    x = g.maxpool(x, "pool1", 2, 2)
    x = g.relu(g.conv(x, c1, c2, 3, "conv2", bias=True), "relu2")
    x = g.flatten(g.gap(x, "avgpool"), "flatten")
    g.gemm(x, c2, num_classes, "fc", out="output")
    return [1, in_channels, input_size, input_size], [1, num_classes]


def _resnet18(g: _Graph, input_size: int, *, num_classes: int = 1000, in_channels: int = 3):
    x = g.conv_bn("input", in_channels, 64, 7, "conv1", "bn1", act="relu", act_name="relu",
                  stride=2, pad=3)
    x = g.maxpool(x, "maxpool", 3, 2, pad=1)
    cin = 64
    for stage, cout in enumerate((64, 128, 256, 512), start=1):
        for block in range(2):
            p = f"layer{stage}.{block}"
            stride = 2 if (block == 0 and stage > 1) else 1
            y = g.conv_bn(x, cin, cout, 3, f"{p}.conv1", f"{p}.bn1", act="relu",
                          act_name=f"{p}.relu1", stride=stride)
            y = g.conv_bn(y, cout, cout, 3, f"{p}.conv2", f"{p}.bn2")
            if stride != 1 or cin != cout:
                shortcut = g.conv_bn(x, cin, cout, 1, f"{p}.downsample.0", f"{p}.downsample.1",
                                     stride=stride, pad=0)
            else:
                shortcut = x
            x = g.relu(g.add(y, shortcut, f"{p}.add"), f"{p}.relu2")
            cin = cout
    x = g.flatten(g.gap(x, "avgpool"), "flatten")
    g.gemm(x, 512, num_classes, "fc", out="output")
    return [1, in_channels, input_size, input_size], [1, num_classes]


def _make_divisible(v: float, divisor: int = 8) -> int:
    """torchvision's channel rounding for MobileNet widths."""
    new_v = max(divisor, int(v + divisor / 2) // divisor * divisor)
    if new_v < 0.9 * v:
        new_v += divisor
    return new_v


_MOBILENETV2_SETTINGS = (  # t (expansion), c (out channels), n (repeats), s (first stride)
    (1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2),
    (6, 96, 3, 1), (6, 160, 3, 2), (6, 320, 1, 1),
)


def _mobilenetv2(g: _Graph, input_size: int, *, width: float = 1.0, num_classes: int = 1000,
                 in_channels: int = 3):
    if not width > 0:
        raise ValueError(f"mobilenetv2: width must be > 0, got {width}")
    cin = _make_divisible(32 * width)
    last = _make_divisible(1280 * max(1.0, width))
    # torchvision numbering: features.0 is the stem, features.1..17 the blocks, features.18 the head
    x = g.conv_bn("input", in_channels, cin, 3, "features.0.0", "features.0.1", act="relu6",
                  act_name="features.0.2", stride=2)
    idx = 1
    for t, c, n, s in _MOBILENETV2_SETTINGS:
        cout = _make_divisible(c * width)
        for i in range(n):
            stride = s if i == 0 else 1
            p = f"features.{idx}.conv"
            hidden = cin * t
            y, j = x, 0
            if t != 1:
                y = g.conv_bn(y, cin, hidden, 1, f"{p}.{j}.0", f"{p}.{j}.1", act="relu6",
                              act_name=f"{p}.{j}.2", pad=0)
                j += 1
            y = g.conv_bn(y, hidden, hidden, 3, f"{p}.{j}.0", f"{p}.{j}.1", act="relu6",
                          act_name=f"{p}.{j}.2", stride=stride, group=hidden)
            y = g.conv_bn(y, hidden, cout, 1, f"{p}.{j + 1}", f"{p}.{j + 2}", pad=0)
            if stride == 1 and cin == cout:
                y = g.add(x, y, f"features.{idx}.add")
            x, cin = y, cout
            idx += 1
    x = g.conv_bn(x, cin, last, 1, f"features.{idx}.0", f"features.{idx}.1", act="relu6",
                  act_name=f"features.{idx}.2", pad=0)
    x = g.flatten(g.gap(x, "avgpool"), "flatten")
    g.gemm(x, last, num_classes, "classifier.1", out="output")
    return [1, in_channels, input_size, input_size], [1, num_classes]


def _residual_odd(g: _Graph, input_size: int, *, channels: tuple[int, int, int] = (3, 17, 33)):
    c0, c1, c2 = channels
    y = g.conv_bn("input", c0, c1, 3, "conv1", "bn1", act="relu", act_name="relu1")
    y = g.conv_bn(y, c1, c2, 3, "conv2", "bn2")
    s = g.conv_bn("input", c0, c2, 1, "shortcut.conv", "shortcut.bn", pad=0)
    g.relu(g.add(y, s, "add"), "relu2", out="output")
    return [1, c0, input_size, input_size], [1, c2, input_size, input_size]


def _dw_separable(g: _Graph, input_size: int, *, in_channels: int = 3, stem_channels: int = 16,
                  blocks: tuple[tuple[int, int], ...] = ((32, 1), (64, 2), (64, 1))):
    """Stem conv, then (depthwise 3x3 stride s + BN + ReLU, pointwise 1x1 + BN + ReLU) blocks."""
    x = g.conv_bn("input", in_channels, stem_channels, 3, "stem.conv", "stem.bn", act="relu",
                  act_name="stem.relu")
    cin, size = stem_channels, input_size
    for i, (cout, stride) in enumerate(blocks):
        p = f"block{i}"
        last = i == len(blocks) - 1
        x = g.conv_bn(x, cin, cin, 3, f"{p}.dw.conv", f"{p}.dw.bn", act="relu",
                      act_name=f"{p}.dw.relu", stride=stride, group=cin)
        x = g.conv_bn(x, cin, cout, 1, f"{p}.pw.conv", f"{p}.pw.bn", act="relu",
                      act_name=f"{p}.pw.relu", pad=0, out="output" if last else None)
        cin, size = cout, (size - 1) // stride + 1
    return [1, in_channels, input_size, input_size], [1, cin, size, size]


def _stride2_7x7(g: _Graph, input_size: int, *, in_channels: int = 3, channels: tuple[int, int] = (16, 32)):
    c1, c2 = channels
    x = g.relu(g.conv("input", in_channels, c1, 7, "conv1", stride=2, pad=3, bias=True), "relu1")
    g.relu(g.conv(x, c1, c2, 3, "conv2", stride=2, pad=1, bias=True), "relu2", out="output")
    s1 = (input_size + 6 - 7) // 2 + 1
    s2 = (s1 + 2 - 3) // 2 + 1
    return [1, in_channels, input_size, input_size], [1, c2, s2, s2]


def _asym_pad(g: _Graph, input_size: int, *, in_channels: int = 3, channels: tuple[int, int] = (8, 16)):
    """Asymmetric pads (ONNX order: top, left, bottom, right), a dilated conv, AveragePool with
    count_include_pad=0 and padding."""
    c1, c2 = channels
    x = g.relu(g.conv("input", in_channels, c1, 3, "conv_asym", pad=[0, 1, 2, 0], bias=True),
               "relu1")
    h, w = input_size + 2 - 2, input_size + 1 - 2
    x = g.relu(g.conv(x, c1, c2, 3, "conv_dilated", dilation=2, pad=2, bias=True), "relu2")
    g.avgpool(x, "avgpool", 3, 2, pads=[1, 1, 1, 1], count_include_pad=0, out="output")
    return ([1, in_channels, input_size, input_size],
            [1, c2, (h + 2 - 3) // 2 + 1, (w + 2 - 3) // 2 + 1])


def _concat_branches(g: _Graph, input_size: int, *, in_channels: int = 16,
                     branch_channels: tuple[int, int, int] = (8, 12, 4), out_channels: int = 16):
    b1, b2, b3 = branch_channels
    x1 = g.relu(g.conv("input", in_channels, b1, 1, "branch1x1.conv", pad=0, bias=True),
                "branch1x1.relu")
    x2 = g.relu(g.conv("input", in_channels, b2, 3, "branch3x3.conv", bias=True), "branch3x3.relu")
    x3 = g.maxpool("input", "branch_pool.pool", 3, 1, pad=1)
    x3 = g.relu(g.conv(x3, in_channels, b3, 1, "branch_pool.conv", pad=0, bias=True),
                "branch_pool.relu")
    x = g.concat([x1, x2, x3], "concat")
    g.relu(g.conv(x, b1 + b2 + b3, out_channels, 1, "project.conv", pad=0, bias=True),
           "project.relu", out="output")
    return [1, in_channels, input_size, input_size], [1, out_channels, input_size, input_size]


def _grouped_conv(g: _Graph, input_size: int, *, in_channels: int = 16, out_channels: int = 32,
                  group: int = 4):
    if group in (1, in_channels) and in_channels == out_channels:
        raise ValueError("grouped_conv: group must be neither 1 nor depthwise")
    x = g.conv("input", in_channels, out_channels, 3, "conv", group=group, bias=True)
    g.relu(x, "relu", out="output")
    return [1, in_channels, input_size, input_size], [1, out_channels, input_size, input_size]


_BUILDERS: dict[str, tuple[Callable, int, str]] = {
    # name: (builder, default input_size, description)
    "mlp": (_mlp, 8, "Flatten -> Gemm -> Relu -> Gemm -> Relu -> Gemm (64 -> 48 -> 32 -> 10)"),
    "small_cnn": (_small_cnn, 8, "digits-like CNN: conv3x3 -> relu -> maxpool -> conv3x3 -> relu "
                                 "-> GAP -> Gemm"),
    "resnet18": (_resnet18, 224, "torchvision ResNet-18 (BasicBlock x [2, 2, 2, 2])"),
    "mobilenetv2": (_mobilenetv2, 224, "torchvision MobileNetV2 (ReLU6 as Clip)"),
    "residual_odd": (_residual_odd, 16, "residual block with odd channels 3 -> 17 -> 33 and a "
                                        "1x1 projection shortcut"),
    "dw_separable": (_dw_separable, 16, "depthwise-separable blocks, one with stride-2 depthwise"),
    "stride2_7x7": (_stride2_7x7, 32, "7x7/2 pad 3 conv -> relu -> 3x3/2 conv -> relu"),
    "asym_pad": (_asym_pad, 16, "asymmetric-pad conv, dilated conv, AveragePool "
                                "count_include_pad=0"),
    "concat_branches": (_concat_branches, 16, "inception-like branches concatenated on channels"),
    "grouped_conv": (_grouped_conv, 16, "grouped conv (group=4) + relu"),
}

NAMES: tuple[str, ...] = tuple(_BUILDERS)


def describe(name: str) -> str:
    """One-line description of a zoo model."""
    return _lookup(name)[2]


def default_input_size(name: str) -> int:
    return _lookup(name)[1]


def _lookup(name: str):
    try:
        return _BUILDERS[name]
    except (KeyError, TypeError):
        raise ValueError(f"unknown zoo model {name!r}; known models: {', '.join(NAMES)}") from None


def build(name: str, *, input_size: int | None = None, seed: int = 0,
          opset: int = DEFAULT_OPSET, fold_bn: bool = False, **options) -> onnx.ModelProto:
    """Build the float32 ONNX model ``name`` with random weights drawn from ``seed``.

    ``input_size`` is the spatial size H = W of the input (the default depends on the model);
    ``options`` are model-specific (e.g. ``width`` for mobilenetv2, ``num_classes``, ``channels``).
    ``fold_bn=True`` folds every BatchNormalization into its conv (conv with bias, no BN node), as
    an eval-mode ``torch.onnx.export`` would; the folded model computes the same function.
    The model is checked with ``onnx.checker`` and carries inferred intermediate shapes.
    """
    builder, default_size, doc = _lookup(name)
    size = default_size if input_size is None else input_size
    if isinstance(size, bool) or not isinstance(size, (int, np.integer)) or size < 1:
        raise ValueError(f"{name}: input_size must be a positive int, got {input_size!r}")
    if not MIN_OPSET <= opset <= onnx.defs.onnx_opset_version():
        raise ValueError(f"opset must be in [{MIN_OPSET}, {onnx.defs.onnx_opset_version()}], "
                         f"got {opset}")
    known = [p for p in inspect.signature(builder).parameters if p not in ("g", "input_size")]
    unknown = sorted(set(options) - set(known))
    if unknown:
        raise ValueError(f"{name}: unknown options {unknown}; known options: {known}")
    g = _Graph(seed, fold_bn=bool(fold_bn))
    in_shape, out_shape = builder(g, int(size), **options)
    if any(d < 1 for d in out_shape):
        raise ValueError(f"{name}: input_size {size} is too small (output shape {out_shape})")
    graph = helper.make_graph(
        g.nodes, name,
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, in_shape)],
        [helper.make_tensor_value_info("output", TensorProto.FLOAT, out_shape)],
        g.inits)
    graph.doc_string = doc
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)],
                              producer_name="accelsim.zoo", producer_version="1")
    model.ir_version = IR_VERSION
    model.doc_string = (f"accelsim.zoo.build({name!r}, input_size={size}, seed={seed}, "
                        f"opset={opset}, fold_bn={bool(fold_bn)}, options={options!r})")
    model = onnx.shape_inference.infer_shapes(model, check_type=True, strict_mode=True)
    onnx.checker.check_model(model, full_check=True)
    return model


def input_shape(model: onnx.ModelProto) -> tuple[int, ...]:
    """Static shape of the model's first graph input."""
    dims = model.graph.input[0].type.tensor_type.shape.dim
    return tuple(d.dim_value for d in dims)


def output_shape(model: onnx.ModelProto) -> tuple[int, ...]:
    dims = model.graph.output[0].type.tensor_type.shape.dim
    return tuple(d.dim_value for d in dims)


def parameter_count(model: onnx.ModelProto, *, include_buffers: bool = False) -> int:
    """Number of trainable parameters, counted the way torchvision counts them.

    Conv / Gemm weights and biases and BatchNormalization scale / bias are parameters; BN running
    mean / var are buffers (counted only with ``include_buffers``); other initializers (e.g. the
    Clip bounds) are not parameters.
    """
    sizes = {t.name: int(np.prod(t.dims, dtype=np.int64)) for t in model.graph.initializer}
    total = 0
    for node in model.graph.node:
        if node.op_type in ("Conv", "Gemm"):
            names = node.input[1:]
        elif node.op_type == "BatchNormalization":
            names = node.input[1:5] if include_buffers else node.input[1:3]
        else:
            continue
        total += sum(sizes.get(n, 0) for n in names)
    return total
