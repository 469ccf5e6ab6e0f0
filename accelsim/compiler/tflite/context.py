"""The state of one TFLite import: the QGraph being built, which QTensor each TFLite tensor
became, and the helpers every op handler shares (quantization, shapes, constants, fused
activations)."""

from __future__ import annotations

from typing import Optional

import numpy as np

from isa.quant import qrange
from isa.requant import round_half_away

from ..ir import ModelError, QGraph, QTensor
from .engines import Engine
from .load import TOp, TSubgraph, TTensor

#: TFLite tensor type -> the chip's element type
DTYPES = {"INT8": "s8", "UINT8": "u8", "INT16": "s16"}
#: fused activations (ActivationFunctionType) -> float bounds
_ACTIVATIONS = {0: None, 1: (0.0, None), 2: (-1.0, 1.0), 3: (0.0, 6.0)}


def nchw(shape: tuple) -> tuple:
    """A TFLite shape in the QGraph's convention: NHWC -> NCHW for 4-D (DRAM stays NHWC, the
    file's order); other ranks as they are."""
    return (shape[0], shape[3], shape[1], shape[2]) if len(shape) == 4 else tuple(shape)


def nchw_axis(axis: int, rank: int) -> int:
    """A TFLite axis (NHWC for 4-D) in the QGraph's numbering."""
    axis = axis + rank if axis < 0 else axis
    return (0, 2, 3, 1)[axis] if rank == 4 else axis


def tflite_round(v: float) -> int:
    """C's ``round`` (TfLiteRound): halves away from zero."""
    return int(round_half_away(np.float64(v)))


class TFLiteContext:
    """One subgraph being imported for one engine."""

    def __init__(self, sg: TSubgraph, engine: Engine) -> None:
        self.sg, self.engine = sg, engine
        self.graph = QGraph(source_format="TFLite")
        self.q_of: dict[int, str] = {}      # TFLite tensor index -> QTensor name
        self.used_names: set[str] = set()
        self.dequantized: dict[int, str] = {}  # float model output -> the QTensor its DEQUANTIZE reads
        self.consumed: set[int] = set()     # ops imported with the op before them (by index)
        self.batch = 1                      # images per run: the file's leading dim times this
        self.handles: dict[int, str] = {}   # resource tensor -> its variable (state.prepare)
        self.initial: dict[str, np.ndarray] = {}  # variable -> the constant CALL_ONCE assigns it

    def tensor(self, idx: int) -> TTensor:
        return self.sg.tensors[idx]

    def fail(self, op: TOp, reason: str) -> ModelError:
        return ModelError(f"{op.where()} {self._first_output(op)!r}", op.op, reason)

    def _first_output(self, op: TOp) -> str:
        return self.sg.tensors[op.outputs[0]].name if op.outputs and op.outputs[0] >= 0 else ""

    # ---- quantized activations
    def q(self, op: TOp, k: int) -> QTensor:
        """The quantized tensor input ``k`` of ``op`` reads (produced by an earlier op or a graph input)."""
        if k >= len(op.inputs) or op.inputs[k] < 0:
            raise self.fail(op, f"input {k} is missing")
        idx = op.inputs[k]
        if idx not in self.q_of:
            t = self.tensor(idx)
            what = "a constant" if t.data is not None else f"a {t.type} tensor no earlier op produced"
            raise self.fail(op, f"input {k} ({t.name!r}) is {what}, not a quantized activation")
        return self.graph.tensors[self.q_of[idx]]

    def _name(self, t: TTensor) -> str:
        name = t.name or f"tensor{t.index}"
        if name in self.used_names:
            name = f"{name}#{t.index}"
        self.used_names.add(name)
        return name

    def add(self, op: Optional[TOp], idx: int, like: Optional[QTensor] = None) -> QTensor:
        """The QTensor of TFLite tensor ``idx`` (an op's output or a graph input); ``like``: take its
        quantization when the file gives none (e.g. a reshape's output)."""
        t = self.tensor(idx)
        dtype = DTYPES.get(t.type)
        if dtype is None:
            raise self._error(op, f"tensor {t.name!r} is {t.type}; the chip holds int8, uint8 and int16 activations")
        if t.quantized:
            if t.scale.size != 1:
                raise self._error(op, f"activation {t.name!r} has {t.scale.size} scales (per-tensor only)")
            scale, zp = np.float32(t.scale[0]), int(t.zero_point[0])
        elif like is not None:
            scale, zp = like.scale, like.zero_point
        else:
            raise self._error(op, f"activation {t.name!r} has no quantization parameters")
        if not (np.isfinite(scale) and scale > 0):
            raise self._error(op, f"activation {t.name!r} has scale {scale}: scales must be finite and positive")
        lo, hi = qrange(dtype)
        if not lo <= zp <= hi:
            raise self._error(op, f"activation {t.name!r} has zero point {zp} outside {dtype}'s {lo}..{hi}")
        shape = (t.shape[0] * self.batch,) + tuple(t.shape[1:]) if t.shape else (1,)
        q = QTensor(self._name(t), nchw(shape), dtype, scale, zp)
        self.graph.tensors[q.name] = q
        self.q_of[idx] = q.name
        return q

    def _error(self, op: Optional[TOp], reason: str) -> ModelError:
        return self.fail(op, reason) if op is not None else ModelError("", "input", reason)

    def out(self, op: TOp, like: Optional[QTensor] = None, k: int = 0) -> QTensor:
        """Output ``k`` of ``op`` as a new QTensor."""
        return self.add(op, op.outputs[k], like)

    # ---- constants
    def const(self, op: TOp, k: int, what: str) -> np.ndarray:
        """The constant data of input ``k``."""
        if k >= len(op.inputs) or op.inputs[k] < 0:
            raise self.fail(op, f"{what} (input {k}) is missing")
        t = self.tensor(op.inputs[k])
        if t.data is None:
            raise self.fail(op, f"{what} {t.name!r} is not a constant")
        return t.data

    def has_input(self, op: TOp, k: int) -> bool:
        return k < len(op.inputs) and op.inputs[k] >= 0

    # ---- fused activations
    def clamp(self, op: TOp, y: QTensor, act: int, delegated: bool = False) -> tuple[int, int]:
        """The integer output range of a fused activation: TFLite's CalculateActivationRangeQuantized
        (z + round(f / s), halves away), or for an op the XNNPACK delegate takes (``delegated`` and
        the engine is litert) XNNPACK's lrintf(f / s + z) (float32, halves to even)."""
        if act not in _ACTIVATIONS:
            raise self.fail(op, f"fused activation {act} is not supported (NONE, RELU, RELU_N1_TO_1, RELU6)")
        lo, hi = qrange(y.dtype)
        bounds = _ACTIVATIONS[act]
        if bounds is None:
            return lo, hi
        f_lo, f_hi = bounds
        if delegated and self.engine.xnnpack:
            def xnn(f: float) -> int:
                v = np.float32(f) / y.scale + np.float32(y.zero_point)
                return int(np.rint(np.clip(v, np.float32(lo), np.float32(hi))))
            return xnn(f_lo), (hi if f_hi is None else xnn(f_hi))
        lo = max(lo, y.zero_point + tflite_round(float(np.float32(f_lo) / y.scale)))
        if f_hi is not None:
            hi = min(hi, y.zero_point + tflite_round(float(np.float32(f_hi) / y.scale)))
        return lo, hi

    # ---- host steps
    def host_step(self, op: TOp, x: QTensor, y: QTensor, fn) -> None:
        """A QHost computing ``y = fn(codes of x)`` with both in the file's layout (the host hands
        4-D tensors over in the QGraph's NCHW reading: transposed here, both ways)."""
        from ..ir import QHost

        def call(ins: list) -> np.ndarray:
            codes = ins[0].transpose(0, 2, 3, 1) if len(x.shape) == 4 else ins[0]
            out = np.asarray(fn(codes)).reshape(file_shape(y))
            return out.transpose(0, 3, 1, 2) if out.ndim == 4 else out

        self.graph.nodes.append(QHost(y.name, op.op, (x.name,), y.name, call))


def file_shape(q: QTensor) -> tuple:
    """A QTensor's shape in the file's layout (NHWC for 4-D)."""
    s = q.shape
    return (s[0], s[2], s[3], s[1]) if len(s) == 4 else tuple(s)
