"""A TFLite model in the co-design and eval commands: its float network (weights dequantized, NCHW
inside) computes what the int8 file does, up to the file's own rounding; codesign searches it."""

from __future__ import annotations

import json

import numpy as np
import pytest

from accelsim.cli import main
from accelsim.compiler.tflite import parse_tflite
from accelsim.compiler.tflite.to_onnx import float_onnx

from .litert_ref import reference
from .ort_models import session
from .tflite_build import binary_model, mean_model, pool_model, single_layer, small_cnn

MODELS = {
    "conv": lambda rng: single_layer("conv", rng, act="relu"),
    "dw": lambda rng: single_layer("dw", rng, c=6, multiplier=2),
    "fc": lambda rng: single_layer("fc", rng, n=40),
    "add": lambda rng: binary_model("ADD", rng, (1, 4, 4, 3), (3,), const_b=True),
    "avgpool": lambda rng: pool_model("avg", rng, (1, 7, 9, 5), (3, 3), (2, 2)),
    "mean": lambda rng: mean_model(rng, (1, 5, 5, 8), (1, 2), True),
    "cnn": lambda rng: small_cnn(rng),
}


@pytest.mark.parametrize("kind", sorted(MODELS))
def test_float_model_computes_what_the_int8_file_does(kind):
    """On dequantized inputs the float model's outputs lie within one output step of LiteRT's
    reference kernels for one layer (where those do not saturate), within 8 of 256 steps for the
    five-layer CNN (each int8 layer rounds): the same network, without its rounding."""
    rng = np.random.default_rng(len(kind))
    raw = MODELS[kind](rng)
    f = parse_tflite(raw)
    sg = f.main
    xt, yt = sg.tensors[sg.inputs[0]], sg.tensors[sg.outputs[0]]
    q = np.clip(xt.zero_point[0] + rng.integers(-40, 40, size=xt.shape), -128, 127).astype(np.int8)
    x = ((q.astype(np.float32) - xt.zero_point[0]) * xt.scale[0]).astype(np.float32)
    codes = reference(raw, {xt.name: q}, "litert-ref")[yt.name].astype(np.float32)
    inside = (codes > -128) & (codes < 127)
    got = session(float_onnx(f)).run(None, {xt.name: x.transpose(0, 3, 1, 2) if x.ndim == 4 else x})[0]
    got = got.transpose(0, 2, 3, 1) if got.ndim == 4 else got
    steps = np.abs(got - (codes - yt.zero_point[0]) * yt.scale[0]) / yt.scale[0]
    bound = 8.0 if kind == "cnn" else 1.0
    assert inside.sum() >= 4 and steps[inside].max() <= bound, float(steps[inside].max())


def test_stateful_models_are_refused_by_codesign_with_the_op(tmp_path):
    from accelsim.compiler import ModelError

    from .tflite_build import Model, Op
    m = Model()
    r = m.tensor("r", (1,), "int32")
    m.op(Op.VAR_HANDLE, [], [r])
    m.inputs, m.outputs = [], [r]
    with pytest.raises(ModelError, match="VAR_HANDLE#0.*stateful"):
        float_onnx(parse_tflite(m.build()))


def test_codesign_and_eval_take_a_tflite_model(tmp_path, capsys):
    rng = np.random.default_rng(5)
    path = tmp_path / "cnn.tflite"
    path.write_bytes(small_cnn(rng))
    codes = rng.integers(-128, 128, size=(24, 12, 12, 3)).astype(np.int8)
    np.save(tmp_path / "codes.npy", codes)
    assert main(["eval", str(path), "--data", str(tmp_path / "codes.npy"), "--batch", "8", "--quiet",
                 "--engine", "litert-builtin", "--json", str(tmp_path / "eval.json")]) == 0
    ev = json.loads((tmp_path / "eval.json").read_text())
    assert ev["ort_equal_fraction"] == 1.0 and ev["reference"] == "litert-builtin" and ev["n"] == 24
    floats = ((codes.astype(np.float32) + 10) * 0.02).astype(np.float32)  # the input's scale and zero point
    np.save(tmp_path / "x.npy", floats)
    out = tmp_path / "cd"
    assert main(["codesign", str(path), "--calib", str(tmp_path / "x.npy"), "--data", str(tmp_path / "x.npy"),
                 "--points", "2", "--quiet", "--out", str(out), "--search-ends"]) == 0
    result = json.loads((out / "frontier.json").read_text())
    assert result["points"] and len(result["layers"]) == 4  # conv, depthwise, conv, fully connected
    assert "measured on the chip" in capsys.readouterr().out
