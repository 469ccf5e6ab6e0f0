"""A TFLite model on one chip for one engine: compiled once per batch (the most recent few kept),
with the same interface as accelsim.compiler.ModelCompiler for ONNX models."""

from __future__ import annotations

from collections import OrderedDict
from typing import Mapping, Optional

import numpy as np

from ...chip import ChipConfig
from ..ir import ModelError
from ..model import CompiledModel
from .engines import DEFAULT_ENGINE, engine as engine_named
from .importer import import_tflite
from .load import TFLiteFile


class TFLiteCompiler:
    """Compiles a parsed TFLite model (load.load_tflite) for ``engine``'s rounding."""

    KEEP = 8

    def __init__(self, model: TFLiteFile, chip: Optional[ChipConfig] = None, weights: str = "auto",
                 engine: str = DEFAULT_ENGINE) -> None:
        engine_named(engine)
        self.model, self.chip, self.weights, self.engine = model, chip or ChipConfig(), weights, engine
        sg = model.main
        self.declared = {sg.tensors[i].name: sg.tensors[i].shape for i in sg.inputs}
        self._cache: OrderedDict[int, CompiledModel] = OrderedDict()

    def _batch(self, given: Mapping[str, tuple]) -> int:
        """The batch the given input shapes ask for: their leading dim over the file's."""
        batches = set()
        for name, shape in given.items():
            if name not in self.declared:
                raise ModelError("", "input", f"the model has no input {name!r} "
                                              f"(its inputs: {', '.join(self.declared)})")
            file = self.declared[name]
            shape = tuple(shape)
            if len(shape) != len(file) or shape[1:] != tuple(file[1:]) or not file or shape[0] % file[0]:
                raise ModelError("", "input", f"input {name!r} has shape {shape}; the file declares {tuple(file)} "
                                              "(only the leading dim may grow, by whole batches)")
            batches.add(shape[0] // file[0])
        if len(batches) > 1:
            raise ModelError("", "input", f"inputs ask for different batches: {sorted(batches)}")
        return batches.pop() if batches else 1

    def compile(self, given: Optional[Mapping[str, tuple]] = None, batch: int = 1) -> CompiledModel:
        """The model compiled for the given input shapes (their batch) or for ``batch``."""
        from ..compile import compile_graph

        b = self._batch(given) if given else batch
        hit = self._cache.get(b)
        if hit is not None:
            self._cache.move_to_end(b)
            return hit
        compiled = compile_graph(import_tflite(self.model, self.engine, b), self.chip, self.weights)
        compiled.recompile = lambda shapes: self.compile({k: v for k, v in shapes.items() if k in self.declared})
        self._cache[b] = compiled
        if len(self._cache) > self.KEEP:
            self._cache.popitem(last=False)
        return compiled


def run_stream(compiled: CompiledModel, frames: list[Mapping[str, np.ndarray]], sim=None) -> list[dict]:
    """Invoke a stateful model once per frame, as an interpreter does: each run's state outputs
    are the next run's state inputs, starting from the initial state.  Returns each run's
    outputs (state outputs left out)."""
    g = compiled.graph
    state: dict[str, np.ndarray] = {}
    results = []
    for frame in frames:
        outputs, _ = compiled.run({**frame, **state}, sim=sim)
        state = {name: outputs[out] for name, (out, _) in g.states.items()}
        results.append({k: v for k, v in outputs.items() if k not in {o for o, _ in g.states.values()}})
    return results
