"""Issue 5 (in progress): quantized ONNX models compile and run bit-exact with ONNX Runtime.

Models are quantized by onnxruntime.quantization.quantize_static with reduce_range=True (weights
in [-64, 64]), where ONNX Runtime's u8 x s8 kernels are exact integer arithmetic on x86."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from accelsim.compiler import compile_graph, import_model, load_model
from accelsim.compiler.ir import ModelError

from .ort_models import session

QUANT = pytest.importorskip("onnxruntime.quantization")


def float_model(seed: int = 0, c_in: int = 3, size: int = 9) -> onnx.ModelProto:
    """Conv 3x3 pad 1 -> Relu -> Conv 3x3 stride 2 (asymmetric pads) -> Relu -> Flatten -> Gemm."""
    rng = np.random.default_rng(seed)

    def init(name, shape, std):
        return numpy_helper.from_array(rng.normal(0, std, shape).astype(np.float32), name)

    out2 = (size + 0 + 1 - 3) // 2 + 1
    nodes = [helper.make_node("Conv", ["input", "w1", "b1"], ["c1"], pads=[1, 1, 1, 1], name="conv1"),
             helper.make_node("Relu", ["c1"], ["r1"], name="relu1"),
             helper.make_node("Conv", ["r1", "w2", "b2"], ["c2"], strides=[2, 2], pads=[0, 1, 1, 0], name="conv2"),
             helper.make_node("Relu", ["c2"], ["r2"], name="relu2"),
             helper.make_node("Flatten", ["r2"], ["f"], name="flat"),
             helper.make_node("Gemm", ["f", "w3", "b3"], ["output"], transB=1, name="fc")]
    g = helper.make_graph(
        nodes, "t", [helper.make_tensor_value_info("input", TensorProto.FLOAT, [1, c_in, size, size])],
        [helper.make_tensor_value_info("output", TensorProto.FLOAT, [1, 10])],
        [init("w1", (17, c_in, 3, 3), 0.3), init("b1", (17,), 0.1), init("w2", (6, 17, 3, 3), 0.15),
         init("b2", (6,), 0.1), init("w3", (10, 6 * out2 * out2), 0.2), init("b3", (10,), 0.1)])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])
    m.ir_version = 10
    return m


def assert_bit_exact(q: onnx.ModelProto, compiled, shape, seed: int, runs: int, std: float = 1.0) -> None:
    """Random float inputs: the chip's outputs equal ONNX Runtime's bit for bit."""
    sess = session(q)
    rng = np.random.default_rng(seed)
    for _ in range(runs):
        x = rng.normal(0, std, shape).astype(np.float32)
        out, _ = compiled.run({"input": x})
        np.testing.assert_array_equal(out["output"], sess.run(None, {"input": x})[0])


def lsb_differences(out: np.ndarray, ref: np.ndarray, scale) -> int:
    """How many outputs differ (in units of the output scale); none may differ by more than 1."""
    d = np.abs(np.rint((out - ref) / np.float32(scale)))
    assert d.max() <= 1, f"outputs differ by up to {d.max()} LSB"
    return int((d > 0).sum())


def quantized(tmp_path, model, fmt: str, per_channel: bool, seed: int = 0, activation: str = "QUInt8",
              weight: str = "QInt8", reduce_range: bool = True, **options) -> onnx.ModelProto:
    """The model quantized by onnxruntime's quantize_static on 16 random inputs; ``options`` go to
    quantize_static (e.g. extra_options, op_types_to_quantize)."""
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static

    rng = np.random.default_rng(seed)
    shape = [d.dim_value for d in model.graph.input[0].type.tensor_type.shape.dim]

    class Reader(CalibrationDataReader):
        def __init__(self):
            self.data = iter([{"input": rng.normal(0, 1, shape).astype(np.float32)} for _ in range(16)])

        def get_next(self):
            return next(self.data, None)

    tag = f"{fmt}_{per_channel}_{activation}_{weight}_{reduce_range}"
    src, dst = tmp_path / f"f_{tag}.onnx", tmp_path / f"q_{tag}.onnx"
    onnx.save(model, src)
    quantize_static(str(src), str(dst), Reader(), quant_format=getattr(QuantFormat, fmt), per_channel=per_channel,
                    reduce_range=reduce_range, activation_type=getattr(QuantType, activation),
                    weight_type=getattr(QuantType, weight), **options)
    return onnx.load(str(dst))


@pytest.mark.parametrize("fmt", ["QDQ", "QOperator"])
@pytest.mark.parametrize("per_channel", [True, False])
def test_bit_exact_with_onnxruntime(tmp_path, fmt, per_channel):
    q = quantized(tmp_path, float_model(), fmt, per_channel)
    compiled = compile_graph(import_model(q))
    sess = session(q)
    rng = np.random.default_rng(1)
    for _ in range(8):
        x = (rng.normal(0, 1.5, (1, 3, 9, 9))).astype(np.float32)
        ref = sess.run(None, {"input": x})[0]
        out, report = compiled.run({"input": x})
        np.testing.assert_array_equal(out["output"], ref)
    assert report.total_macs == sum(layer.macs for layer in compiled.layers)


def test_program_saves_and_runs_the_same(tmp_path):
    from accelsim.chip import Program

    q = quantized(tmp_path, float_model(seed=3), "QDQ", True)
    compiled = compile_graph(import_model(q))
    compiled.program.save(tmp_path / "m.axp")
    again = Program.load(tmp_path / "m.axp")
    assert np.array_equal(again.words, compiled.program.words)
    x = np.random.default_rng(2).normal(0, 1, (1, 3, 9, 9)).astype(np.float32)
    a, _ = compiled.run({"input": x})
    compiled.program = again
    b, _ = compiled.run({"input": x})
    assert np.array_equal(a["output"], b["output"])


# --------------------------------------------------------------------------- bad models
def _qdq(tmp_path):
    return quantized(tmp_path, float_model(), "QDQ", True)


def test_truncated_file(tmp_path):
    q = _qdq(tmp_path)
    path = tmp_path / "cut.onnx"
    path.write_bytes(q.SerializeToString()[:100])
    with pytest.raises(ModelError, match="not an ONNX file"):
        load_model(path)


def test_missing_initializer(tmp_path):
    q = _qdq(tmp_path)
    name = next(n for n in q.graph.node if n.op_type == "QuantizeLinear").input[1]
    keep = [i for i in q.graph.initializer if i.name != name]
    del q.graph.initializer[:]
    q.graph.initializer.extend(keep)
    with pytest.raises(ModelError, match=f"'{name}' is no graph input, initializer or node output"):
        import_model(q)


def test_unsupported_op_names_the_node(tmp_path):
    q = _qdq(tmp_path)
    out = q.graph.output[0].name
    producer = next(n for n in q.graph.node if out in n.output)
    producer.output[0] = "pre_erf"  # DQ -> Erf -> Q -> DQ: between the chip's ops, not a host tail
    s, z = producer.input[1], producer.input[2]
    q.graph.node.extend([helper.make_node("Erf", ["pre_erf"], ["erf_out"], name="erf"),
                         helper.make_node("QuantizeLinear", ["erf_out", s, z], ["erf_q"], name="erf_quant"),
                         helper.make_node("DequantizeLinear", ["erf_q", s, z], [out], name="erf_dequant")])
    with pytest.raises(ModelError) as e:
        import_model(q)
    assert e.value.node == "erf" and e.value.op_type == "Erf" and "unsupported op" in str(e.value)


def test_per_channel_zero_points_must_agree(tmp_path):
    q = _qdq(tmp_path)
    zp = next(i for i in q.graph.initializer if i.name == "w1_zero_point")
    arr = numpy_helper.to_array(zp).copy()
    arr[1] = 3
    zp.CopyFrom(numpy_helper.from_array(arr, "w1_zero_point"))
    with pytest.raises(ModelError, match="per-channel weight zero points differ") as e:
        import_model(q)
    assert e.value.node == "conv1"


def test_unsupported_dtype(tmp_path):
    q = _qdq(tmp_path)
    zp = next(i for i in q.graph.initializer if i.name == "input_zero_point")
    zp.CopyFrom(numpy_helper.from_array(np.array(0, np.int32), "input_zero_point"))
    with pytest.raises(ModelError, match="input_QuantizeLinear.*unsupported type: tensor.int32"):
        compile_graph(import_model(q))


def test_per_layer_cycles_add_up_and_weight_bytes_match(tmp_path):
    from accelsim.compiler import layer_table

    q = quantized(tmp_path, float_model(seed=4), "QDQ", True)
    compiled = compile_graph(import_model(q))
    _, report = compiled.run({"input": np.zeros((1, 3, 9, 9), np.float32)})
    rows = layer_table(compiled, report)
    assert [r.name for r in rows] == ["conv1", "conv2", "fc"]
    assert sum(r.cycles for r in rows) == report.cycles
    assert sum(r.macs for r in rows) == report.total_macs
    for r, layer in zip(rows, compiled.layers):
        assert r.dram_weight_bytes == layer.weight_bytes  # each weight chunk is fetched once here


def test_cli_compile_run_disasm(tmp_path, capsys):
    import json

    from accelsim import cli

    q = quantized(tmp_path, float_model(seed=5), "QOperator", True)
    onnx.save(q, tmp_path / "m.onnx")
    x = np.random.default_rng(0).normal(0, 1, (1, 3, 9, 9)).astype(np.float32)
    np.save(tmp_path / "x.npy", x)
    assert cli.main(["run", str(tmp_path / "m.onnx"), "--input", str(tmp_path / "x.npy"), "--output",
                     str(tmp_path / "y.npy"), "--report", str(tmp_path / "r.json"), "--csv", str(tmp_path / "l.csv")]) == 0
    ref = session(q).run(None, {"input": x})[0]
    assert np.array_equal(np.load(tmp_path / "y.npy"), ref)
    data = json.loads((tmp_path / "r.json").read_text())
    assert [l["name"] for l in data["layers"]] == ["conv1_quant", "conv2_quant", "fc_quant"]
    assert data["total"]["cycles"] == sum(l["cycles"] for l in data["layers"])
    assert "conv1_quant" in (tmp_path / "l.csv").read_text()
    assert cli.main(["compile", str(tmp_path / "m.onnx"), "-o", str(tmp_path / "m.axp")]) == 0
    capsys.readouterr()
    assert cli.main(["disasm", str(tmp_path / "m.axp")]) == 0
    assert "GEMM" in capsys.readouterr().out
    (tmp_path / "bad.onnx").write_bytes(b"\x08\x01junk")
    assert cli.main(["run", str(tmp_path / "bad.onnx"), "--input", str(tmp_path / "x.npy")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "not an ONNX file" in err


def pool_model(seed: int = 0) -> onnx.ModelProto:
    """Conv -> Relu -> MaxPool 3x3/2 pad 1 -> Conv -> MaxPool 2x2/2 -> Flatten -> Gemm (11 -> 6 -> 3)."""
    rng = np.random.default_rng(seed)

    def init(name, shape, std):
        return numpy_helper.from_array(rng.normal(0, std, shape).astype(np.float32), name)

    nodes = [helper.make_node("Conv", ["input", "w1", "b1"], ["c1"], pads=[1, 1, 1, 1], name="conv1"),
             helper.make_node("Relu", ["c1"], ["r1"], name="relu1"),
             helper.make_node("MaxPool", ["r1"], ["p1"], kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 1, 1],
                              name="pool1"),
             helper.make_node("Conv", ["p1", "w2", "b2"], ["c2"], pads=[1, 1, 1, 1], name="conv2"),
             helper.make_node("MaxPool", ["c2"], ["p2"], kernel_shape=[2, 2], strides=[2, 2], name="pool2"),
             helper.make_node("Flatten", ["p2"], ["f"], name="flat"),
             helper.make_node("Gemm", ["f", "w3", "b3"], ["output"], transB=1, name="fc")]
    g = helper.make_graph(
        nodes, "p", [helper.make_tensor_value_info("input", TensorProto.FLOAT, [1, 2, 11, 11])],
        [helper.make_tensor_value_info("output", TensorProto.FLOAT, [1, 5])],
        [init("w1", (8, 2, 3, 3), 0.3), init("b1", (8,), 0.1), init("w2", (5, 8, 3, 3), 0.2), init("b2", (5,), 0.1),
         init("w3", (5, 5 * 3 * 3), 0.2), init("b3", (5,), 0.1)])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])
    m.ir_version = 10
    return m


@pytest.mark.parametrize("fmt", ["QDQ", "QOperator"])
def test_maxpool_bit_exact(tmp_path, fmt):
    q = quantized(tmp_path, pool_model(), fmt, True)
    compiled = compile_graph(import_model(q))
    sess = session(q)
    rng = np.random.default_rng(6)
    for _ in range(6):
        x = rng.normal(0, 1.5, (1, 2, 11, 11)).astype(np.float32)
        out, _ = compiled.run({"input": x})
        np.testing.assert_array_equal(out["output"], sess.run(None, {"input": x})[0])


@pytest.mark.parametrize("fmt", ["QDQ", "QOperator"])
@pytest.mark.parametrize("per_channel", [True, False])
@pytest.mark.parametrize("name", ["small_cnn", "mlp", "stride2_7x7", "residual_odd", "dw_separable", "concat_branches",
                                  "grouped_conv"])
def test_zoo_models_bit_exact(tmp_path, fmt, per_channel, name):
    """Issue 5, acceptance 1: the zoo's models, quantized by ONNX Runtime (QDQ and QOperator, per
    channel and per tensor, reduce_range), run bit-exact (asym_pad: test_asym_pad_model_within_one_lsb;
    ResNet-18 and MobileNetV2 below)."""
    from accelsim import zoo

    model = zoo.build(name, fold_bn=True)
    q = quantized(tmp_path, model, fmt, per_channel)
    compiled = compile_graph(import_model(q))
    assert_bit_exact(q, compiled, zoo.input_shape(model), 8, 4)


def test_resnet18_224_bit_exact_with_onnxruntime(tmp_path):
    """Issue 5, acceptance 2: ResNet-18 at 224x224 (random weights, BatchNorm folded), quantized by
    ONNX Runtime (QDQ, per channel, reduce_range), compiles and runs bit-exact."""
    from accelsim import zoo

    model = zoo.build("resnet18", fold_bn=True)
    q = quantized(tmp_path, model, "QDQ", True)
    compiled = compile_graph(import_model(q))
    x = np.random.default_rng(10).normal(0, 1, (1, 3, 224, 224)).astype(np.float32)
    out, report = compiled.run({"input": x})
    np.testing.assert_array_equal(out["output"], session(q).run(None, {"input": x})[0])
    assert report.total_macs == 1_814_073_344  # ResNet-18's multiply-accumulates at 224 x 224
    assert sum(s.cycles for s in report.segments) == report.cycles


@pytest.mark.parametrize("fmt", ["QDQ", "QOperator"])
def test_depthwise_separable_bit_exact(tmp_path, fmt):
    from accelsim import zoo

    model = zoo.build("dw_separable", fold_bn=True)
    q = quantized(tmp_path, model, fmt, True)
    compiled = compile_graph(import_model(q))
    assert_bit_exact(q, compiled, zoo.input_shape(model), 13, 4)


def test_mobilenetv2_bit_exact_with_onnxruntime(tmp_path):
    """MobileNetV2 (depthwise convolutions, ReLU6, residual adds without activation) at 96 x 96."""
    from accelsim import zoo

    model = zoo.build("mobilenetv2", input_size=96, fold_bn=True)
    q = quantized(tmp_path, model, "QDQ", True)
    compiled = compile_graph(import_model(q))
    x = np.random.default_rng(14).normal(0, 1, (1, 3, 96, 96)).astype(np.float32)
    out, _ = compiled.run({"input": x})
    np.testing.assert_array_equal(out["output"], session(q).run(None, {"input": x})[0])


@pytest.mark.parametrize("weights", ["auto", "dense", "bitmask", "rle", "codebook"])
def test_compressed_weights_bit_exact_and_counted(tmp_path, weights):
    """Issue 5, acceptance 4: with 70% of the weights pruned, every weight format runs bit-exact,
    and the report's DRAM weight bytes are the compressed sizes stored in the program."""
    from accelsim.compiler import layer_table

    model = float_model(seed=7)
    rng = np.random.default_rng(7)
    for init in model.graph.initializer:
        if init.name.startswith("w"):
            w = numpy_helper.to_array(init).copy()
            w[rng.random(w.shape) < 0.7] = 0
            init.CopyFrom(numpy_helper.from_array(w, init.name))
    q = quantized(tmp_path, model, "QDQ", True)
    compiled = compile_graph(import_model(q), weights=weights)
    x = rng.normal(0, 1, (1, 3, 9, 9)).astype(np.float32)
    out, report = compiled.run({"input": x})
    np.testing.assert_array_equal(out["output"], session(q).run(None, {"input": x})[0])
    rows = layer_table(compiled, report)
    for r, layer in zip(rows, compiled.layers):
        assert r.dram_weight_bytes == layer.weight_bytes
        if weights == "auto":
            assert layer.weight_formats != ["dense"]                  # pruned weights are compressed
            assert layer.weight_bytes < layer.dense_weight_bytes
        elif weights != "codebook":
            assert layer.weight_formats == [weights]


def test_softmax_runs_on_the_host_and_is_reported(tmp_path):
    """An op the chip does not run (Softmax after the last DequantizeLinear) runs on the host."""
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static

    from accelsim.compiler import layer_table

    model = float_model(seed=11)
    fc = next(n for n in model.graph.node if n.op_type == "Gemm")
    fc.output[0] = "logits"
    model.graph.node.append(helper.make_node("Softmax", ["logits"], ["output"], axis=1, name="softmax"))
    onnx.save(model, tmp_path / "f.onnx")
    rng = np.random.default_rng(0)

    class Reader(CalibrationDataReader):
        def __init__(self):
            r = np.random.default_rng(0)
            self.it = iter([{"input": r.normal(0, 1, (1, 3, 9, 9)).astype(np.float32)} for _ in range(8)])

        def get_next(self):
            return next(self.it, None)

    quantize_static(str(tmp_path / "f.onnx"), str(tmp_path / "q.onnx"), Reader(), quant_format=QuantFormat.QDQ,
                    per_channel=True, reduce_range=True, activation_type=QuantType.QUInt8,
                    weight_type=QuantType.QInt8, op_types_to_quantize=["Conv", "Gemm", "Relu", "Flatten"])
    q = onnx.load(str(tmp_path / "q.onnx"))
    compiled = compile_graph(import_model(q))
    x = rng.normal(0, 1, (1, 3, 9, 9)).astype(np.float32)
    out, report = compiled.run({"input": x})
    ref = session(q).run(None, {"input": x})[0]
    np.testing.assert_allclose(out["output"], ref, rtol=1e-6, atol=1e-7)  # float softmax: host vs ORT
    assert abs(out["output"].sum() - 1) < 1e-5
    rows = layer_table(compiled, report)
    assert rows[-1].op == "Softmax" and rows[-1].where == "host"
    assert all(r.where == "chip" for r in rows[:-1])
    # a Relu left unquantized sits between DequantizeLinear and QuantizeLinear: ONNX Runtime runs
    # it in float, the chip as a 256-entry table Q(relu(DQ(x))) -- the same integers
    quantize_static(str(tmp_path / "f.onnx"), str(tmp_path / "q2.onnx"), Reader(), quant_format=QuantFormat.QDQ,
                    per_channel=True, reduce_range=True, activation_type=QuantType.QUInt8,
                    weight_type=QuantType.QInt8, op_types_to_quantize=["Conv", "Gemm", "Flatten"])
    q2 = onnx.load(str(tmp_path / "q2.onnx"))
    graph = import_model(q2)
    assert any(n.op_type == "Relu" and type(n).__name__ == "QLut" for n in graph.nodes)
    compiled = compile_graph(graph)
    sess = session(q2)
    for _ in range(4):  # the output is the host's float Softmax: equal to float32 rounding
        x = rng.normal(0, 1, (1, 3, 9, 9)).astype(np.float32)
        np.testing.assert_allclose(compiled.run({"input": x})[0]["output"], sess.run(None, {"input": x})[0],
                                   rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("fmt", ["QDQ", "QOperator"])
def test_concat_requantizes_and_grouped_conv_uses_slices(tmp_path, fmt):
    """Concat requantizes inputs whose scale differs by ONNX Runtime's own table rule (QLinearConcat,
    VLUT) and copies the others; a grouped conv runs as one GEMM layer per group on channel slices."""
    from accelsim import zoo

    graph = import_model(quantized(tmp_path, zoo.build("concat_branches"), fmt, True))
    concat = next(n for n in graph.nodes if type(n).__name__ == "QConcat")
    y = graph.tensors[concat.output]
    same = [(graph.tensors[t].scale, graph.tensors[t].zero_point) == (y.scale, y.zero_point) for t in concat.inputs]
    assert any(same) and not all(same)
    words = compile_graph(graph).program.words
    from isa import decode_program

    ops = [i.op for i in decode_program(words)]
    assert "VLUT" in ops and "VMAX" in ops
    graph = import_model(quantized(tmp_path, zoo.build("grouped_conv"), fmt, True))
    compiled = compile_graph(graph)
    setwins = [i for i in decode_program(compiled.program.words) if i.op == "SETWIN"]
    assert len(setwins) == 4 and all(i.args["in_c"] == 16 for i in setwins)  # four groups of 4 of 16 channels


def qdq_single(op_nodes: list, shape, out_shape, s_in=0.05, z_in=120, s_out=0.04, z_out=100, dtype=TensorProto.UINT8,
               inits=()) -> onnx.ModelProto:
    """input -> Q -> DQ -> op_nodes (reading "x", writing "y") -> Q -> DQ -> output."""
    npd = np.uint8 if dtype == TensorProto.UINT8 else np.int8
    consts = [numpy_helper.from_array(np.array(v, dt), n) for n, v, dt in
              (("s_in", s_in, np.float32), ("z_in", z_in, npd), ("s_out", s_out, np.float32), ("z_out", z_out, npd))]
    nodes = [helper.make_node("QuantizeLinear", ["input", "s_in", "z_in"], ["xq"], name="q_in"),
             helper.make_node("DequantizeLinear", ["xq", "s_in", "z_in"], ["x"], name="dq_in"),
             *op_nodes,
             helper.make_node("QuantizeLinear", ["y", "s_out", "z_out"], ["yq"], name="q_out"),
             helper.make_node("DequantizeLinear", ["yq", "s_out", "z_out"], ["output"], name="dq_out")]
    g = helper.make_graph(nodes, "single", [helper.make_tensor_value_info("input", TensorProto.FLOAT, shape)],
                          [helper.make_tensor_value_info("output", TensorProto.FLOAT, out_shape)],
                          consts + list(inits))
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])
    m.ir_version = 10
    return m


def avgpool_reference(q: np.ndarray, k, s, pads, include_pad, s_in, z_in, s_out, z_out, qmin=0, qmax=255):
    """accelsim's documented AveragePool rule, written independently from exact integer window sums
    S of (x - z_in): with the same quantization in and out, S / count rounded half to even (in
    exact rational arithmetic) + z_out; otherwise rint(float32(S) * float32(s_in / (s_out * count)))
    + z_out; saturated."""
    from fractions import Fraction

    n, c, h, w = q.shape
    oh = (h + pads[0] + pads[2] - k[0]) // s[0] + 1
    ow = (w + pads[1] + pads[3] - k[1]) // s[1] + 1
    y = np.zeros((n, c, oh, ow), np.int64)
    for i in range(oh):
        for j in range(ow):
            r0, c0 = i * s[0] - pads[0], j * s[1] - pads[1]
            rs, cs = slice(max(r0, 0), min(r0 + k[0], h)), slice(max(c0, 0), min(c0 + k[1], w))
            total = (q[:, :, rs, cs].astype(np.int64) - z_in).sum(axis=(2, 3))
            count = k[0] * k[1] if include_pad else (rs.stop - rs.start) * (cs.stop - cs.start)
            if (s_in, z_in) == (s_out, z_out):
                y[:, :, i, j] = [[round(Fraction(int(t), count)) + z_out for t in row] for row in total]
            else:
                scale = np.float32(s_in) / (np.float32(s_out) * np.float32(count))
                y[:, :, i, j] = np.rint(total.astype(np.float32) * scale).astype(np.int64) + z_out
    return np.clip(y, qmin, qmax)


@pytest.mark.parametrize("k, s, pads, include_pad", [((3, 3), (2, 2), (1, 1, 1, 1), 0), ((3, 3), (1, 1), (1, 0, 2, 1), 1),
                                                     ((2, 3), (2, 1), (0, 1, 1, 0), 0), ((5, 5), (3, 3), (2, 2, 2, 2), 0)])
def test_average_pool_rule_and_onnxruntime(k, s, pads, include_pad):
    """AveragePool on the chip follows the documented rule exactly; ONNX Runtime sums float32
    dequantized values one by one and differs from it by at most 1 on a small fraction of outputs."""
    from isa.quant import quantize

    h, w = 13, 11
    oh, ow = (h + pads[0] + pads[2] - k[0]) // s[0] + 1, (w + pads[1] + pads[3] - k[1]) // s[1] + 1
    for s_out, z_out in ((0.05, 120), (0.031, 97)):  # same quantization as the input, and another
        node = helper.make_node("AveragePool", ["x"], ["y"], kernel_shape=list(k), strides=list(s), pads=list(pads),
                                count_include_pad=include_pad, name="pool")
        m = qdq_single([node], [1, 5, h, w], [1, 5, oh, ow], s_out=s_out, z_out=z_out)
        compiled = compile_graph(import_model(m))
        sess = session(m)
        rng = np.random.default_rng(21)
        diffs = total = 0
        for _ in range(4):
            x = rng.normal(0, 3, (1, 5, h, w)).astype(np.float32)
            out = compiled.run({"input": x})[0]["output"]
            qx = quantize(x, np.float32(0.05), 120, "u8")
            expect = avgpool_reference(qx, k, s, pads, include_pad, 0.05, 120, s_out, z_out)
            np.testing.assert_array_equal(np.rint(out / np.float32(s_out)).astype(np.int64) + z_out, expect)
            diffs += lsb_differences(out, sess.run(None, {"input": x})[0], s_out)
            total += out.size
        assert diffs <= 0.02 * total, f"{diffs} of {total} outputs differ from ONNX Runtime"


def test_average_pool_over_the_whole_image_equals_onnxruntime():
    """Where ONNX Runtime falls back to its global-average-pool kernel (window = image, no pads),
    it sums integers as the chip does: equal bit for bit."""
    node = helper.make_node("AveragePool", ["x"], ["y"], kernel_shape=[7, 9], name="pool")
    m = qdq_single([node], [1, 6, 7, 9], [1, 6, 1, 1], s_out=0.011, z_out=131)
    compiled = compile_graph(import_model(m))
    sess = session(m)
    rng = np.random.default_rng(4)
    for _ in range(20):
        x = rng.normal(0, 2, (1, 6, 7, 9)).astype(np.float32)
        np.testing.assert_array_equal(compiled.run({"input": x})[0]["output"], sess.run(None, {"input": x})[0])


@pytest.mark.parametrize("op, attrs, inits", [
    ("LeakyRelu", {"alpha": 0.1}, ()),
    ("Relu", {}, ()),
    ("Clip", {}, (numpy_helper.from_array(np.array(-0.5, np.float32), "lo"),
                  numpy_helper.from_array(np.array(1.5, np.float32), "hi"))),
    ("MaxPool", {"kernel_shape": [3, 3], "strides": [2, 2], "pads": [1, 1, 1, 1]}, ()),
])
def test_table_ops_between_dq_and_q_bit_exact(op, attrs, inits):
    """Standalone activations, and a MaxPool whose output is requantized, run through the chip's
    lookup table Q(f(DQ(x))) and equal ONNX Runtime's float path bit for bit."""
    ins = ["x", "lo", "hi"] if op == "Clip" else ["x"]
    node = helper.make_node(op, ins, ["y"], name="op", **attrs)
    out_shape = [1, 4, 5, 6] if op == "MaxPool" else [1, 4, 9, 11]
    m = qdq_single([node], [1, 4, 9, 11], out_shape, s_out=0.023, z_out=17, inits=inits)
    graph = import_model(m)
    assert any(type(n).__name__ == "QLut" for n in graph.nodes)
    compiled = compile_graph(graph)
    sess = session(m)
    rng = np.random.default_rng(8)
    for _ in range(6):
        x = rng.normal(0, 3, (1, 4, 9, 11)).astype(np.float32)
        np.testing.assert_array_equal(compiled.run({"input": x})[0]["output"], sess.run(None, {"input": x})[0])


@pytest.mark.parametrize("fmt", ["QDQ", "QOperator"])
def test_asym_pad_model_within_one_lsb(tmp_path, fmt):
    """Asymmetric pads, a dilated conv and AveragePool (count_include_pad=0): the convolutions are
    exact, and only the AveragePool may differ from ONNX Runtime (by 1, rarely; see numerics.md)."""
    from accelsim import zoo

    model = zoo.build("asym_pad")
    q = quantized(tmp_path, model, fmt, True)
    graph = import_model(q)
    compiled = compile_graph(graph)
    sess = session(q)
    s_out = graph.tensors[graph.outputs["output"]].scale
    rng = np.random.default_rng(13)
    diffs = total = 0
    for _ in range(4):
        x = rng.normal(0, 1, zoo.input_shape(model)).astype(np.float32)
        ref = sess.run(None, {"input": x})[0]
        diffs, total = diffs + lsb_differences(compiled.run({"input": x})[0]["output"], ref, s_out), total + ref.size
    assert diffs <= 0.02 * total


def test_graph_starting_with_maxpool():
    """The first lowered node may be a pool, not a layer (regression: there is no previous node)."""
    from accelsim.compiler.ir import QGraph, QMaxPool, QTensor

    g = QGraph()
    g.tensors["x"] = QTensor("x", (1, 3, 7, 7), "u8", np.float32(0.1), 3)
    g.tensors["y"] = QTensor("y", (1, 3, 3, 3), "u8", np.float32(0.1), 3)
    g.nodes.append(QMaxPool("pool0", "MaxPool", "x", "y", (3, 3), (2, 2), (0, 0, 0, 0)))
    g.inputs, g.outputs, g.graph_outputs = {"input": "x"}, {"output": "y"}, ["output"]
    compiled = compile_graph(g)
    x = np.random.default_rng(15).normal(0, 1, (1, 3, 7, 7)).astype(np.float32)
    out, _ = compiled.run({"input": x})
    qx = np.clip(np.rint(x / np.float32(0.1)) + 3, 0, 255)
    windows = np.stack([qx[:, :, i:i + 5:2, j:j + 5:2] for i in range(3) for j in range(3)])
    expect = (windows.max(axis=0) - 3).astype(np.float32) * np.float32(0.1)
    np.testing.assert_array_equal(out["output"], expect)


def layout_model(transpose: bool, flat_output: bool, seed: int = 0) -> onnx.ModelProto:
    """Conv -> Relu -> [Transpose to NHWC] -> Flatten -> [Gemm]."""
    rng = np.random.default_rng(seed)
    nodes = [helper.make_node("Conv", ["input", "w1", "b1"], ["c1"], pads=[1, 1, 1, 1], name="conv1"),
             helper.make_node("Relu", ["c1"], ["r1"], name="relu1")]
    x = "r1"
    if transpose:
        nodes.append(helper.make_node("Transpose", ["r1"], ["t"], perm=[0, 2, 3, 1], name="to_nhwc"))
        x = "t"
    nodes.append(helper.make_node("Flatten", [x], ["output" if flat_output else "f"], name="flat"))
    inits = [numpy_helper.from_array(rng.normal(0, 0.3, (6, 3, 3, 3)).astype(np.float32), "w1"),
             numpy_helper.from_array(rng.normal(0, 0.1, 6).astype(np.float32), "b1")]
    if not flat_output:
        nodes.append(helper.make_node("Gemm", ["f", "w2", "b2"], ["output"], transB=1, name="fc"))
        inits += [numpy_helper.from_array(rng.normal(0, 0.1, (10, 150)).astype(np.float32), "w2"),
                  numpy_helper.from_array(rng.normal(0, 0.1, 10).astype(np.float32), "b2")]
    g = helper.make_graph(nodes, "layout", [helper.make_tensor_value_info("input", TensorProto.FLOAT, [1, 3, 5, 5])],
                          [helper.make_tensor_value_info("output", TensorProto.FLOAT, None)], inits)
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])
    m.ir_version = 10
    return m


@pytest.mark.parametrize("fmt", ["QDQ", "QOperator"])
@pytest.mark.parametrize("transpose, flat_output", [(True, False), (False, True), (True, True)])
def test_transpose_to_nhwc_and_flattened_outputs(tmp_path, fmt, transpose, flat_output):
    """A Transpose NCHW -> NHWC before Flatten is the chip's own order (no weight permutation);
    a flattened NCHW graph output is put back into the model's order on the host."""
    q = quantized(tmp_path, layout_model(transpose, flat_output), fmt, True)
    compiled = compile_graph(import_model(q))
    assert_bit_exact(q, compiled, (1, 3, 5, 5), 3, 3)


def test_layout_changes_the_chip_cannot_take(tmp_path):
    m = layout_model(True, False)
    node = next(n for n in m.graph.node if n.op_type == "Transpose")
    del node.attribute[:]
    node.attribute.append(helper.make_attribute("perm", [0, 1, 3, 2]))
    m.graph.node.remove(next(n for n in m.graph.node if n.op_type == "Gemm"))
    flat = next(n for n in m.graph.node if n.op_type == "Flatten")
    flat.output[0] = "output"
    q = quantized(tmp_path, m, "QDQ", True)
    with pytest.raises(ModelError, match="perm") as e:
        import_model(q)
    assert e.value.op_type == "Transpose" and e.value.node == "to_nhwc"


@pytest.mark.parametrize("fmt, reduce_range", [("QOperator", False), ("QOperator", True), ("QDQ", True)])
@pytest.mark.parametrize("name", ["small_cnn", "residual_odd", "dw_separable"])
def test_signed_activations_bit_exact(tmp_path, fmt, reduce_range, name):
    """s8 activations: QOperator s8 x s8 nodes are exact integer arithmetic in ONNX Runtime even with
    full-range weights; int8 QDQ models (which ONNX Runtime rewrites to u8 on x86) with reduce_range."""
    from accelsim import zoo

    model = zoo.build(name, fold_bn=True)
    q = quantized(tmp_path, model, fmt, True, activation="QInt8", reduce_range=reduce_range)
    graph = import_model(q)
    assert graph.tensors[graph.inputs["input"]].dtype == "s8"
    assert_bit_exact(q, compiled := compile_graph(graph), zoo.input_shape(model), 17, 3)
    assert all(layer.bits.endswith("s8") for layer in compiled.layers if layer.op == "Conv")


def one_conv(cin: int, cout: int, group: int = 1, seed: int = 0) -> onnx.ModelProto:
    """A single 3x3 conv at opset 21 (int4 and 16-bit QDQ)."""
    rng = np.random.default_rng(seed)
    w = rng.normal(0, 1 / np.sqrt(9 * cin / group), (cout, cin // group, 3, 3)).astype(np.float32)
    g = helper.make_graph([helper.make_node("Conv", ["input", "w", "b"], ["output"], pads=[1] * 4, group=group,
                                            name="conv")], "one",
                          [helper.make_tensor_value_info("input", TensorProto.FLOAT, [1, cin, 12, 12])],
                          [helper.make_tensor_value_info("output", TensorProto.FLOAT, [1, cout, 12, 12])],
                          [numpy_helper.from_array(w, "w"),
                           numpy_helper.from_array(rng.normal(0, 0.1, cout).astype(np.float32), "b")])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 21)])
    m.ir_version = 10
    return m


def exact_conv_reference(graph, x: np.ndarray) -> np.ndarray:
    """The exact integer reference of a one-conv graph: quantize, int64 convolution of (x - z_x) and
    (w - z_w), plus bias, then the documented fp32 requantization (isa.requant.requant_fp32)."""
    from isa.quant import dequantize, qrange, quantize
    from isa.requant import requant_fp32

    (conv,) = graph.nodes
    xt, yt = graph.tensors[conv.input], graph.tensors[conv.output]
    qx = quantize(x, xt.scale, xt.zero_point, xt.dtype).astype(np.int64) - xt.zero_point
    qx = np.pad(qx, ((0, 0), (0, 0), (1, 1), (1, 1)))
    w = conv.weight.astype(np.int64) - conv.w_zero_point
    n, cg = w.shape[0], w.shape[1]
    h, wd = x.shape[2], x.shape[3]
    acc = np.zeros((1, n, h, wd), np.int64)
    for o in range(n):
        g0 = (o // (n // conv.group)) * cg
        for i in range(3):
            for j in range(3):
                acc[0, o] += np.einsum("chw,c->hw", qx[0, g0:g0 + cg, i:i + h, j:j + wd], w[o, :, i, j])
    scale = (np.float32(xt.scale) * conv.w_scale.astype(np.float32)) / np.float32(yt.scale)
    lo, hi = qrange(yt.dtype)
    y = requant_fp32((acc + conv.bias[None, :, None, None]).transpose(0, 2, 3, 1), scale, yt.zero_point, lo, hi)
    return dequantize(y.transpose(0, 3, 1, 2), yt.scale, yt.zero_point)


@pytest.mark.parametrize("activation, weight", [("QUInt8", "QInt4"), ("QUInt16", "QInt8"), ("QInt16", "QInt16"),
                                                ("QUInt16", "QInt4")])
@pytest.mark.parametrize("cin, cout, group", [(16, 16, 1), (48, 24, 1), (32, 32, 32)])
def test_int4_and_16_bit_layers_exact_and_within_one_lsb_of_onnxruntime(tmp_path, activation, weight, cin, cout, group):
    """int4-weight and 16-bit QDQ layers: ONNX Runtime runs them as float convolutions between
    DequantizeLinear and QuantizeLinear (float32 sums, rounded at every add), the chip as exact
    integers.  The chip equals the exact integer reference; ONNX Runtime is within 1 LSB of it on
    a small fraction of outputs (measured here: at most about 0.15%)."""
    q = quantized(tmp_path, one_conv(cin, cout, group), "QDQ", True, activation=activation, weight=weight,
                  reduce_range=False)
    graph = import_model(q)
    compiled = compile_graph(graph)
    sess = session(q)
    s_out = graph.tensors[graph.outputs["output"]].scale
    rng = np.random.default_rng(5)
    diffs = total = 0
    for _ in range(4):
        x = rng.normal(0, 1, (1, cin, 12, 12)).astype(np.float32)
        out = compiled.run({"input": x})[0]["output"]
        np.testing.assert_array_equal(out, exact_conv_reference(graph, x))
        diffs, total = diffs + lsb_differences(out, sess.run(None, {"input": x})[0], s_out), total + out.size
    assert diffs <= 0.005 * total, f"{diffs} of {total} outputs differ from ONNX Runtime"


@pytest.mark.parametrize("fmt", ["QDQ", "QOperator"])
@pytest.mark.parametrize("name", ["residual_odd", "dw_separable"])
def test_unfolded_batchnorm_bit_exact(tmp_path, fmt, name):
    """A BatchNormalization left in the quantized model runs in float between DequantizeLinear and
    QuantizeLinear in ONNX Runtime; the chip runs it as one 256-entry table per channel built with
    ONNX Runtime's float arithmetic (batch_norm.h), and equals it bit for bit."""
    from accelsim import zoo

    model = zoo.build(name, fold_bn=False)
    assert any(n.op_type == "BatchNormalization" for n in model.graph.node)
    q = quantized(tmp_path, model, fmt, True)
    graph = import_model(q)
    tables = [n for n in graph.nodes if n.op_type == "BatchNormalization"]
    assert tables and all(n.table.shape == (graph.tensors[n.input].shape[1], 256) for n in tables)
    compiled = compile_graph(graph)
    if not graph.host_nodes:
        assert_bit_exact(q, compiled, zoo.input_shape(model), 19, 4)
        return
    # QOperator leaves the last BatchNormalization in float after the last DequantizeLinear: the host
    # runs it (onnx's reference evaluator), to float32 rounding of ONNX Runtime's own
    assert graph.host_nodes[0].op_type == "BatchNormalization"
    sess, rng = session(q), np.random.default_rng(19)
    for _ in range(3):
        x = rng.normal(0, 1, zoo.input_shape(model)).astype(np.float32)
        np.testing.assert_allclose(compiled.run({"input": x})[0]["output"], sess.run(None, {"input": x})[0],
                                   rtol=1e-5, atol=1e-6)


def test_a_tensor_quantized_twice_is_one_tensor(tmp_path):
    """ONNX Runtime's DedicatedQDQPair gives each consumer of a tensor its own QuantizeLinear: the
    second one is the same tensor (it used to be a tensor nobody wrote)."""
    rng = np.random.default_rng(0)
    w = lambda name, *s: numpy_helper.from_array(rng.normal(0, .3, s).astype(np.float32), name)  # noqa: E731
    nodes = [helper.make_node("Conv", ["input", "w1"], ["c1"], pads=[1] * 4, name="conv1"),
             helper.make_node("Relu", ["c1"], ["r1"], name="relu1"),
             helper.make_node("Conv", ["r1", "w2"], ["c2"], pads=[1] * 4, name="conv2"),
             helper.make_node("Conv", ["r1", "w3"], ["c3"], pads=[1] * 4, name="conv3"),
             helper.make_node("Add", ["c2", "c3"], ["output"], name="add")]
    g = helper.make_graph(nodes, "d", [helper.make_tensor_value_info("input", TensorProto.FLOAT, [1, 3, 8, 8])],
                          [helper.make_tensor_value_info("output", TensorProto.FLOAT, [1, 4, 8, 8])],
                          [w("w1", 4, 3, 3, 3), w("w2", 4, 4, 3, 3), w("w3", 4, 4, 3, 3)])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])
    m.ir_version = 10
    q = quantized(tmp_path, m, "QDQ", False, extra_options={"DedicatedQDQPair": True})
    assert sum(n.op_type == "QuantizeLinear" and n.input[0] == "r1" for n in q.graph.node) == 2
    assert_bit_exact(q, compile_graph(import_model(q)), (1, 3, 8, 8), 2, 3)


def test_reshapes_that_reorder_nhwc_data_are_refused():
    """A spatial tensor reshaped to any rank but a 2-D flatten (or back) would change element order."""
    from accelsim.compiler.ir import QGraph, QReshape, QTensor

    g = QGraph()
    g.tensors["x"] = QTensor("x", (1, 4, 3, 3), "u8", np.float32(0.1), 3)
    g.tensors["y"] = QTensor("y", (1, 4, 9), "u8", np.float32(0.1), 3)
    g.nodes.append(QReshape("reshape", "Reshape", "x", "y"))
    g.inputs, g.outputs, g.graph_outputs = {"input": "x"}, {"output": "y"}, ["output"]
    with pytest.raises(ModelError, match="element order") as e:
        compile_graph(g)
    assert e.value.node == "reshape"
