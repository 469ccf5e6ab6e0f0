"""Issue 6: post-training quantization (accelsim.quant) writes QDQ models that ONNX Runtime runs and
the chip runs bit-exact (with ONNX Runtime where it is exact, with an exact integer reference
elsewhere); BatchNorm is folded first; bit widths per layer; the demo and the CLI."""

from __future__ import annotations

import json

import numpy as np
import onnx
import pytest
from onnx import numpy_helper

from accelsim import zoo
from accelsim.cli import main
from accelsim.compiler import compile_graph, import_model, layer_table
from accelsim.demo import bundled
from accelsim.quant import QuantConfig, fold_batchnorm, load_layer_bits, quantize_model

from .ort_models import session
from .qgraph_reference import run_reference

ort = pytest.importorskip("onnxruntime")


def _calib(model, n=24, seed=0):
    shape = zoo.input_shape(model)
    return np.random.default_rng(seed).normal(0, 1, (n,) + shape[1:]).astype(np.float32)


def _float_session(model):
    return session(model)


def _ort(q, low_bits: bool):
    # ONNX Runtime's QDQ fusions cannot take uint4 activations (docs/ptq.md)
    return session(q, optimize=not low_bits)


def test_batchnorm_folds_into_the_conv_exactly():
    model = zoo.build("residual_odd", fold_bn=False)
    folded = fold_batchnorm(model)
    assert not any(n.op_type == "BatchNormalization" for n in folded.graph.node)
    x = _calib(model, 3)
    a, b = _float_session(model), _float_session(folded)
    for s in x:
        np.testing.assert_allclose(b.run(None, {"input": s[None]})[0], a.run(None, {"input": s[None]})[0],
                                   rtol=1e-4, atol=1e-5)


def test_qdq_structure_bias_and_weights():
    """Weights per channel in [-127, 127] (int8 symmetric, zero point 0), biases int32 with scale
    s_in * s_w, no BatchNormalization left, and the model checks and runs in ONNX Runtime."""
    model = zoo.build("small_cnn", fold_bn=False)
    q = quantize_model(model, _calib(model), QuantConfig(narrow_range=True), progress=False)
    inits = {i.name: numpy_helper.to_array(i) for i in q.graph.initializer}
    ops = [n.op_type for n in q.graph.node]
    assert "BatchNormalization" not in ops and ops.count("QuantizeLinear") >= 4
    conv = next(n for n in q.graph.node if n.op_type == "Conv")
    deq = {n.output[0]: n for n in q.graph.node if n.op_type == "DequantizeLinear"}
    wq, ws, wz = (inits[i] for i in deq[conv.input[1]].input)
    assert wq.dtype == np.int8 and np.abs(wq).max() <= 127 and np.all(wz == 0) and ws.shape == (wq.shape[0],)
    bq, bs, _ = (inits[i] for i in deq[conv.input[2]].input)
    x_dq = deq[conv.input[0]]
    s_in = inits[x_dq.input[1]]
    assert bq.dtype == np.int32
    np.testing.assert_array_equal(bs, (np.float32(s_in) * ws).astype(np.float32))
    _ort(q, False).run(None, {"input": _calib(model, 1)})


@pytest.mark.parametrize("name", ["small_cnn", "residual_odd", "concat_branches", "dw_separable", "mlp"])
@pytest.mark.parametrize("calibrator", ["minmax", "entropy", "percentile", "mse", "moving_average"])
def test_8_bit_models_bit_exact_with_onnxruntime(name, calibrator):
    """8-bit models with reduce_range weights ([-64, 64]): ONNX Runtime is exact integer arithmetic
    on every x86 CPU, and the chip equals it bit for bit."""
    model = zoo.build(name, fold_bn=False)
    q = quantize_model(model, _calib(model), QuantConfig(reduce_range=True, calibrator=calibrator), progress=False)
    compiled = compile_graph(import_model(q))
    sess = _ort(q, False)
    for s in _calib(model, 3, seed=9):
        np.testing.assert_array_equal(compiled.run({"input": s[None]})[0]["output"],
                                      sess.run(None, {"input": s[None]})[0])


@pytest.mark.parametrize("name", ["small_cnn", "residual_odd", "mlp"])
@pytest.mark.parametrize("bits", [5, 6, 7])
def test_narrow_widths_in_8_bit_containers_bit_exact_with_onnxruntime(name, bits, tmp_path):
    """5- to 7-bit activations in 8-bit containers: their clamp is a Clip on the codes after the
    QuantizeLinear, so ONNX Runtime keeps every layer on its integer kernels (its optimised graph
    has no float Conv / Gemm / MatMul / Add) and the chip equals it bit for bit."""
    import onnxruntime as ort

    model = zoo.build(name, fold_bn=False)
    q = quantize_model(model, _calib(model), QuantConfig(weight_bits=bits, activation_bits=bits, reduce_range=True),
                       progress=False)
    so = ort.SessionOptions()
    so.optimized_model_filepath = str(tmp_path / "opt.onnx")
    so.add_session_config_entry("session.qdqisint8allowed", "1")
    ort.InferenceSession(q.SerializeToString(), so, providers=["CPUExecutionProvider"])
    left = [n.op_type for n in onnx.load(str(tmp_path / "opt.onnx")).graph.node
            if n.op_type in ("Conv", "Gemm", "MatMul", "Add")]
    assert left == []
    assert any(n.op_type == "Clip" for n in q.graph.node)  # the narrow clamps are there, on the codes
    compiled = compile_graph(import_model(q))
    sess = _ort(q, False)
    for s in _calib(model, 3, seed=5):
        np.testing.assert_array_equal(compiled.run({"input": s[None]})[0]["output"],
                                      sess.run(None, {"input": s[None]})[0])


@pytest.mark.parametrize("config", [
    QuantConfig(weight_bits=4, activation_bits=4),
    QuantConfig(weight_bits=3, activation_bits=3, calibrator="mse"),
    QuantConfig(weight_bits=4, activation_bits=8, per_channel=False),
    QuantConfig(weight_bits=8, activation_bits=16),
    QuantConfig(weight_bits=16, activation_bits=16, calibrator="percentile"),
    QuantConfig(weight_bits=8, activation_bits=8, symmetric_activations=True, per_channel=False,
                symmetric_weights=False),
], ids=["w4a4", "w3a3-mse", "w4a8-per-tensor", "w8a16", "w16a16", "s8-activations-asym-weights"])
def test_other_widths_equal_the_exact_reference(config):
    """4-, 3- and 16-bit widths (ONNX Runtime runs float convolutions between DQ and Q): the chip
    equals an exact integer reference of the quantized graph; ONNX Runtime stays close."""
    model = zoo.build("small_cnn", fold_bn=False)
    q = quantize_model(model, _calib(model), config, progress=False)
    graph = import_model(q)
    compiled = compile_graph(graph)
    sess = _ort(q, config.activation_bits < 8)
    s_out = graph.tensors[graph.outputs["output"]].scale
    for s in _calib(model, 4, seed=11):
        out = compiled.run({"input": s[None]})[0]["output"]
        np.testing.assert_array_equal(out, run_reference(graph, {"input": s[None]})["output"])
        assert np.abs(np.rint((out - sess.run(None, {"input": s[None]})[0]) / s_out)).max() <= 2


def test_narrow_widths_stay_in_their_range():
    """3-bit activations live in 4-bit containers clipped to [0, 7]; 3-bit weights in [-4, 3]."""
    model = zoo.build("small_cnn", fold_bn=False)
    q = quantize_model(model, _calib(model), QuantConfig(weight_bits=3, activation_bits=3), progress=False)
    graph = import_model(q)
    for node in graph.nodes:
        if type(node).__name__ == "QConv":
            assert node.weight.min() >= -4 and node.weight.max() <= 3
            assert 0 <= node.clamp[0] and node.clamp[1] <= 7
    assert graph.input_clips  # the input's Clip runs on the host
    assert all(t.dtype == "u4" for t in graph.tensors.values())
    x = _calib(model, 1)
    compiled = compile_graph(graph)
    from accelsim.chip import Simulator

    sim = Simulator(compiled.chip)
    compiled.run({"input": x}, sim=sim)
    for name, ref in compiled.regions.items():  # every activation the chip wrote is a 3-bit value
        assert ref.read(sim.last_dram).max() <= 7, name


def test_mixed_precision_saves_cycles_and_weight_bytes(tmp_path):
    """Issue 6, acceptance 2: per-layer widths from a JSON map; each layer runs at its own precision
    on the MAC array, and its cycles and DRAM weight bytes drop against the all-8-bit model."""
    model, split = bundled()
    bits_map = tmp_path / "bits.json"
    bits_map.write_text(json.dumps({"conv2": {"weight_bits": 4, "activation_bits": 4}, "fc1": 4}))
    base = compile_graph(import_model(quantize_model(model, split["calib_x"], QuantConfig(), progress=False)))
    mixed_q = quantize_model(model, split["calib_x"], QuantConfig(layer_bits=load_layer_bits(bits_map)),
                             progress=False)
    mixed = compile_graph(import_model(mixed_q))
    x = split["test_x"][:1]
    rows_b = {r.name: r for r in layer_table(base, base.run({"input": x})[1])}
    rows_m = {r.name: r for r in layer_table(mixed, mixed.run({"input": x})[1])}
    assert rows_m["conv2"].bits == "s4xu8" and rows_m["fc1"].bits == "s4xu4" and rows_m["fc2"].bits == "s8xu4"
    for name in ("conv2", "fc1"):
        assert rows_m[name].cycles < rows_b[name].cycles
        assert rows_m[name].dram_weight_bytes < rows_b[name].dram_weight_bytes
    assert rows_m["conv1"].cycles == rows_b["conv1"].cycles


def test_digits_accuracy_on_the_chip():
    """The bundled example: float accuracy, and 8-bit and 4-bit per-channel accuracy on the chip
    (4-bit entropy within 2 points of float, as docs/ptq.md reports)."""
    from accelsim.demo import chip_logits, float_logits

    model, split = bundled()
    x, y = split["test_x"], split["test_y"]
    float_acc = (float_logits(model, x).argmax(1) == y).mean()
    assert float_acc > 0.97
    for bits, cal, floor in ((8, "minmax", float_acc - 0.01), (4, "entropy", float_acc - 0.02)):
        q = quantize_model(model, split["calib_x"], QuantConfig(weight_bits=bits, activation_bits=bits, calibrator=cal),
                           progress=False)
        logits, _ = chip_logits(compile_graph(import_model(q)), x)
        assert (logits.argmax(1) == y).mean() >= floor


def test_bad_configurations_are_refused(tmp_path):
    with pytest.raises(ValueError, match="calibrator"):
        QuantConfig(calibrator="kl")
    with pytest.raises(ValueError, match="2..16"):
        QuantConfig(weight_bits=1)
    with pytest.raises(ValueError, match="per tensor"):
        QuantConfig(symmetric_weights=False)
    model, split = bundled()
    with pytest.raises(ValueError, match="nope"):
        quantize_model(model, split["calib_x"], QuantConfig(layer_bits={"nope": {"weight_bits": 4}}), progress=False)
    bad = tmp_path / "bits.json"
    bad.write_text('{"conv1": {"bits": 4}}')
    with pytest.raises(ValueError, match="conv1"):
        load_layer_bits(bad)


def test_cli_quantize_then_run(tmp_path, capsys):
    model, split = bundled()
    onnx.save(model, tmp_path / "f.onnx")
    np.save(tmp_path / "calib.npy", split["calib_x"])
    np.save(tmp_path / "x.npy", split["test_x"][:1])
    assert main(["quantize", str(tmp_path / "f.onnx"), "--calib", str(tmp_path / "calib.npy"), "-o",
                 str(tmp_path / "q.onnx"), "--calibrator", "entropy", "--weight-bits", "4", "--quiet"]) == 0
    assert main(["run", str(tmp_path / "q.onnx"), "--input", str(tmp_path / "x.npy"), "--output",
                 str(tmp_path / "y.npy")]) == 0
    assert "s4xu8" in capsys.readouterr().out and np.load(tmp_path / "y.npy").shape == (1, 10)
    # errors: one line, exit code 2
    assert main(["quantize", str(tmp_path / "f.onnx"), "--calib", str(tmp_path / "missing.npy"), "-o",
                 str(tmp_path / "q2.onnx")]) == 2
    (tmp_path / "bits.toml").write_text("conv1 = 1\n")
    assert main(["quantize", str(tmp_path / "f.onnx"), "--calib", str(tmp_path / "calib.npy"), "-o",
                 str(tmp_path / "q2.onnx"), "--layer-bits", str(tmp_path / "bits.toml")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 2 and all(line.startswith("accelsim: error:") for line in err)


def test_demo_runs_and_checks_onnxruntime(capsys):
    """`accelsim demo` (the README's first command): accuracy, the ONNX Runtime cross-check, the
    per-layer table and the mixed-precision savings."""
    assert main(["demo", "--quiet"]) == 0
    out = capsys.readouterr().out
    assert "chip outputs equal to ONNX Runtime's on the same QDQ model: 360/360 images" in out
    acc = float(out.split("8-bit on the chip ")[1].split("%")[0])
    assert acc > 96
    assert "mixed 4/8 against all 8-bit" in out and "conv2" in out


@pytest.mark.parametrize("name", ["resnet18", "mobilenetv2"])
def test_large_models_quantized_by_accelsim_bit_exact(name):
    """ResNet-18 and MobileNetV2 (BatchNorm unfolded in the float model: folded by the quantizer)
    quantized by accelsim at 64 x 64, run on the chip bit-exact with ONNX Runtime."""
    model = zoo.build(name, input_size=64, fold_bn=False)
    calib = np.random.default_rng(0).normal(0, 1, (6, 3, 64, 64)).astype(np.float32)
    q = quantize_model(model, calib, QuantConfig(reduce_range=True), progress=False)
    assert not any(n.op_type == "BatchNormalization" for n in q.graph.node)
    compiled = compile_graph(import_model(q))
    sess = _ort(q, False)
    x = np.random.default_rng(1).normal(0, 1, (1, 3, 64, 64)).astype(np.float32)
    np.testing.assert_array_equal(compiled.run({"input": x})[0]["output"], sess.run(None, {"input": x})[0])


@pytest.mark.parametrize("name", ["residual_odd", "dw_separable", "concat_branches", "grouped_conv"])
def test_4_bit_models_with_odd_channels_equal_the_exact_reference(name):
    """4-bit activations whose rows would not end on a byte (3, 17 or 33 channels) are stored in 8
    bits in DRAM while the MAC array reads 4-bit operands: results equal the exact reference."""
    from accelsim.compiler.passes import storage_types

    model = zoo.build(name, fold_bn=False)
    q = quantize_model(model, _calib(model, 8), QuantConfig(weight_bits=4, activation_bits=4), progress=False)
    graph = import_model(q)
    compiled = compile_graph(graph)
    mem = storage_types(graph)
    odd = [t for t, v in graph.tensors.items() if v.shape[1] % 2]
    assert all(mem[t] == graph.tensors[t].dtype[0] + "8" for t in odd)
    assert all(r.bits.endswith("u4") for r in compiled.layers if r.op == "Conv")
    for s in _calib(model, 2, seed=4):
        np.testing.assert_array_equal(compiled.run({"input": s[None]})[0]["output"],
                                      run_reference(graph, {"input": s[None]})["output"])


# ------------------------------------------------------------------------------ review regressions
def _bn(i: str, o: str, c: int, p: str, rng):
    from onnx import helper

    inits = [numpy_helper.from_array(v.astype(np.float32), p + k) for k, v in
             (("g", rng.uniform(.5, 2, c)), ("b", rng.normal(0, 1, c)), ("m", rng.normal(0, 1, c)),
              ("v", rng.uniform(.5, 2, c)))]
    return helper.make_node("BatchNormalization", [i, p + "g", p + "b", p + "m", p + "v"], [o]), inits


def _model(nodes, inits, in_shape, out_shape, extra_outputs=()):
    from onnx import TensorProto, helper

    g = helper.make_graph(nodes, "m", [helper.make_tensor_value_info("input", TensorProto.FLOAT, in_shape)],
                          [helper.make_tensor_value_info(o, TensorProto.FLOAT, out_shape)
                           for o in ("output",) + tuple(extra_outputs)], inits)
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])
    m.ir_version = 10
    return m


@pytest.mark.parametrize("case", ["unnamed", "shared_weight", "conv1d", "conv3d", "graph_output"])
def test_fold_batchnorm_any_conv(case):
    """BN folding keeps the function for unnamed nodes, a weight shared by two convs, 1-D and 3-D
    convs (the scale multiplies the output-channel axis), and leaves a BN alone when the conv's
    own output is a graph output."""
    from onnx import helper

    rng = np.random.default_rng(0)
    w = lambda name, *s: numpy_helper.from_array(rng.normal(0, .3, s).astype(np.float32), name)  # noqa: E731
    if case in ("unnamed", "shared_weight"):
        n1, i1 = _bn("c1", "b1", 4, "bn1_", rng)
        n2, i2 = _bn("c2", "output", 4, "bn2_", rng)
        names = ("", "") if case == "unnamed" else ("conv1", "conv2")
        ws = ("w1", "w2") if case == "unnamed" else ("w", "w")
        inits = [w("w1", 4, 4, 3, 3), w("w2", 4, 4, 3, 3)] if case == "unnamed" else [w("w", 4, 4, 3, 3)]
        m = _model([helper.make_node("Conv", ["input", ws[0]], ["c1"], pads=[1] * 4, name=names[0]), n1,
                    helper.make_node("Conv", ["b1", ws[1]], ["c2"], pads=[1] * 4, name=names[1]), n2],
                   inits + i1 + i2, [1, 4, 8, 8], [1, 4, 8, 8])
        shape = (1, 4, 8, 8)
    else:
        dims = {"conv1d": (16,), "conv3d": (5, 5, 5), "graph_output": (8, 8)}[case]
        n1, i1 = _bn("c1", "output", 4, "bn1_", rng)
        m = _model([helper.make_node("Conv", ["input", "w"], ["c1"], pads=[1] * (2 * len(dims)), name="conv1"), n1],
                   [w("w", 4, 4, *([3] * len(dims)))] + i1, [1, 4, *dims], [1, 4, *dims],
                   extra_outputs=("c1",) if case == "graph_output" else ())
        shape = (1, 4, *dims)
    folded = fold_batchnorm(m)
    onnx.checker.check_model(folded)
    assert any(n.op_type == "BatchNormalization" for n in folded.graph.node) == (case == "graph_output")
    x = rng.normal(0, 1, shape).astype(np.float32)
    for a, b in zip(_float_session(m).run(None, {"input": x}), _float_session(folded).run(None, {"input": x})):
        np.testing.assert_allclose(b, a, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("bias_shape", [(5,), (1, 5), ()])
def test_unnamed_nodes_and_gemm_bias_shapes(bias_shape):
    """Unnamed nodes get names; a Gemm bias C of shape (N,), (1, N) or () becomes a 1-D int32 bias."""
    from onnx import helper

    rng = np.random.default_rng(1)
    inits = [numpy_helper.from_array(rng.normal(0, .3, (5, 8)).astype(np.float32), "w"),
             numpy_helper.from_array(rng.normal(0, .3, bias_shape).astype(np.float32), "b")]
    m = _model([helper.make_node("Gemm", ["input", "w", "b"], ["g"], transB=1),
                helper.make_node("Relu", ["g"], ["output"])], inits, [1, 8], [1, 5])
    q = quantize_model(m, rng.normal(0, 1, (16, 8)).astype(np.float32), QuantConfig(reduce_range=True), progress=False)
    dq = next(n for n in q.graph.node if n.op_type == "DequantizeLinear" and n.output[0].endswith("__b"))
    scale = next(numpy_helper.to_array(i) for i in q.graph.initializer if i.name == dq.input[1])
    assert scale.shape == (5,)
    compiled = compile_graph(import_model(q))
    sess = session(q)
    x = rng.normal(0, 1, (1, 8)).astype(np.float32)
    np.testing.assert_array_equal(compiled.run({"input": x})[0]["output"], sess.run(None, {"input": x})[0])


def _residual_model() -> onnx.ModelProto:
    """x -> conv a -> relu; x -> conv b; Add(a, b) -> Concat(add, a) -> output."""
    from onnx import TensorProto, helper

    rng = np.random.default_rng(3)
    w = [numpy_helper.from_array(rng.normal(0, 0.3, (4, 3, 3, 3)).astype(np.float32), f"w{i}") for i in range(2)]
    nodes = [helper.make_node("Conv", ["x", "w0"], ["ca"], name="conv_a", pads=[1] * 4),
             helper.make_node("Relu", ["ca"], ["a"], name="relu_a"),
             helper.make_node("Conv", ["x", "w1"], ["b"], name="conv_b", pads=[1] * 4),
             helper.make_node("Add", ["a", "b"], ["s"], name="add"),
             helper.make_node("Concat", ["s", "a"], ["y"], name="cat", axis=1)]
    g = helper.make_graph(nodes, "res", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 6, 6])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 8, 6, 6])], w)
    return helper.make_model(g, opset_imports=[helper.make_opsetid("", 13)])


def test_residual_add_and_concat_inputs_share_one_activation_width():
    """A layer-bit map that gives the two inputs of an Add (or of a Concat) different widths is
    widened to one: the widest of the group, whose members are the inputs and outputs of the Add
    and of the Concat it feeds."""
    from accelsim.quant.plan import plan_tensors

    model = onnx.shape_inference.infer_shapes(_residual_model())
    config = QuantConfig(layer_bits={"conv_a": {"activation_bits": 4}, "conv_b": {"activation_bits": 6},
                                     "add": {"activation_bits": 8}})
    plan, fused = plan_tensors(model, config)
    assert fused == {"relu_a": "conv_a"}
    assert plan["a"].bits == plan["b"].bits == plan["s"].bits == 8   # Add(a, b) and Concat(s, a)
    config = QuantConfig(layer_bits={"conv_a": {"activation_bits": 4}, "conv_b": {"activation_bits": 6},
                                     "add": {"activation_bits": 4}, "cat": {"activation_bits": 4}})
    plan, _ = plan_tensors(model, config)
    assert plan["a"].bits == plan["b"].bits == plan["s"].bits == plan["y"].bits == 6  # outputs join too
    q = quantize_model(_residual_model(), np.random.default_rng(0).normal(0, 1, (8, 3, 6, 6)).astype(np.float32),
                       config, progress=False)
    compiled = compile_graph(import_model(q))
    assert {layer.name: layer.bits for layer in compiled.layers}["add"].startswith(("u8", "s8"))


def test_a_residual_add_followed_by_relu_shares_its_width_with_its_inputs():
    """Add -> Relu (fused: the Relu's output is the Add's quantized tensor) joins the group of the
    Add's inputs: a 4-bit request for the Add alone widens to its inputs' 8 bits."""
    from onnx import TensorProto, helper

    from accelsim.quant.plan import plan_tensors

    rng = np.random.default_rng(4)
    w = [numpy_helper.from_array(rng.normal(0, 0.3, (3, 3, 3, 3)).astype(np.float32), f"w{i}") for i in range(1)]
    nodes = [helper.make_node("Conv", ["x", "w0"], ["c"], name="conv", pads=[1] * 4),
             helper.make_node("Add", ["c", "x"], ["s"], name="add"),
             helper.make_node("Relu", ["s"], ["y"], name="relu")]
    g = helper.make_graph(nodes, "res", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 5, 5])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 3, 5, 5])], w)
    model = onnx.shape_inference.infer_shapes(helper.make_model(g, opset_imports=[helper.make_opsetid("", 13)]))
    plan, fused = plan_tensors(model, QuantConfig(layer_bits={"add": {"activation_bits": 4}}))
    assert fused == {"relu": "add"} and plan["y"].bits == plan["c"].bits == plan["x"].bits == 8
    q = quantize_model(model, rng.normal(0, 1, (4, 3, 5, 5)).astype(np.float32),
                       QuantConfig(layer_bits={"add": {"activation_bits": 4}}), progress=False)
    compile_graph(import_model(q))  # the Add's inputs and output have one type
