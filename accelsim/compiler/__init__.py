"""The compiler: importers (ONNX), the quantized IR, graph passes, tiling, weight-stream encoding
and one lowering module per op family; ``compile_graph`` turns a QGraph into a CompiledModel.

Depends on isa/, kernels/ and accelsim.chip.
"""

from .compile import ModelCompiler, compile_graph, compile_model
from .ir import ModelError, QGraph, QTensor
from .model import CompiledModel
from .onnx import import_model, load_model
from .records import LayerRecord
from .report import LayerCost, format_layers, layer_table, layer_total

__all__ = ["compile_graph", "compile_model", "ModelCompiler", "ModelError", "QGraph", "QTensor", "CompiledModel", "import_model", "load_model",
           "LayerRecord", "LayerCost", "format_layers", "layer_table", "layer_total"]
