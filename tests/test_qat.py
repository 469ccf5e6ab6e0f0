"""QAT end to end: prepare -> train -> export.  The exported model's outputs on the chip equal the
integer-exact evaluation forward's bit for bit (so its predictions on every test image are the
same), ONNX Runtime's equal the chip's, and the deployed integers follow the recipe (learned
weight codes, int32 biases on fl(s_x * s_w), BatchNorm folded with frozen statistics, the
clamp of each width and fused activation)."""

from __future__ import annotations

import json

import numpy as np
import onnx
import pytest
from onnx import helper, numpy_helper

torch = pytest.importorskip("torch")

from accelsim.cli import main as cli  # noqa: E402
from accelsim.compiler import compile_model  # noqa: E402
from accelsim.compiler.onnx.prepare import integer_clips_to_float  # noqa: E402
from accelsim.compiler.onnx.runtime import session  # noqa: E402
from accelsim.quant.qat import QatConfig, QatError, deployment, export, integer_forward, prepare, to_qdq  # noqa: E402
from accelsim.quant.qat.integer import _requantize  # noqa: E402
from accelsim.quant.qat.run import bundled, layer_bits_from, run_qat  # noqa: E402
from accelsim.quant.qat.train import TrainConfig, fit  # noqa: E402
from accelsim.quant.qdq import integer_clamp  # noqa: E402


@pytest.fixture(scope="module")
def digits():
    pytest.importorskip("sklearn")
    from accelsim.quant.qat.data import load_split

    return load_split("digits")


def _chip(q: onnx.ModelProto, x: np.ndarray) -> np.ndarray:
    return compile_model(q, batch=len(x)).run({q.graph.input[0].name: x})[0][q.graph.output[0].name]


def _ort_float_ops(model: onnx.ModelProto, tmp) -> list[str]:
    """The Conv / Gemm / Add nodes ONNX Runtime's optimised graph still runs in float."""
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.optimized_model_filepath = str(tmp)
    so.add_session_config_entry("session.qdqisint8allowed", "1")
    ort.InferenceSession(model.SerializeToString(), so, providers=["CPUExecutionProvider"])
    return [n.op_type for n in onnx.load(str(tmp)).graph.node if n.op_type in ("Conv", "Gemm", "MatMul", "Add")]


def _three_ways(net, x: np.ndarray, tmp_path) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The eval forward's, the chip's and ONNX Runtime's (8-bit-container twin) outputs; ONNX
    Runtime must run every layer on its integer kernels (no float Conv / Gemm / Add left)."""
    shape = ["batch"] + list(x.shape[1:])
    q, d = to_qdq(net, shape)
    twin, _ = to_qdq(net, shape, min_container=8)
    assert _ort_float_ops(twin, tmp_path / "opt.onnx") == []
    ort = session(twin).run(None, {"input": x})[0]
    return integer_forward(net, x, d), _chip(q, x), ort


# ------------------------------------------------------------------------------------------ golden
def test_requantize_rounds_exact_float32_ties_to_even_and_clamps():
    acc = np.array([[13.0, 15.0, -5.0, 811.0, 1000.0]]).T.reshape(1, 1, 5)  # channel axis 1
    q = type("Q", (), dict(zero_point=3, lo=3, hi=15))
    out = _requantize(acc.reshape(1, 1, 5), np.array([0.5], np.float32), q)
    # 6.5 -> 6, 7.5 -> 8, -2.5 -> -2 (+3 = 1, clamped to the ReLU's 3), 405.5 -> 406 -> clamped 15, 500 -> 15
    np.testing.assert_array_equal(out.ravel(), [9, 11, 3, 15, 15])
    m = np.array([0.009247842], np.float32)  # fl32(811 * m) is exactly 7.5: rounds to 8
    assert np.float32(811) * m[0] == np.float32(7.5)
    assert int(_requantize(np.full((1, 1), 811.0), m, type("Q", (), dict(zero_point=0, lo=0, hi=255)))[0, 0]) == 8


def test_integer_clamp_of_widths_and_activations():
    # 3 bits in a 4-bit container, zero point 3: narrow float bounds -0.3 .. 0.4, a ReLU lifts the low one to 0
    assert integer_clamp(np.float32(0.1), 3, 3, False, 0.0, np.inf) == (3, 7)
    assert integer_clamp(np.float32(0.1), 3, 3, False) == (0, 7)
    assert integer_clamp(np.float32(0.5), 0, 8, True, 0.0, 6.0) == (0, 12)  # ReLU6 at scale 0.5
    assert integer_clamp(np.float32(0.5), 0, 4, True, min_container=8) == (-8, 7)  # the 8-bit-container twin


def test_integer_clips_fold_to_float_clips_with_the_same_codes():
    """Q -> Clip(uint8 codes) -> DQ and its rewrite, float Clip -> Q -> DQ, give the same outputs."""
    s, z = np.float32(0.05), 7
    inits = [numpy_helper.from_array(np.float32(s), "s"), numpy_helper.from_array(np.uint8(z), "z"),
             numpy_helper.from_array(np.uint8(9), "lo"), numpy_helper.from_array(np.uint8(40), "hi")]
    nodes = [helper.make_node("QuantizeLinear", ["x", "s", "z"], ["q"]),
             helper.make_node("Clip", ["q", "lo", "hi"], ["qc"], name="clamp"),
             helper.make_node("DequantizeLinear", ["qc", "s", "z"], ["y"])]
    g = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [64])],
                          [helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, [64])], inits)
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 13)])
    m.ir_version = 8
    r = integer_clips_to_float(m)
    assert [n.op_type for n in r.graph.node] == ["Clip", "QuantizeLinear", "DequantizeLinear"]
    x = np.linspace(-1, 3, 64, dtype=np.float32)
    a, b = (session(v, optimize=False).run(None, {"x": x})[0] for v in (m, r))
    np.testing.assert_array_equal(a, b)
    assert a.min() == np.float32(s * (9 - z)) and a.max() == np.float32(s * (40 - z))


# ------------------------------------------------------------------------------------------ end to end
@pytest.mark.parametrize("method, bits", [("lsq", 3), ("lsq+", 5), ("pact", 2), ("dorefa", 4), ("minmax", 6),
                                          ("lsq+", 8)])
def test_exported_model_chip_eval_forward_and_ort_agree(digits, method, bits, tmp_path):
    xtr, ytr, xte, yte = digits
    net = prepare(bundled("digits"), QatConfig(method=method, weight_bits=bits, activation_bits=bits))
    fit(net, xtr[:640], ytr[:640], config=TrainConfig(epochs=2, freeze_bn=1), progress=False)
    ev, chip, ort = _three_ways(net, xte, tmp_path)
    np.testing.assert_array_equal(chip, ev)   # bit for bit: the predictions on every test image too
    np.testing.assert_array_equal(ort, chip)
    assert (ev.argmax(1) == yte).mean() > 0.5  # it trained (10 classes: chance is 0.1)


def test_qat_recovers_accuracy_ptq_loses(digits):
    """3 bits on the digits CNN: PTQ's best calibrator against LSQ fine-tuning, both on the chip."""
    from accelsim.quant.qat.run import run_ptq

    xtr, ytr, xte, yte = digits
    model = bundled("digits")
    ptq = run_ptq("digits", model, xtr[:200], xte, yte, 3, calibrators=("minmax", "mse"))
    qat = run_qat("digits", model, (xtr, ytr), (xte, yte), "lsq", 3, train_config=TrainConfig(epochs=4),
                  progress=False)
    assert qat.predictions_equal and qat.ort_equal and qat.extra["outputs_equal"]
    assert qat.accuracy_chip == qat.accuracy_eval_forward
    assert qat.accuracy_chip > ptq.accuracy_chip + 0.05


class _Residual(torch.nn.Module):
    """Conv-BN-ReLU, a residual Add + ReLU, ReLU6, max pooling, dropout, view(N, -1), two Linears."""

    def __init__(self) -> None:
        super().__init__()
        self.stem = torch.nn.Conv2d(3, 6, 3, padding=1, bias=False)
        self.bn = torch.nn.BatchNorm2d(6)
        self.relu = torch.nn.ReLU()
        self.branch = torch.nn.Conv2d(6, 6, 3, padding=1, groups=3)
        self.act = torch.nn.ReLU()
        self.pool = torch.nn.MaxPool2d(2)
        self.down = torch.nn.Conv2d(6, 8, 3, stride=2, padding=(1, 0))
        self.drop = torch.nn.Dropout(0.1)
        self.fc1 = torch.nn.Linear(8 * 3 * 2, 12)
        self.fc2 = torch.nn.Linear(12, 5)

    def forward(self, x):
        y = self.relu(self.bn(self.stem(x)))
        y = self.act(y + self.branch(y))
        y = torch.nn.functional.relu6(self.down(self.pool(y)))
        y = self.drop(y.view(y.size(0), -1))
        return self.fc2(torch.relu(self.fc1(y)))


@pytest.mark.parametrize("method", ["lsq", "lsq+", "minmax"])
def test_a_torch_module_with_a_residual_add(method, tmp_path):
    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    x = rng.normal(0, 1, (96, 3, 11, 10)).astype(np.float32)
    y = (x[:, 0].mean(axis=(1, 2)) > 0).astype(np.int64) + 2 * (x[:, 1].mean(axis=(1, 2)) > 0)
    net = prepare(_Residual(), QatConfig(method=method, weight_bits=4, activation_bits=5,
                                         layer_bits={"branch": {"weight_bits": 3}}))
    fit(net, x, y, config=TrainConfig(epochs=3, batch_size=16, freeze_bn=1), progress=False)
    ev, chip, ort = _three_ways(net, x, tmp_path)
    np.testing.assert_array_equal(chip, ev)
    np.testing.assert_array_equal(ort, chip)
    q = export(net, torch.from_numpy(x[:1]), tmp_path / "m.onnx")
    types = {i.name: i.data_type for i in onnx.load(str(tmp_path / "m.onnx")).graph.initializer}
    assert types["branch__w_q"] == onnx.TensorProto.INT4 and types["fc1__w_q"] == onnx.TensorProto.INT4
    assert q.producer_name == "accelsim.qat"


def test_deployed_integers_follow_the_recipe(digits):
    """Bias codes rint(b / fl(s_x * s_w)); BatchNorm folded with its frozen running statistics;
    learned LSQ codes in the file; the ends at 8 bits."""
    xtr, ytr, _, _ = digits
    net = prepare(bundled("digits"), QatConfig(method="lsq", weight_bits=4, activation_bits=4))
    fit(net, xtr[:320], ytr[:320], config=TrainConfig(epochs=2, freeze_bn=1), progress=False)
    conv = net.step("conv1")
    before = conv.bn.running_mean.clone()
    net.train()
    net(torch.from_numpy(xtr[:64]))  # frozen: training forwards leave the statistics alone
    assert torch.equal(before, conv.bn.running_mean)
    net.eval()
    d = deployment(net)
    codes, w_scale = d.weights["conv1"]
    f = (conv.bn.weight / torch.sqrt(conv.bn.running_var + conv.bn.eps)).detach().numpy()
    folded = conv.weight.detach().numpy() * f[:, None, None, None]
    np.testing.assert_allclose(codes * w_scale[:, None, None, None], folded, atol=float(w_scale.max()) * 0.5 + 1e-6)
    assert codes.min() >= -8 and codes.max() <= 7
    s_x = d.tensors["input"].scale
    bscale = (np.float32(s_x) * w_scale).astype(np.float32)
    np.testing.assert_array_equal(d.biases["conv1"], np.rint(d.float_bias["conv1"].astype(np.float64) / bscale))
    assert d.tensors["input"].bits == 8 and d.tensors["fc2"].bits == 8 and d.tensors["conv2"].bits == 4
    q, _ = to_qdq(net, ["batch", 1, 8, 8])
    init = {i.name: numpy_helper.to_array(i) for i in q.graph.initializer}
    np.testing.assert_array_equal(init["conv1__w_q"], codes)
    np.testing.assert_array_equal(init["conv1__b_q"], d.biases["conv1"])


def test_unsupported_models_are_named():
    class Odd(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = torch.nn.Conv2d(1, 2, 3)

        def forward(self, x):
            return torch.sigmoid(self.conv(x))

    with pytest.raises(QatError, match="sigmoid"):
        prepare(Odd())

    class BnFirst(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.bn = torch.nn.BatchNorm2d(1)

        def forward(self, x):
            return self.bn(x)

    with pytest.raises(QatError, match="BatchNorm must directly follow a convolution"):
        prepare(BnFirst())
    with pytest.raises(QatError, match="nope"):
        prepare(bundled("digits"), QatConfig(layer_bits={"nope": {"weight_bits": 4}}))
    with pytest.raises(QatError, match="unknown QAT method"):
        QatConfig(method="adaround")
    with pytest.raises(QatError, match="outside 2..8"):
        QatConfig(weight_bits=1)


def test_layer_bits_from_a_codesign_frontier(tmp_path):
    p = tmp_path / "frontier.json"
    p.write_text(json.dumps({"points": [{"layer_bits": {"conv2": {"weight_bits": 2, "activation_bits": 4}}}],
                             "chosen": 0}))
    assert layer_bits_from(p) == {"conv2": {"weight_bits": 2, "activation_bits": 4}}
    p.write_text(json.dumps({"points": [], "chosen": None}))
    with pytest.raises(QatError, match="chose no point"):
        layer_bits_from(p)


def test_cli_qat(tmp_path, capsys):
    pytest.importorskip("sklearn")
    out, js = tmp_path / "q.onnx", tmp_path / "r.json"
    assert cli(["qat", "--dataset", "digits", "--bits", "4", "--epochs", "1", "--quiet", "--out", str(out),
                "--json", str(js)]) == 0
    text = capsys.readouterr().out
    assert "predictions equal: yes" in text and "ONNX Runtime == chip: yes" in text
    recs = json.loads(js.read_text())
    assert [r["method"] for r in recs] == ["float", "ptq", "lsq"]
    assert cli(["run", str(out), "--input", str(_sample(tmp_path))]) == 0
    frontier = tmp_path / "frontier.json"  # QAT of the point a co-design run chose
    frontier.write_text(json.dumps({"points": [{"layer_bits": {"conv2": {"weight_bits": 2, "activation_bits": 4}}}],
                                    "chosen": 0}))
    assert cli(["qat", "--dataset", "digits", "--layer-bits", str(frontier), "--epochs", "1", "--quiet", "--no-ptq",
                "--out", str(out)]) == 0
    assert "the layer-bit map" in capsys.readouterr().out
    types = {i.name: i.data_type for i in onnx.load(str(out)).graph.initializer}
    assert types["conv2__w_q"] == onnx.TensorProto.INT4 and types["fc1__w_q"] == onnx.TensorProto.INT8
    assert cli(["qat", "--bits", "9"]) == 2
    assert cli(["qat", "--dataset", "digits", "--layer-bits", str(tmp_path / "missing.json"), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "accelsim: error:" in err and "missing.json" in err and "Traceback" not in err


def _sample(tmp_path) -> str:
    from importlib import resources

    x = np.load(str(resources.files("accelsim") / "data" / "digits_split.npz"))["test_x"][:2]
    np.save(tmp_path / "x.npy", x)
    return tmp_path / "x.npy"
