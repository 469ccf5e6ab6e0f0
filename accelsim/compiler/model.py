"""A compiled model: the chip program plus what the host does around it (quantize the inputs,
dequantize the outputs, run float ops after the chip), so it runs like the ONNX model."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Mapping, Optional

import numpy as np

from isa.quant import dequantize, qrange, quantize

from ..chip import ChipConfig, Program, RunReport, Simulator, TensorRef
from .ir import ModelError, QGraph
from .records import LayerRecord


def _float_input(name: str, value) -> np.ndarray:
    """An input array as float32: numbers only, finite (QuantizeLinear would saturate NaN and inf
    silently: docs/numerics.md)."""
    try:
        x = np.asarray(value)
    except Exception as e:
        raise ModelError("", "input", f"input {name!r} is not an array ({e})") from None
    if x.dtype.kind not in "biuf":
        raise ModelError("", "input", f"input {name!r} holds {x.dtype} values, not numbers")
    x = x.astype(np.float32)
    if x.size and not np.isfinite(x).all():
        bad = int((~np.isfinite(x)).sum())
        raise ModelError("", "input", f"input {name!r} holds {bad} NaN or infinite values")
    return x


_CODE_TYPES = {"s8": np.int8, "u8": np.uint8, "s16": np.int16, "u16": np.uint16}


def _codes(name: str, value: np.ndarray, dtype: str) -> np.ndarray:
    """An integer input's codes: integers inside the tensor's type (the file's int8 / uint8)."""
    x = np.asarray(value)
    if x.dtype.kind not in "iu":
        raise ModelError("", "input", f"input {name!r} holds {x.dtype} values; this model takes {dtype} codes")
    lo, hi = qrange(dtype)
    if x.size and (x.min() < lo or x.max() > hi):
        raise ModelError("", "input", f"input {name!r} holds codes outside {dtype}'s {lo}..{hi}")
    return x.astype(np.int64)


def _file_output(g: QGraph, fname: str, q: np.ndarray) -> np.ndarray:
    """An output in the file's layout: its codes at the file's type, or dequantized (float32)."""
    t = g.tensors[g.outputs[fname]]
    q = np.asarray(q).reshape(g.output_shapes[fname])
    if fname in g.code_io:
        return q.astype(_CODE_TYPES[t.dtype])
    return g.output_dequantizers[fname](q, t)


def nchw_to_nhwc(q: np.ndarray) -> np.ndarray:
    return q.transpose(0, 2, 3, 1) if q.ndim == 4 else q


def nhwc_to_nchw(q: np.ndarray) -> np.ndarray:
    return q.transpose(0, 3, 1, 2) if q.ndim == 4 else q


@dataclass
class CompiledModel:
    """A program plus what the host does around it (quantize inputs, dequantize outputs)."""

    program: Program
    graph: QGraph
    chip: ChipConfig
    layers: list[LayerRecord] = field(default_factory=list)
    regions: dict[str, TensorRef] = field(default_factory=dict)  # every activation's DRAM tensor (NHWC)
    #: compiles the same model for other input shapes (set by compile_model; None: this shape only)
    recompile: Optional[Callable[[dict], "CompiledModel"]] = field(default=None, repr=False)
    #: the host steps (QHost) the program's HOST instructions call, by call number
    host_steps: list = field(default_factory=list, repr=False)

    def host_call(self, call: int, dram: np.ndarray) -> None:
        """Run host step ``call``: its input codes from DRAM, its output codes back to DRAM."""
        step = self.host_steps[call]
        ins = []
        for name in step.inputs:
            q = self.regions[name].read(dram)
            ins.append(q if self.graph.tensors[name].rowmajor else nhwc_to_nchw(q))
        y = np.asarray(step.fn(ins), np.int64)
        out = self.graph.tensors[step.output]
        self.regions[step.output].write(dram, y if out.rowmajor else nchw_to_nhwc(y), step.output)

    @property
    def batch(self) -> int:
        """Images per run."""
        return int(next(iter(self.graph.input_shapes.values()), (1,))[0])

    def for_inputs(self, inputs: Mapping[str, np.ndarray]) -> "CompiledModel":
        """This model compiled for the shapes of ``inputs`` (itself when they are the compiled ones)."""
        shapes = {k: tuple(np.shape(v)) for k, v in inputs.items() if k in self.graph.input_shapes}
        if all(self.graph.input_shapes[k] == s for k, s in shapes.items()) or self.recompile is None:
            return self
        return self.recompile(shapes)

    def segments(self) -> np.ndarray:
        """The layer index of every instruction (a barrier belongs to the layer after it)."""
        seg = np.zeros(self.program.words.shape[0], np.int64)
        for i, layer in enumerate(self.layers):
            if layer.first_instruction >= 0:  # host steps between chip segments have a HOST instruction
                seg[layer.start:] = i
        return seg

    def quantize_inputs(self, inputs: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Float inputs by graph input name -> the chip's integer input tensors (NHWC)."""
        if self.graph.file_layout:
            return self._file_inputs(inputs)
        feeds = {}
        for fname, qname in self.graph.inputs.items():
            if fname not in inputs:
                raise ModelError("", "input", f"missing input {fname!r}")
            t = self.graph.tensors[qname]
            x = _float_input(fname, inputs[fname])
            want = self.graph.input_shapes.get(fname)
            if want is not None and x.shape != tuple(want):
                raise ModelError("", "input", f"input {fname!r} has shape {x.shape}, this program was compiled "
                                                     f"for {tuple(want)}")
            if fname in self.graph.input_clips:  # a Clip before the input's QuantizeLinear, in float
                lo, hi = self.graph.input_clips[fname]
                x = np.clip(x, np.float32(lo) if lo is not None else None, np.float32(hi) if hi is not None else None)
            if x.size != int(np.prod(t.shape)):
                raise ModelError("", "input", f"input {fname!r} has shape {x.shape}, expected {t.shape}")
            x = x.reshape(t.shape)  # a Flatten/Reshape before the input's QuantizeLinear runs here
            feeds[qname] = nchw_to_nhwc(quantize(x, t.scale, t.zero_point, t.dtype))
        return feeds

    def _file_inputs(self, inputs: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Inputs in the file's layout (a TFLite model): codes of an integer input as they are
        (checked against its type's range), a float input quantized by its engine's rule; state
        inputs not given start from their initial codes."""
        g, feeds = self.graph, {}
        for fname, qname in g.inputs.items():
            t = g.tensors[qname]
            if fname not in inputs:
                if fname in g.states:
                    feeds[qname] = np.asarray(g.states[fname][1], np.int64).reshape(t.memory_dims)
                    continue
                raise ModelError("", "input", f"missing input {fname!r}")
            want = tuple(g.input_shapes[fname])
            x = np.asarray(inputs[fname])
            if x.shape != want:
                raise ModelError("", "input", f"input {fname!r} has shape {x.shape}, this program was compiled "
                                              f"for {want}")
            if fname in g.code_io:
                feeds[qname] = _codes(fname, x, t.dtype).reshape(t.memory_dims)
            else:
                feeds[qname] = g.input_quantizers[fname](_float_input(fname, x), t).reshape(t.memory_dims)
        return feeds

    def dequantize_outputs(self, raw: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        """The chip's integer outputs -> float tensors in the model's (NCHW) order (a TFLite
        model: in the file's layout, codes for an integer output)."""
        if self.graph.file_layout:
            return {fname: _file_output(self.graph, fname, raw[qname]) for fname, qname in self.graph.outputs.items()}
        outputs = {}
        flattened = self.program.meta.get("flattened", {})
        for fname, qname in self.graph.outputs.items():
            t = self.graph.tensors[qname]
            q = raw[qname] if t.rowmajor else nhwc_to_nchw(raw[qname])
            if qname in flattened:  # flattened on the chip in NHWC order: the model's order is NCHW
                n, c, h, w = flattened[qname]
                q = q.reshape(n, h, w, c).transpose(0, 3, 1, 2).reshape(q.shape)
            outputs[fname] = dequantize(q, t.scale, t.zero_point)
        return outputs

    def run(self, inputs: Mapping[str, np.ndarray], *, sim: Optional[Simulator] = None,
            values: bool = True, profile: bool = False) -> tuple[dict[str, np.ndarray], RunReport]:
        """Float inputs by graph input name -> (float outputs by graph output name, report).  Inputs
        of other shapes (another batch) run the model compiled for them, when it can be.
        ``profile``: the simulator's ``last_ticks`` holds each instruction's host cycles."""
        model = self.for_inputs(inputs)
        if model is not self:
            return model.run(inputs, sim=sim if sim is not None and sim.chip is model.chip else None, values=values,
                             profile=profile)
        sim = sim or Simulator(self.chip)
        raw, report = sim.run(self.program, self.quantize_inputs(inputs), values=values, segments=self.segments(),
                              host=self.host_call if self.host_steps else None, profile=profile)
        report.images = self.batch
        if not values:
            return {}, report
        outputs = self.dequantize_outputs(raw)
        if self.graph.host_nodes:
            outputs.update(self._run_host(outputs))
        return {k: v for k, v in outputs.items() if k in self.graph.graph_outputs}, report

    def _run_host(self, floats: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Float ops after the chip (e.g. Softmax): ONNX Runtime's CPU kernels when it is installed
        (the reference engine's own float arithmetic), else onnx's reference evaluator."""
        import onnx
        from onnx import helper

        produced = {o for n in self.graph.host_nodes for o in n.output}
        needed = sorted({i for n in self.graph.host_nodes for i in n.input if i in floats})
        outs = [o for o in self.graph.graph_outputs if o in produced]
        g = helper.make_graph(list(self.graph.host_nodes), "host",
                              [helper.make_tensor_value_info(i, onnx.TensorProto.FLOAT, floats[i].shape) for i in needed],
                              [helper.make_empty_tensor_value_info(o) for o in outs], list(self.graph.host_initializers))
        model = helper.make_model(g, opset_imports=[helper.make_opsetid("", self.graph.opset)])
        model.ir_version = min(model.ir_version, 8)
        feeds = {i: floats[i] for i in needed}
        try:
            from .onnx.runtime import session
            result = session(model).run(outs, feeds)
        except ImportError:
            from onnx.reference import ReferenceEvaluator
            result = ReferenceEvaluator(model).run(None, feeds)
        return dict(zip(outs, result))
