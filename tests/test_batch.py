"""Batches: a model runs at any batch N as one program whose GEMMs take the images' pixels as rows
(SETWIN.out_h), equal to ONNX Runtime image by image; images share the weight tiles fetched, so
DRAM weight bytes per image fall with N; one compile per input shape, cached."""

from __future__ import annotations

import json

import numpy as np
import onnx
import pytest

from accelsim import cli, zoo
from accelsim.compiler import ModelCompiler, ModelError, compile_model

from .ort_models import session
from .test_compiler import quantized

SIZES = {"resnet18": 32, "mobilenetv2": 32}


def _q(tmp_path, name, fmt="QDQ"):
    model = zoo.build(name, input_size=SIZES.get(name), fold_bn=True)
    return quantized(tmp_path, model, fmt, True), zoo.input_shape(model)


def _ort_per_image(q, x):
    sess = session(q)
    return np.concatenate([sess.run(None, {"input": xi[None]})[0] for xi in x])


@pytest.mark.parametrize("fmt", ["QDQ", "QOperator"])
@pytest.mark.parametrize("name", ["small_cnn", "dw_separable", "concat_branches", "grouped_conv", "mobilenetv2",
                                  "residual_odd", "mlp"])
def test_any_batch_equals_onnxruntime_image_by_image(tmp_path, name, fmt):
    """The file fixes the batch at 1 (as exporters write it): N images run as one batch."""
    q, shape = _q(tmp_path, name, fmt)
    compiled = compile_model(q)
    rng = np.random.default_rng(3)
    for n in (1, 3, 8):
        x = rng.normal(0, 1, (n,) + shape[1:]).astype(np.float32)
        out, report = compiled.run({"input": x})
        np.testing.assert_array_equal(out["output"], _ort_per_image(q, x))
        assert report.images == n and report.images_per_s == pytest.approx(n / (report.time_us * 1e-6))


def test_a_symbolic_batch_runs_batched_in_onnxruntime_too(tmp_path):
    q, shape = _q(tmp_path, "small_cnn")
    for vi in list(q.graph.input) + list(q.graph.output):
        vi.type.tensor_type.shape.dim[0].dim_param = "N"
    x = np.random.default_rng(4).normal(0, 1, (6,) + shape[1:]).astype(np.float32)
    out, _ = compile_model(q, batch=6).run({"input": x})
    np.testing.assert_array_equal(out["output"], session(q).run(None, {"input": x})[0])


def test_weight_bytes_per_image_fall_with_the_batch(tmp_path):
    """mlp: fully connected layers hold every image's row in one tile, so each weight tile is
    fetched once per batch; a conv net shares its weight tiles across the batch's pixel tiles."""
    for name in ("mlp", "small_cnn"):
        q, shape = _q(tmp_path, name)
        per_image = []
        for n in (1, 4, 16):
            _, rep = compile_model(q, batch=n).run({"input": np.zeros((n,) + shape[1:], np.float32)}, values=False)
            per_image.append(rep.dram_read_bytes["weight"] / n)
        assert per_image[0] > per_image[1] > per_image[2], (name, per_image)
        if name == "mlp":
            assert per_image[2] == pytest.approx(per_image[0] / 16)


def test_one_compile_per_shape_cached(tmp_path):
    q, shape = _q(tmp_path, "small_cnn")
    mc = ModelCompiler(q)
    a = mc.compile(batch=2)
    assert mc.compile(batch=2) is a and mc.compile(batch=3) is not a
    x = np.zeros((2,) + shape[1:], np.float32)
    assert a.for_inputs({"input": x}) is a and a.for_inputs({"input": np.zeros((5,) + shape[1:])}).batch == 5
    assert a.for_inputs({"input": np.zeros((5,) + shape[1:])}) is a.for_inputs({"input": np.zeros((5,) + shape[1:])})


def test_other_shape_mismatches_are_refused_naming_both(tmp_path):
    q, shape = _q(tmp_path, "small_cnn")
    with pytest.raises(ModelError, match=r"has shape \(2, 1, 9, 8\), the model declares \(1, 1, 8, 8\)"):
        compile_model(q).run({"input": np.zeros((2, 1, 9, 8), np.float32)})
    for vi in (q.graph.input[0], q.graph.output[0]):  # a batch fixed at 4 in the file
        vi.type.tensor_type.shape.dim[0].dim_value = 4
    del q.graph.value_info[:]
    with pytest.raises(ModelError, match=r"has shape \(2, 1, 8, 8\), the model declares \(4, 1, 8, 8\)"):
        compile_model(q, batch=4).run({"input": np.zeros((2, 1, 8, 8), np.float32)})


def test_cli_run_takes_a_batch(tmp_path, capsys):
    q, shape = _q(tmp_path, "small_cnn")
    onnx.save(q, tmp_path / "q.onnx")
    x = np.random.default_rng(5).normal(0, 1, (2,) + shape[1:]).astype(np.float32)
    np.save(tmp_path / "x.npy", x)
    assert cli.main(["run", str(tmp_path / "q.onnx"), "--input", str(tmp_path / "x.npy"), "--output",
                     str(tmp_path / "y.npy"), "--report", str(tmp_path / "r.json")]) == 0
    assert "batch of 2" in capsys.readouterr().out
    np.testing.assert_array_equal(np.load(tmp_path / "y.npy"), _ort_per_image(q, x))
    total = json.loads((tmp_path / "r.json").read_text())["total"]
    assert total["batch"] == 2 and total["images_per_s"] > 0
