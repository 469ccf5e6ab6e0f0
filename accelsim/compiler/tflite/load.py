"""Read a TFLite flatbuffer through the ``tflite`` schema package into plain records: tensors
(shape, type, quantization, constant data), operators (builtin name, tensor indices, options),
the subgraphs a CALL_ONCE runs.  No hand parsing of the format."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

import numpy as np

from ..ir import ModelError

#: TFLite TensorType -> numpy dtype of the types an int8 model holds
_NP_TYPES = {"FLOAT32": np.float32, "INT8": np.int8, "UINT8": np.uint8, "INT16": np.int16, "INT32": np.int32,
             "INT64": np.int64, "BOOL": np.bool_, "FLOAT16": np.float16}


@dataclass
class TTensor:
    """One tensor of a subgraph: ``data`` for a constant, ``scale`` / ``zero_point`` (arrays) when
    it is quantized along ``axis`` (or per tensor: one value)."""

    index: int
    name: str
    shape: tuple[int, ...]
    type: str                       # "INT8", "UINT8", "INT32", "FLOAT32", "RESOURCE", ...
    scale: Optional[np.ndarray] = None
    zero_point: Optional[np.ndarray] = None
    axis: int = 0
    data: Optional[np.ndarray] = None
    signature: Optional[tuple[int, ...]] = None  # shape_signature: -1 for a free dim

    @property
    def quantized(self) -> bool:
        return self.scale is not None and self.scale.size > 0


@dataclass
class TOp:
    """One operator: builtin name, input and output tensor indices (-1: an absent optional input)."""

    index: int
    op: str
    inputs: list[int]
    outputs: list[int]
    options: object = None          # the schema package's options table (Conv2DOptions, ...) or None

    def where(self) -> str:
        return f"{self.op}#{self.index}"


@dataclass
class TSubgraph:
    tensors: list[TTensor]
    ops: list[TOp]
    inputs: list[int]
    outputs: list[int]
    name: str = ""


@dataclass
class TFLiteFile:
    """A parsed model: subgraph 0 is the model, others the bodies CALL_ONCE runs."""

    subgraphs: list[TSubgraph]
    path: str = ""
    description: str = ""
    raw: bytes = field(default=b"", repr=False)   # the file's bytes (what a reference interpreter loads)

    @property
    def main(self) -> TSubgraph:
        return self.subgraphs[0]


def _names(enum_cls) -> dict[int, str]:
    return {v: k for k, v in vars(enum_cls).items() if not k.startswith("_") and isinstance(v, int)}


def _options(op, option_names: dict[int, str]):
    import tflite

    kind = op.BuiltinOptionsType()
    if kind == 0 or op.BuiltinOptions() is None:
        return None
    cls = getattr(tflite, option_names.get(kind, ""), None)
    if cls is None:
        return None
    table = op.BuiltinOptions()
    opts = cls()
    opts.Init(table.Bytes, table.Pos)
    return opts


def _quantization(t) -> tuple:
    q = t.Quantization()
    if q is None or q.ScaleLength() == 0:
        return None, None, 0
    scale = q.ScaleAsNumpy().astype(np.float32)
    zp = q.ZeroPointAsNumpy().astype(np.int64) if q.ZeroPointLength() else np.zeros(scale.size, np.int64)
    return scale, zp, int(q.QuantizedDimension())


def _data(model, t, type_name: str, shape: tuple, raw: bytes, where: str) -> Optional[np.ndarray]:
    buf = model.Buffers(t.Buffer()) if t.Buffer() < model.BuffersLength() else None
    if buf is None:
        return None
    if buf.Offset() > 1:  # stored after the flatbuffer (models over 2 GB)
        blob = np.frombuffer(raw[buf.Offset():buf.Offset() + buf.Size()], np.uint8)
    elif buf.DataLength():
        blob = buf.DataAsNumpy()
    else:
        return None
    dtype = _NP_TYPES.get(type_name)
    if dtype is None:
        raise ModelError(where, "tensor", f"constant of type {type_name} is not supported")
    arr = np.frombuffer(blob.tobytes(), dtype)
    if arr.size != int(np.prod(shape, dtype=np.int64)):
        raise ModelError(where, "tensor", f"holds {arr.size} values for shape {shape}")
    return arr.reshape(shape)


def _subgraph(model, sg, raw: bytes, type_names: dict, op_names: dict, option_names: dict, codes: list) -> TSubgraph:
    tensors = []
    for i in range(sg.TensorsLength()):
        t = sg.Tensors(i)
        name = t.Name().decode() if t.Name() else f"tensor{i}"
        shape = tuple(int(d) for d in t.ShapeAsNumpy()) if t.ShapeLength() else ()
        sig = tuple(int(d) for d in t.ShapeSignatureAsNumpy()) if t.ShapeSignatureLength() else None
        type_name = type_names.get(t.Type(), str(t.Type()))
        scale, zp, axis = _quantization(t)
        tensors.append(TTensor(i, name, shape, type_name, scale, zp, axis,
                               _data(model, t, type_name, shape, raw, f"tensor {i} {name!r}"), sig))
    ops = []
    for k in range(sg.OperatorsLength()):
        o = sg.Operators(k)
        code = codes[o.OpcodeIndex()]
        ins = [int(v) for v in o.InputsAsNumpy()] if o.InputsLength() else []
        outs = [int(v) for v in o.OutputsAsNumpy()] if o.OutputsLength() else []
        ops.append(TOp(k, op_names.get(code, f"op{code}"), ins, outs, _options(o, option_names)))
    ins = [int(v) for v in sg.InputsAsNumpy()] if sg.InputsLength() else []
    outs = [int(v) for v in sg.OutputsAsNumpy()] if sg.OutputsLength() else []
    return TSubgraph(tensors, ops, ins, outs, sg.Name().decode() if sg.Name() else "")


def parse_tflite(raw: bytes, path: str = "") -> TFLiteFile:
    """The records of a TFLite flatbuffer; a file that is not one is a ModelError."""
    import tflite
    from tflite.BuiltinOperator import BuiltinOperator
    from tflite.BuiltinOptions import BuiltinOptions
    from tflite.TensorType import TensorType

    if len(raw) < 8 or raw[4:8] != b"TFL3":
        raise ModelError("", "", "not a TFLite flatbuffer (no TFL3 identifier)")
    try:
        model = tflite.Model.GetRootAsModel(raw, 0)
        op_names, type_names, option_names = _names(BuiltinOperator), _names(TensorType), _names(BuiltinOptions)
        codes = []
        for i in range(model.OperatorCodesLength()):
            c = model.OperatorCodes(i)
            codes.append(max(int(c.BuiltinCode()), int(c.DeprecatedBuiltinCode())))
        subgraphs = [_subgraph(model, model.Subgraphs(i), raw, type_names, op_names, option_names, codes)
                     for i in range(model.SubgraphsLength())]
    except ModelError:
        raise
    except Exception as e:  # a truncated or corrupt flatbuffer
        reason = f"cannot read the flatbuffer, truncated or corrupt ({type(e).__name__}: {e})"
        raise ModelError("", "", reason) from None
    if not subgraphs:
        raise ModelError("", "", "the flatbuffer has no subgraph")
    desc = model.Description().decode(errors="replace") if model.Description() else ""
    return TFLiteFile(subgraphs, path, desc, raw)


def load_tflite(path: str | Path) -> TFLiteFile:
    """Read and parse a .tflite file."""
    try:
        raw = Path(path).read_bytes()
    except OSError as e:
        raise ModelError("", "", f"cannot read the file: {e.strerror or e}") from None
    return parse_tflite(raw, str(path))
