"""ONNX Runtime's own post-training quantizer (``quantize_static``), set up the way it accepts
real exported models: the reference quantization that accelsim's compiler is checked against.

ORT refuses per-channel quantization of models below opset 13 ("Unrecognized attribute: axis for
DequantizeLinear"), so the model is converted with ``onnx.version_converter`` first and then
passed through ``quant_pre_process`` (onnx shape inference and ORT's graph optimizer; the symbolic
shape inference is skipped, it fails on several exported models).  Needs onnxruntime.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Iterable

import numpy as np
import onnx

MIN_OPSET = 13


def opset_of(model: onnx.ModelProto) -> int:
    """The default-domain opset the model imports."""
    return next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), 1)


def at_least_opset(model: onnx.ModelProto, opset: int = MIN_OPSET) -> onnx.ModelProto:
    """The model converted to ``opset`` when it imports an older one."""
    if opset_of(model) >= opset:
        return model
    return onnx.version_converter.convert_version(model, opset)


class _Feeds:
    """A CalibrationDataReader over a list of feeds."""

    def __init__(self, feeds: Iterable[dict[str, np.ndarray]]):
        self._it = iter(list(feeds))

    def get_next(self):
        return next(self._it, None)

    def rewind(self):  # pragma: no cover - ORT calls it only for some calibrators
        pass


def calibration_feeds(model: onnx.ModelProto, calib: np.ndarray) -> list[dict[str, np.ndarray]]:
    """One feed per sample of ``calib`` (N x input shape) for the model's single input."""
    name = model.graph.input[0].name
    x = np.asarray(calib, np.float32)
    return [{name: x[i:i + 1]} for i in range(len(x))]


def ort_quantize(model: onnx.ModelProto, calib: np.ndarray, *, fmt: str = "QDQ", activation: str = "int8",
                 per_channel: bool = True, method: str = "MinMax") -> onnx.ModelProto:
    """quantize_static on ``model`` with int8 weights: ``fmt`` QDQ or QOperator, ``activation``
    int8 or uint8, calibrated on ``calib`` (N x input shape)."""
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    act = {"int8": QuantType.QInt8, "uint8": QuantType.QUInt8}[activation]
    with tempfile.TemporaryDirectory() as tmp:
        src, pre, out = (Path(tmp) / f for f in ("model.onnx", "pre.onnx", "q.onnx"))
        onnx.save(at_least_opset(model), src)
        quant_pre_process(str(src), str(pre), skip_symbolic_shape=True)
        quantize_static(str(pre), str(out), _Feeds(calibration_feeds(model, calib)),
                        quant_format=getattr(QuantFormat, fmt), per_channel=per_channel,
                        activation_type=act, weight_type=QuantType.QInt8,
                        calibrate_method=getattr(CalibrationMethod, method))
        return onnx.load(out)
