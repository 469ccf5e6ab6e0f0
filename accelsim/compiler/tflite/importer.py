"""Import a full-integer TFLite model (int8, or legacy uint8) into the QGraph for one engine.

Operators are visited in the file's order (TFLite stores them in execution order) and each goes
to the handler of its builtin op; anything else is a ModelError naming the op, its index and
output tensor.  Graph inputs and outputs keep the file's element types and NHWC layout: integer
tensors are given and returned as codes, a float input is quantized by its QUANTIZE, a float
output dequantized by its DEQUANTIZE (io.py); resource variables become state inputs and
outputs (state.py).
"""

from __future__ import annotations

from typing import Callable

from ..ir import ModelError, QGraph
from . import eltwise, io, layers, movement, pools, state, unary
from .context import TFLiteContext
from .engines import DEFAULT_ENGINE, engine as engine_named
from .load import TFLiteFile, TOp

Handler = Callable[[TFLiteContext, TOp], None]

HANDLERS: dict[str, Handler] = {
    "CONV_2D": layers.conv_2d, "DEPTHWISE_CONV_2D": layers.depthwise_conv_2d,
    "FULLY_CONNECTED": layers.fully_connected,
    "RESHAPE": movement.reshape, "SQUEEZE": movement.reshape, "EXPAND_DIMS": movement.reshape,
    "PAD": movement.pad, "PADV2": movement.pad, "STRIDED_SLICE": movement.strided_slice,
    "SPLIT": movement.split, "SPLIT_V": movement.split, "CONCATENATION": movement.concatenation,
    **eltwise.HANDLERS, **pools.HANDLERS, **unary.HANDLERS, **io.HANDLERS, **state.HANDLERS,
}


def _handler(ctx: TFLiteContext, op: TOp) -> Handler:
    h = HANDLERS.get(op.op)
    if h is None:
        raise ctx.fail(op, "unsupported op (runs on neither the chip nor the host yet)")
    types = {ctx.tensor(i).type for i in op.inputs + op.outputs if i >= 0}
    if ctx.engine.micro and "UINT8" in types and (op.op != "QUANTIZE" or types == {"UINT8"}):
        raise ctx.fail(op, "tflite-micro has no uint8 kernel for this op (only QUANTIZE converts to and from int8)")
    return h


def import_tflite(model: TFLiteFile, engine: str = DEFAULT_ENGINE, batch: int = 1) -> QGraph:
    """The quantized graph of a TFLite model for ``engine``'s rounding, at ``batch`` (every
    activation's leading dim is the file's times ``batch``)."""
    if batch < 1:
        raise ValueError(f"batch {batch}: must be at least 1")
    ctx = TFLiteContext(model.main, engine_named(engine))
    ctx.batch = batch
    state.prepare(ctx, model)
    io.graph_inputs(ctx)
    for op in model.main.ops:
        if op.index not in ctx.consumed:
            _handler(ctx, op)(ctx, op)
    io.graph_outputs(ctx)
    state.finish(ctx)
    g = ctx.graph
    g.file_layout = True
    g.input_shapes = dict(g.input_shapes)
    if not g.outputs:
        raise ModelError("", "", "no output is a quantized tensor the chip makes")
    return g
