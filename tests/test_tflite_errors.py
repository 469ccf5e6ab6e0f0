"""Bad TFLite input gets one typed error naming what is wrong and where (op, index, tensor); the CLI
prints one line and exits 2."""

from __future__ import annotations

import numpy as np
import pytest

from accelsim.cli import main
from accelsim.compiler import ModelError
from accelsim.compiler.tflite import TFLiteCompiler, parse_tflite

from .tflite_build import Model, Op, single_layer


def _compile(raw: bytes, engine: str = "litert"):
    return TFLiteCompiler(parse_tflite(raw), engine=engine).compile()


def test_unsupported_op_names_op_index_and_tensor():
    m = Model()
    x = m.tensor("x", (1, 4), "int8", 0.1, 0)
    y = m.tensor("tanh_out", (1, 4), "int8", 1 / 128, 0)
    m.op(Op.TANH, [x], [y])
    m.inputs, m.outputs = [x], [y]
    with pytest.raises(ModelError, match=r"TANH#0 'tanh_out'.*unsupported op"):
        _compile(m.build())


def test_float_layers_are_refused():
    m = Model()
    x = m.tensor("x", (1, 4), "float32")
    w = m.tensor("w", (3, 4), "float32", data=np.ones((3, 4), np.float32))
    y = m.tensor("y", (1, 3), "float32")
    m.op(Op.FULLY_CONNECTED, [x, w], [y])
    m.inputs, m.outputs = [x], [y]
    with pytest.raises(ModelError, match="float input 'x' is not read by exactly one QUANTIZE"):
        _compile(m.build())


def test_bad_inputs_are_refused_before_the_chip_runs():
    raw = single_layer("conv", np.random.default_rng(0))
    compiled = _compile(raw)
    with pytest.raises(ModelError, match="holds float32 values; this model takes s8 codes"):
        compiled.run({"x": np.zeros((1, 7, 9, 5), np.float32)})
    with pytest.raises(ModelError, match="outside s8's -128..127"):
        compiled.run({"x": np.full((1, 7, 9, 5), 300, np.int32)})
    with pytest.raises(ModelError, match="the file declares"):
        compiled.run({"x": np.zeros((1, 7, 9, 4), np.int8)})
    with pytest.raises(ValueError, match="engine 'tflite'"):
        TFLiteCompiler(parse_tflite(raw), engine="tflite")


def test_cli_prints_one_line_and_exits_2(tmp_path, capsys):
    raw = single_layer("conv", np.random.default_rng(0))
    bad = tmp_path / "trunc.tflite"
    bad.write_bytes(raw[:300])
    np.save(tmp_path / "x.npy", np.zeros((1, 7, 9, 5), np.int8))
    assert main(["run", str(bad), "--input", str(tmp_path / "x.npy")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "truncated or corrupt" in err[0]
    good = tmp_path / "conv.tflite"
    good.write_bytes(raw)
    assert main(["run", str(good), "--input", str(tmp_path / "x.npy"), "--engine", "onnxruntime"]) == 2
    assert "is a TFLite model" in capsys.readouterr().err
    y = tmp_path / "y.npy"
    assert main(["run", str(good), "--input", str(tmp_path / "x.npy"), "--output", str(y), "--engine", "tflm"]) == 0
    out = np.load(y)
    assert out.dtype == np.int8 and out.shape == (1, 7, 9, 6)


def test_int8_concatenation_of_other_quantizations_is_refused_as_litert_does():
    from .tflite_build import concat_model

    raw = concat_model(np.random.default_rng(2), [(1, 3, 3, 2), (1, 3, 3, 4)], 3, dtype="int8", same_quant=False)
    with pytest.raises(ModelError, match="CONCATENATION#0.*quantized apart from the output"):
        _compile(raw)
