"""Bad models and bad input arrays: the CLI prints one line on stderr naming the file, the node
(by name, or by op type and index when it has none) and the reason, and exits 2; the Python API
raises ModelError with the same text.  Never a traceback."""

from __future__ import annotations


import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from accelsim import cli
from accelsim.compiler import ModelError, compile_model

from .ort_models import ORT_IR_VERSION


def qdq_conv(scale: float = 0.05, zp_type=np.uint8, opset: int = 13, names: bool = True) -> onnx.ModelProto:
    """x (1, 3, 8, 8) -> Q -> DQ -> Conv 3x3 (4 channels, per-channel int8 weights) -> Q -> DQ -> y."""
    rng = np.random.default_rng(0)
    w = rng.integers(-100, 100, (4, 3, 3, 3)).astype(np.int8)
    inits = [numpy_helper.from_array(np.float32(scale), "s_x"), numpy_helper.from_array(zp_type(3), "z_x"),
             numpy_helper.from_array(w, "w_q"), numpy_helper.from_array(np.full(4, 0.01, np.float32), "s_w"),
             numpy_helper.from_array(np.zeros(4, np.int8), "z_w"),
             numpy_helper.from_array(np.float32(0.1), "s_y"), numpy_helper.from_array(zp_type(5), "z_y")]
    nodes = [helper.make_node("QuantizeLinear", ["x", "s_x", "z_x"], ["xq"], name="q_x"),
             helper.make_node("DequantizeLinear", ["xq", "s_x", "z_x"], ["xf"], name="dq_x"),
             helper.make_node("DequantizeLinear", ["w_q", "s_w", "z_w"], ["wf"], name="dq_w", axis=0),
             helper.make_node("Conv", ["xf", "wf"], ["c"], name="conv", pads=[1, 1, 1, 1]),
             helper.make_node("QuantizeLinear", ["c", "s_y", "z_y"], ["cq"], name="q_c"),
             helper.make_node("DequantizeLinear", ["cq", "s_y", "z_y"], ["y"], name="dq_c")]
    if not names:
        for n in nodes:
            n.name = ""
    g = helper.make_graph(nodes, "conv", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 8, 8])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4, 8, 8])], inits)
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", opset)])
    m.ir_version = ORT_IR_VERSION
    return m


def _init(m: onnx.ModelProto, name: str, value: np.ndarray) -> onnx.ModelProto:
    for i, t in enumerate(m.graph.initializer):
        if t.name == name:
            m.graph.initializer[i].CopyFrom(numpy_helper.from_array(value, name))
    return m


def _cli_error(capsys, tmp_path, model_bytes: bytes, x: np.ndarray | None = None, chip: str | None = None) -> str:
    """Run ``accelsim run`` on the bytes; assert exit 2 and one line on stderr; return it."""
    path = tmp_path / "m.onnx"
    path.write_bytes(model_bytes)
    np.save(tmp_path / "x.npy", np.zeros((1, 3, 8, 8), np.float32) if x is None else x)
    args = ["run", str(path), "--input", str(tmp_path / "x.npy")] + (["--chip", chip] if chip else [])
    capsys.readouterr()
    assert cli.main(args) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err, err
    assert err.startswith("accelsim: error: ")
    return err


def test_the_good_model_runs(capsys, tmp_path):
    """The base of every bad case below compiles and runs (so each refusal is the planted fault)."""
    path = tmp_path / "m.onnx"
    path.write_bytes(qdq_conv().SerializeToString())
    np.save(tmp_path / "x.npy", np.ones((1, 3, 8, 8), np.float32))
    assert cli.main(["run", str(path), "--input", str(tmp_path / "x.npy")]) == 0


@pytest.mark.parametrize("data, reason", [
    (lambda b: b[: len(b) // 2], "not an ONNX file"),
    (lambda b: b"\x89PNG\r\n\x1a\n" + bytes(range(256)), "not an ONNX file"),
    (lambda b: b"name,value\n1,2\n", "not an ONNX file"),
    (lambda b: b"", "not an ONNX file"),
])
def test_truncated_or_foreign_files(capsys, tmp_path, data, reason):
    err = _cli_error(capsys, tmp_path, data(qdq_conv().SerializeToString()))
    assert str(tmp_path / "m.onnx") in err and reason in err


def test_missing_file(capsys, tmp_path):
    capsys.readouterr()
    assert cli.main(["run", str(tmp_path / "none.onnx"), "--input", str(tmp_path / "x.npy")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "none.onnx" in err and "no such file" in err


def test_missing_initializer_names_the_node(capsys, tmp_path):
    m = qdq_conv()
    m.graph.initializer.remove(next(t for t in m.graph.initializer if t.name == "w_q"))
    err = _cli_error(capsys, tmp_path, m.SerializeToString())
    assert "node 'dq_w' (DequantizeLinear)" in err and "'w_q'" in err and "initializer" in err


def test_unknown_op_names_the_node(capsys, tmp_path):
    m = qdq_conv()
    m.graph.node[3].op_type, m.graph.node[3].domain = "Frobnicate", "com.example"
    m.opset_import.append(helper.make_opsetid("com.example", 1))
    err = _cli_error(capsys, tmp_path, m.SerializeToString())
    assert "node 'conv' (Frobnicate)" in err and "unsupported op" in err


@pytest.mark.parametrize("opset", [7, 99])
def test_opsets_the_importer_cannot_take(capsys, tmp_path, opset):
    m = qdq_conv()
    m.opset_import[0].version = opset
    err = _cli_error(capsys, tmp_path, m.SerializeToString())
    assert f"opset {opset}" in err and "version_converter" in err


def test_a_cycle_names_its_nodes(capsys, tmp_path):
    m = qdq_conv()
    m.graph.node[1].input[0] = "cq"  # dq_x reads q_c's output, which depends on dq_x
    err = _cli_error(capsys, tmp_path, m.SerializeToString())
    assert "cycle" in err and "dq_x" in err and "conv" in err and "q_c" in err


def test_a_shape_mismatch_names_the_node(capsys, tmp_path):
    m = _init(qdq_conv(), "w_q", np.zeros((4, 5, 3, 3), np.int8))  # 5 input channels, the input has 3
    err = _cli_error(capsys, tmp_path, m.SerializeToString())
    assert "conv" in err and "Conv" in err and "mismatch" in err


def test_a_dtype_mismatch_names_the_node(capsys, tmp_path):
    m = _init(qdq_conv(), "z_x", np.int8(3))  # q_x now makes int8, dq_x is given ... still int8: fine
    m.graph.node[1].input[2] = "z_y"           # dq_x: int8 data with a uint8 zero point
    err = _cli_error(capsys, tmp_path, m.SerializeToString())
    assert "dq_x" in err and "mismatch" in err


@pytest.mark.parametrize("scale", [0.0, -0.05, np.nan, np.inf])
def test_bad_scales_name_the_node(capsys, tmp_path, scale):
    m = _init(qdq_conv(), "s_y", np.float32(scale))
    err = _cli_error(capsys, tmp_path, m.SerializeToString())
    assert "node 'q_c' (QuantizeLinear)" in err and "'s_y'" in err and "finite and positive" in err


def test_a_bad_per_channel_weight_scale(capsys, tmp_path):
    m = _init(qdq_conv(), "s_w", np.array([0.01, 0.01, 0.0, 0.01], np.float32))
    err = _cli_error(capsys, tmp_path, m.SerializeToString())
    assert "node 'dq_w' (DequantizeLinear)" in err and "finite and positive" in err


def test_zero_points_outside_the_chips_types(capsys, tmp_path):
    """An int32 zero point on an activation (values outside every 8/16-bit type) is refused."""
    m = qdq_conv()
    for name in ("z_x",):
        _init(m, name, np.int32(300))
    err = _cli_error(capsys, tmp_path, m.SerializeToString())
    assert "q_x" in err and ("int32" in err or "s32" in err)


def test_unnamed_nodes_are_named_by_op_type_and_index(capsys, tmp_path):
    m = _init(qdq_conv(names=False), "s_y", np.float32(0))
    err = _cli_error(capsys, tmp_path, m.SerializeToString())
    assert "node 'QuantizeLinear#4' (QuantizeLinear)" in err
    m = qdq_conv(names=False)
    m.graph.node[3].op_type, m.graph.node[3].domain = "Frobnicate", "com.example"
    m.opset_import.append(helper.make_opsetid("com.example", 1))
    assert "node 'Frobnicate#3'" in _cli_error(capsys, tmp_path, m.SerializeToString())


def test_tensors_too_large_for_the_chips_dram(capsys, tmp_path):
    chip = tmp_path / "chip.toml"
    chip.write_text("[dram]\nsize_mib = 1\n")
    x = np.zeros((1, 3, 512, 512), np.float32)  # 768 KiB of u8 input and 1 MiB of output
    m = qdq_conv()
    m.graph.input[0].type.tensor_type.shape.dim[0].dim_param = "N"
    for vi in (m.graph.input[0], m.graph.output[0]):
        for d in vi.type.tensor_type.shape.dim[2:]:
            d.dim_param = "S"
    err = _cli_error(capsys, tmp_path, m.SerializeToString(), x=x, chip=str(chip))
    assert "DRAM" in err and "size_mib" in err


@pytest.mark.parametrize("x, reason", [
    (np.full((1, 3, 8, 8), "a"), "not numbers"),
    (np.zeros((3, 8, 8), np.float32), "shape"),
    (np.zeros((1, 3, 8, 9), np.float32), "shape"),
    (np.full((1, 3, 8, 8), np.nan, np.float32), "NaN"),
    (np.full((1, 3, 8, 8), np.inf, np.float32), "infinite"),
])
def test_bad_input_arrays(capsys, tmp_path, x, reason):
    err = _cli_error(capsys, tmp_path, qdq_conv().SerializeToString(), x=x)
    assert reason in err and "'x'" in err and "m.onnx" in err


def test_python_api_raises_model_error_with_the_same_text():
    m = _init(qdq_conv(), "s_x", np.float32(np.nan))
    with pytest.raises(ModelError, match=r"node 'q_x' \(QuantizeLinear\).*finite and positive"):
        compile_model(m)
    with pytest.raises(ModelError, match="not numbers"):
        compile_model(qdq_conv()).run({"x": np.full((1, 3, 8, 8), "a")})
