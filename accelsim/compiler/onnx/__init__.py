"""The ONNX importer: QDQ and QOperator models (from onnxruntime.quantization or accelsim.quant)
into the quantized graph (accelsim.compiler.ir), one handler per op family."""

from .importer import import_model
from .load import load_model

__all__ = ["import_model", "load_model"]
