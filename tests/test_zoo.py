"""accelsim.zoo: the float ONNX test models are valid, alive, faithful to their published
topologies, and survive onnxruntime's static quantization in both QDQ and QOperator formats."""

from __future__ import annotations

import logging
from collections import Counter

import numpy as np
import onnx
import pytest
from onnx import numpy_helper

from accelsim import zoo
from accelsim.compiler.onnx.runtime import session

ort = pytest.importorskip("onnxruntime")
quantization = pytest.importorskip("onnxruntime.quantization")

# resnet18 / mobilenetv2 are run at a small input size to keep the file fast
SMALL_SIZE = {"resnet18": 32, "mobilenetv2": 32}
BN_MODELS = ("resnet18", "mobilenetv2", "residual_odd", "dw_separable")


def _build(name: str, **kw) -> onnx.ModelProto:
    kw.setdefault("input_size", SMALL_SIZE.get(name))
    return zoo.build(name, **kw)


def _session(model_or_path):
    return session(model_or_path if isinstance(model_or_path, onnx.ModelProto) else str(model_or_path))


def _inputs(shape, n: int, seed: int) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [rng.standard_normal(shape).astype(np.float32) for _ in range(n)]


def _ops(model: onnx.ModelProto) -> Counter:
    return Counter(n.op_type for n in model.graph.node)


def _attrs(node: onnx.NodeProto) -> dict:
    return {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}


def _init(model: onnx.ModelProto, name: str) -> np.ndarray:
    for t in model.graph.initializer:
        if t.name == name:
            return numpy_helper.to_array(t)
    raise KeyError(name)


# --- API ---------------------------------------------------------------------------------------

def test_names():
    assert zoo.NAMES == ("mlp", "small_cnn", "resnet18", "mobilenetv2", "residual_odd",
                         "dw_separable", "stride2_7x7", "asym_pad", "concat_branches",
                         "grouped_conv")


def test_unknown_name_raises_listing_known_models():
    with pytest.raises(ValueError, match="no_such_net") as exc:
        zoo.build("no_such_net")
    for name in zoo.NAMES:
        assert name in str(exc.value)


def test_bad_arguments_raise():
    with pytest.raises(ValueError, match="wdith"):
        zoo.build("mobilenetv2", input_size=32, wdith=0.5)
    with pytest.raises(ValueError, match="input_size"):
        zoo.build("mlp", input_size=0)
    with pytest.raises(ValueError, match="too small"):
        zoo.build("asym_pad", input_size=1)
    with pytest.raises(ValueError, match="opset"):
        zoo.build("mlp", opset=9)


@pytest.mark.parametrize("opset", [13, 21])
def test_other_opsets(opset):
    model = zoo.build("mobilenetv2", input_size=32, opset=opset)
    assert model.opset_import[0].version == opset
    y = _session(model).run(None, {"input": _inputs(zoo.input_shape(model), 1, 0)[0]})[0]
    assert y.shape == (1, 1000) and np.all(np.isfinite(y))


def test_build_is_deterministic_per_seed():
    a = zoo.build("residual_odd", seed=3).SerializeToString()
    assert zoo.build("residual_odd", seed=3).SerializeToString() == a
    assert zoo.build("residual_odd", seed=4).SerializeToString() != a


# --- every model: valid, runs, alive ---------------------------------------------------------------

@pytest.mark.parametrize("name", zoo.NAMES)
def test_model_is_valid_and_alive(name):
    model = _build(name)
    onnx.checker.check_model(model, full_check=True)
    assert model.ir_version == zoo.IR_VERSION == 10
    assert [(o.domain, o.version) for o in model.opset_import] == [("", zoo.DEFAULT_OPSET)]
    assert [i.name for i in model.graph.input] == ["input"]
    assert [o.name for o in model.graph.output] == ["output"]
    shape = zoo.input_shape(model)
    assert len(shape) == 4 and shape[0] == 1 and all(d > 0 for d in shape)
    assert model.graph.input[0].type.tensor_type.elem_type == onnx.TensorProto.FLOAT
    names = [n.name for n in model.graph.node]
    assert all(names) and len(set(names)) == len(names)
    assert all(t.data_type == onnx.TensorProto.FLOAT for t in model.graph.initializer)

    sess = _session(model)
    xs = _inputs(shape, 2, seed=11)
    ys = [sess.run(None, {"input": x})[0] for x in xs]
    for y in ys:
        assert y.dtype == np.float32
        assert y.shape == zoo.output_shape(model)
        assert np.all(np.isfinite(y))
        assert np.ptp(y) > 0  # not a constant (dead) output
        assert np.abs(y).max() < 1e3  # activations stay in a sane range
    assert not np.allclose(ys[0], ys[1])  # the output depends on the input


@pytest.mark.parametrize("name", zoo.NAMES)
def test_weight_init_statistics(name):
    model = _build(name)
    for node in model.graph.node:
        if node.op_type == "Conv":
            w = _init(model, node.input[1])
            fan_in = int(np.prod(w.shape[1:]))
        elif node.op_type == "Gemm":
            w = _init(model, node.input[1])
            fan_in = w.shape[1]
        elif node.op_type == "BatchNormalization":
            gamma, beta, mean, var = (_init(model, n) for n in node.input[1:5])
            assert gamma.min() >= 0.5 and gamma.max() <= 1.5
            assert var.min() >= 0.5 and var.max() <= 1.5
            assert np.abs(beta).max() < 1 and np.abs(mean).max() < 1
            continue
        else:
            continue
        if w.size >= 500:  # He-normal: std = sqrt(2 / fan_in)
            assert w.std() == pytest.approx(np.sqrt(2 / fan_in), rel=0.15), node.name
        if len(node.input) > 2:
            assert np.abs(_init(model, node.input[2])).max() < 0.1  # small biases


# --- published topologies ------------------------------------------------------------------

def test_resnet18_parameter_count_and_topology():
    model = zoo.build("resnet18")  # 224 x 224
    assert zoo.input_shape(model) == (1, 3, 224, 224)
    assert zoo.output_shape(model) == (1, 1000)
    # torchvision: conv weights + BN gamma/beta + fc weight/bias; BN running stats are buffers
    assert zoo.parameter_count(model) == 11_689_512
    sizes = {t.name: int(np.prod(t.dims)) for t in model.graph.initializer}
    buffers = sum(v for k, v in sizes.items() if k.endswith(("running_mean", "running_var")))
    assert sum(sizes.values()) - buffers == 11_689_512
    assert zoo.parameter_count(model, include_buffers=True) == 11_689_512 + buffers == \
        sum(sizes.values())

    assert _ops(model) == Counter(Conv=20, BatchNormalization=20, Relu=17, Add=8, MaxPool=1,
                                  GlobalAveragePool=1, Flatten=1, Gemm=1)
    nodes = {n.name: n for n in model.graph.node}
    conv1 = _attrs(nodes["conv1"])
    assert conv1["kernel_shape"] == [7, 7] and conv1["strides"] == [2, 2]
    assert conv1["pads"] == [3, 3, 3, 3]
    pool = _attrs(nodes["maxpool"])
    assert pool["kernel_shape"] == [3, 3] and pool["strides"] == [2, 2] and pool["pads"] == [1] * 4
    downsample = sorted(n for n in nodes if n.endswith("downsample.0"))
    assert downsample == ["layer2.0.downsample.0", "layer3.0.downsample.0",
                          "layer4.0.downsample.0"]
    for n in downsample:
        assert _attrs(nodes[n])["kernel_shape"] == [1, 1]
        assert _attrs(nodes[n])["strides"] == [2, 2]
    # every conv is followed by a BatchNormalization
    consumers = {i: n for n in model.graph.node for i in n.input}
    for n in model.graph.node:
        if n.op_type == "Conv":
            assert consumers[n.output[0]].op_type == "BatchNormalization"
    assert _init(model, "fc.weight").shape == (1000, 512)


def test_mobilenetv2_parameter_count_and_topology():
    model = zoo.build("mobilenetv2")  # 224 x 224
    assert zoo.input_shape(model) == (1, 3, 224, 224)
    assert zoo.parameter_count(model) == 3_504_872  # torchvision mobilenet_v2()
    assert _ops(model) == Counter(Conv=52, BatchNormalization=52, Clip=35, Add=10,
                                  GlobalAveragePool=1, Flatten=1, Gemm=1)
    convs = [n for n in model.graph.node if n.op_type == "Conv"]
    first = _attrs(convs[0])
    assert first["kernel_shape"] == [3, 3] and first["strides"] == [2, 2]
    assert _init(model, convs[0].input[1]).shape == (32, 3, 3, 3)
    assert _init(model, convs[-1].input[1]).shape == (1280, 320, 1, 1)
    depthwise = [n for n in convs if _attrs(n)["group"] > 1]
    assert len(depthwise) == 17
    for n in depthwise:
        w = _init(model, n.input[1])
        assert w.shape[1] == 1 and _attrs(n)["group"] == w.shape[0]
        assert _attrs(n)["kernel_shape"] == [3, 3]
    assert sum(_attrs(n)["strides"] == [2, 2] for n in depthwise) == 4
    for n in model.graph.node:
        if n.op_type == "Clip":  # ReLU6 with min / max as inputs (opset >= 11)
            assert len(n.input) == 3 and not _attrs(n)
            assert float(_init(model, n.input[1])) == 0.0
            assert float(_init(model, n.input[2])) == 6.0
    assert _init(model, "classifier.1.weight").shape == (1000, 1280)


def test_mobilenetv2_width_option():
    half = zoo.build("mobilenetv2", input_size=32, width=0.5)
    convs = [n for n in half.graph.node if n.op_type == "Conv"]
    assert _init(half, convs[0].input[1]).shape[0] == 16
    assert _init(half, convs[-1].input[1]).shape[0] == 1280  # last channel stays >= 1280
    assert zoo.parameter_count(half) == 1_968_680  # torchvision mobilenet_v2(width_mult=0.5)
    y = _session(half).run(None, {"input": _inputs(zoo.input_shape(half), 1, 0)[0]})[0]
    assert y.shape == (1, 1000) and np.all(np.isfinite(y))


def test_small_model_details():
    mlp = zoo.build("mlp")
    assert zoo.input_shape(mlp) == (1, 1, 8, 8)
    assert [_init(mlp, f"fc{i}.weight").shape for i in (1, 2, 3)] == [(48, 64), (32, 48), (10, 32)]
    assert [n.op_type for n in mlp.graph.node] == ["Flatten", "Gemm", "Relu", "Gemm", "Relu",
                                                   "Gemm"]

    cnn = zoo.build("small_cnn")
    assert zoo.input_shape(cnn) == (1, 1, 8, 8) and zoo.output_shape(cnn) == (1, 10)
    assert [n.op_type for n in cnn.graph.node] == ["Conv", "Relu", "MaxPool", "Conv", "Relu",
                                                   "GlobalAveragePool", "Flatten", "Gemm"]
    assert zoo.input_shape(zoo.build("small_cnn", input_size=28, in_channels=3)) == (1, 3, 28, 28)

    odd = zoo.build("residual_odd")
    assert [_init(odd, n).shape[0] for n in ("conv1.weight", "conv2.weight",
                                              "shortcut.conv.weight")] == [17, 33, 33]
    assert _init(odd, "shortcut.conv.weight").shape == (33, 3, 1, 1)
    assert _ops(odd)["Add"] == 1

    dws = zoo.build("dw_separable")
    dw = [n for n in dws.graph.node if n.op_type == "Conv" and _attrs(n)["group"] > 1]
    assert len(dw) >= 3 and any(_attrs(n)["strides"] == [2, 2] for n in dw)
    for n in dw:
        assert _attrs(n)["group"] == _init(dws, n.input[1]).shape[0]

    s2 = zoo.build("stride2_7x7")
    c1, c2 = (n for n in s2.graph.node if n.op_type == "Conv")
    assert _attrs(c1)["kernel_shape"] == [7, 7] and _attrs(c1)["strides"] == [2, 2]
    assert _attrs(c1)["pads"] == [3] * 4
    assert _attrs(c2)["kernel_shape"] == [3, 3] and _attrs(c2)["strides"] == [2, 2]

    asym = {n.name: _attrs(n) for n in zoo.build("asym_pad").graph.node}
    assert asym["conv_asym"]["pads"] == [0, 1, 2, 0]
    assert asym["conv_dilated"]["dilations"] == [2, 2]
    assert asym["avgpool"]["count_include_pad"] == 0 and asym["avgpool"]["strides"] == [2, 2]
    assert asym["avgpool"]["kernel_shape"] == [3, 3] and any(asym["avgpool"]["pads"])

    cat = zoo.build("concat_branches")
    concat = next(n for n in cat.graph.node if n.op_type == "Concat")
    assert len(concat.input) == 3 and _attrs(concat)["axis"] == 1
    pool = next(n for n in cat.graph.node if n.op_type == "MaxPool")
    assert _attrs(pool)["strides"] == [1, 1] and _attrs(pool)["pads"] == [1] * 4

    grouped = next(n for n in zoo.build("grouped_conv").graph.node if n.op_type == "Conv")
    assert _attrs(grouped)["group"] == 4


@pytest.mark.parametrize("name", BN_MODELS)
def test_fold_bn_computes_the_same_function(name):
    plain, folded = _build(name, seed=5), _build(name, seed=5, fold_bn=True)
    assert _ops(plain)["BatchNormalization"] > 0
    assert _ops(folded)["BatchNormalization"] == 0
    assert _ops(folded)["Conv"] == _ops(plain)["Conv"]
    x = _inputs(zoo.input_shape(plain), 1, 7)[0]
    y0 = _session(plain).run(None, {"input": x})[0]
    y1 = _session(folded).run(None, {"input": x})[0]
    np.testing.assert_allclose(y1, y0, rtol=1e-4, atol=1e-4 * np.abs(y0).max())


# --- static quantization with onnxruntime --------------------------------------------------

class _RandomReader(quantization.CalibrationDataReader):
    def __init__(self, shape, n: int = 4, seed: int = 1):
        self._it = iter([{"input": x} for x in _inputs(shape, n, seed)])

    def get_next(self):
        return next(self._it, None)


def _quantize(float_path, out_path, shape, fmt):
    # quantize_static is given a path: onnxruntime 1.31 mutates a ModelProto passed to it
    quantization.quantize_static(
        str(float_path), str(out_path), _RandomReader(shape), quant_format=fmt,
        per_channel=True, reduce_range=True,
        activation_type=quantization.QuantType.QUInt8,
        weight_type=quantization.QuantType.QInt8)
    return onnx.load(str(out_path))


@pytest.fixture(autouse=True)
def _quiet_quantizer():
    # quantize_static logs "consider pre-processing" / per-channel-axis warnings on root
    level = logging.getLogger().level
    logging.getLogger().setLevel(logging.ERROR)
    yield
    logging.getLogger().setLevel(level)


@pytest.mark.parametrize("fmt", ["QDQ", "QOperator"])
@pytest.mark.parametrize("name", zoo.NAMES)
def test_quantize_static(name, fmt, tmp_path):
    model = _build(name)
    float_path = tmp_path / f"{name}.onnx"
    onnx.save(model, str(float_path))
    shape = zoo.input_shape(model)
    qmodel = _quantize(float_path, tmp_path / f"{name}.{fmt}.onnx", shape,
                       getattr(quantization.QuantFormat, fmt))
    ops = _ops(qmodel)
    if fmt == "QDQ":
        assert ops["QuantizeLinear"] >= 1 and ops["DequantizeLinear"] >= 1
    else:
        assert ops["QLinearConv"] + ops["QGemm"] == _ops(model)["Conv"] + _ops(model)["Gemm"]

    x = _inputs(shape, 1, seed=2)[0]
    y_float = _session(model).run(None, {"input": x})[0]
    y = _session(tmp_path / f"{name}.{fmt}.onnx").run(None, {"input": x})[0]
    assert y.shape == y_float.shape == zoo.output_shape(model)
    assert np.all(np.isfinite(y))
    # 8-bit quantization of a sane network keeps the output close to the float one
    assert np.corrcoef(y.ravel(), y_float.ravel())[0, 1] > 0.9


@pytest.mark.parametrize("name", ["resnet18", "mobilenetv2"])
def test_quantize_after_preprocessing_folds_bn(name, tmp_path):
    """The usual deployment flow: quant_pre_process (BN folding) then quantize_static."""
    from onnxruntime.quantization.shape_inference import quant_pre_process

    model = _build(name)
    onnx.save(model, str(tmp_path / "float.onnx"))
    quant_pre_process(str(tmp_path / "float.onnx"), str(tmp_path / "pre.onnx"),
                      skip_symbolic_shape=True)
    assert _ops(onnx.load(str(tmp_path / "pre.onnx")))["BatchNormalization"] == 0
    qmodel = _quantize(tmp_path / "pre.onnx", tmp_path / "q.onnx", zoo.input_shape(model),
                       quantization.QuantFormat.QOperator)
    ops = _ops(qmodel)
    assert ops["BatchNormalization"] == 0 and ops["QLinearConv"] == _ops(model)["Conv"]
    x = _inputs(zoo.input_shape(model), 1, 3)[0]
    y = _session(tmp_path / "q.onnx").run(None, {"input": x})[0]
    assert y.shape == (1, 1000) and np.all(np.isfinite(y))
