"""Compile a quantized graph (accelsim.compiler.ir) to a chip program: check reshapes, lay out
DRAM, lower every node through the lowering registered for its type, assemble the program."""

from __future__ import annotations

from collections import OrderedDict
from typing import Mapping, Optional

import onnx

from isa import Instruction, encode_program

from ..chip import ChipConfig, Program, TensorRef
from .ir import ModelError, QGraph
from .lower import ProgramBuilder, lowering_of
from .model import CompiledModel
from .onnx import import_model
from .onnx.prepare import declared_shapes, default_shape, resolve_shape
from .passes import DramLayout, check_reshapes, plan_dram
from .records import LayerRecord
from .weights import WEIGHT_CHOICES


def _tensor_ref(graph: QGraph, layout: DramLayout, name: str, role: str) -> TensorRef:
    """An activation's DRAM tensor, in its DRAM order (NHWC for 4-D), at its storage type."""
    return TensorRef(layout.region[name], graph.tensors[name].memory_dims, layout.storage[name], role)


def _program(b: ProgramBuilder, flattened: dict[str, tuple]) -> Program:
    """The instruction words (with a final HALT), the DRAM image and the graph's input and output tensors."""
    g = b.graph
    tensors = {q: _tensor_ref(g, b.layout, q, "input") for q in g.inputs.values()}
    tensors.update({q: _tensor_ref(g, b.layout, q, "output") for q in g.outputs.values()})
    meta = {"format": g.source_format,
            "flattened": {q: list(flattened[q]) for q in g.outputs.values() if q in flattened}}
    return Program(encode_program(b.instructions + [Instruction("HALT")]), b.image(), tensors, meta)


def _host_records(g: QGraph) -> list[LayerRecord]:
    return [LayerRecord(n.name or n.output[0], n.op_type, where="host", bits="float32") for n in g.host_nodes]


def compile_graph(graph: QGraph, chip: Optional[ChipConfig] = None, weights: str = "auto") -> CompiledModel:
    """Lay out DRAM, lower every node and assemble the program.

    ``weights``: how weight tiles are stored -- ``auto`` picks, per tile, the format with the
    cheapest fetch on this chip (accelsim.compiler.weights.encode_for_chip); or one of dense,
    bitmask, rle, codebook (codebook falls back to dense for a tile with more than 2^bits values).
    """
    if weights not in WEIGHT_CHOICES:
        raise ValueError(f"weights={weights!r}: expected one of {', '.join(WEIGHT_CHOICES)}")
    chip = chip or ChipConfig()
    flattened = check_reshapes(graph)
    layout = plan_dram(graph)
    b = ProgramBuilder(graph, chip, layout, flattened, weights)
    b.place_constants()
    for node in graph.nodes:
        lowering_of(node)(node, b)
    if b.at > chip.dram_bytes():
        raise ModelError("", "", f"the program needs {b.at:,} bytes of DRAM for activations and constants; "
                         f"the chip has {chip.dram_bytes():,} (dram.size_mib in the chip configuration)")
    program = _program(b, flattened)
    regions = {name: _tensor_ref(graph, layout, name, "output") for name in graph.tensors}
    compiled = CompiledModel(program, graph, chip, b.layers + _host_records(graph), regions)
    compiled.host_steps = list(b.host_steps)
    if b.host_steps:
        program.meta["host_steps"] = [{"call": k, "name": h.name, "op": h.op_type} for k, h in enumerate(b.host_steps)]
    return compiled


class ModelCompiler:
    """One ONNX model on one chip, compiled once per set of input shapes (e.g. per batch), the
    most recent few kept."""

    KEEP = 8

    def __init__(self, model: onnx.ModelProto, chip: Optional[ChipConfig] = None, weights: str = "auto") -> None:
        self.model, self.chip, self.weights = model, chip or ChipConfig(), weights
        self.declared = declared_shapes(model)
        self._cache: OrderedDict[tuple, CompiledModel] = OrderedDict()

    def shapes(self, given: Optional[Mapping[str, tuple]] = None, batch: int = 1) -> dict[str, tuple]:
        """Every input's shape: the given one (checked against the file's), else the declared one
        at ``batch``."""
        given = given or {}
        return {name: resolve_shape(name, dims, tuple(given[name])) if name in given else default_shape(name, dims, batch)
                for name, dims in self.declared.items()}

    def compile(self, given: Optional[Mapping[str, tuple]] = None, batch: int = 1) -> CompiledModel:
        shapes = self.shapes(given, batch)
        key = tuple(sorted(shapes.items()))
        hit = self._cache.get(key)
        if hit is not None:
            self._cache.move_to_end(key)
            return hit
        compiled = compile_graph(import_model(self.model, shapes), self.chip, self.weights)
        compiled.recompile = self.compile
        self._cache[key] = compiled
        if len(self._cache) > self.KEEP:
            self._cache.popitem(last=False)
        return compiled


def compile_model(model: onnx.ModelProto, chip: Optional[ChipConfig] = None, weights: str = "auto", *,
                  batch: int = 1, input_shapes: Optional[Mapping[str, tuple]] = None) -> CompiledModel:
    """Import and compile an ONNX model for ``batch`` images (or the given input shapes); the
    result runs other batches too, compiling each once (ModelCompiler)."""
    return ModelCompiler(model, chip, weights).compile(input_shapes, batch)
