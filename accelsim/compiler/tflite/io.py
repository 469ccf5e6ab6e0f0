"""The model's inputs and outputs as the file declares them: an integer tensor is given and
returned as codes in the file's layout (NHWC); a float input goes through its QUANTIZE, a float
output comes from a DEQUANTIZE (both on the host, with the engine's rounding)."""

from __future__ import annotations

import numpy as np

from ..ir import ModelError
from .context import TFLiteContext
from .load import TOp


def _consumers(ctx: TFLiteContext, idx: int) -> list[TOp]:
    return [op for op in ctx.sg.ops if idx in op.inputs]


def _file_shape(ctx: TFLiteContext, idx: int) -> tuple:
    shape = ctx.tensor(idx).shape
    return (shape[0] * ctx.batch,) + tuple(shape[1:]) if shape else (1,)


def graph_inputs(ctx: TFLiteContext) -> None:
    """Each graph input: its QTensor (codes) or, for a float input, its QUANTIZE's output."""
    g = ctx.graph
    for idx in ctx.sg.inputs:
        t = ctx.tensor(idx)
        if idx in ctx.q_of:  # a state variable (state.prepare)
            continue
        if t.type == "FLOAT32":
            users = _consumers(ctx, idx)
            if len(users) != 1 or users[0].op != "QUANTIZE":
                raise ModelError("", "input", f"float input {t.name!r} is not read by exactly one QUANTIZE "
                                              "(a full-integer model quantizes its float input once)")
            q = ctx.out(users[0])
            ctx.consumed.add(users[0].index)
            g.inputs[t.name] = q.name
            g.input_quantizers[t.name] = ctx.engine.quantize_input
        else:
            q = ctx.add(None, idx)
            g.inputs[t.name] = q.name
            g.code_io.add(t.name)
        g.input_shapes[t.name] = _file_shape(ctx, idx)


def graph_outputs(ctx: TFLiteContext) -> None:
    """Each graph output: the QTensor holding it (a float output: its DEQUANTIZE's input)."""
    g = ctx.graph
    g.graph_outputs = []
    for idx in ctx.sg.outputs:
        t = ctx.tensor(idx)
        if idx in ctx.dequantized:
            g.outputs[t.name] = ctx.dequantized[idx]
        elif idx in ctx.q_of:
            g.outputs[t.name] = ctx.q_of[idx]
            g.code_io.add(t.name)
        else:
            raise ModelError("", "output", f"output {t.name!r} ({t.type}) is made by no op the chip runs")
        g.output_shapes[t.name] = _file_shape(ctx, idx)
        g.graph_outputs.append(t.name)


def quantize(ctx: TFLiteContext, op: TOp) -> None:
    """QUANTIZE inside the graph: an integer tensor requantized (a table); a float one is refused."""
    from ..ir import QLut
    from .tables import requantize_tables

    src = ctx.tensor(op.inputs[0])
    if src.type == "FLOAT32":
        raise ctx.fail(op, "quantizes a float tensor inside the graph (the chip holds integers only)")
    x = ctx.q(op, 0)
    y = ctx.out(op)
    if x.dtype not in ("s8", "u8") or y.dtype not in ("s8", "u8"):
        raise ctx.fail(op, f"requantizes {x.dtype} to {y.dtype}; the chip's tables take 8-bit codes")
    period = int(np.prod(y.shape)) // ctx.batch  # LiteRT runs one image per invocation
    table, tail = requantize_tables(ctx.engine, x, y, period)
    if tail is not None and tail[0] in (0, period):  # one run: all blocks, or all tail
        table, tail = (tail[1] if tail[0] == 0 else table), None
    ctx.graph.nodes.append(QLut(y.name, op.op, x.name, y.name, table,
                                None if tail is None else (period, tail[0], tail[1])))


def dequantize(ctx: TFLiteContext, op: TOp) -> None:
    """DEQUANTIZE of a graph output: the host dequantizes it (float32(s * (q - z)))."""
    if op.outputs[0] not in ctx.sg.outputs:
        raise ctx.fail(op, "dequantizes a tensor that is not a model output (float ops inside the graph)")
    ctx.q(op, 0)
    ctx.dequantized[op.outputs[0]] = ctx.q_of[op.inputs[0]]


def dequantize_codes(q: np.ndarray, scale: np.float32, zero_point: int) -> np.ndarray:
    """TFLite's DEQUANTIZE: float32(scale) * float32(q - z)."""
    return np.float32(scale) * (np.asarray(q, np.int64) - zero_point).astype(np.float32)


HANDLERS = {"QUANTIZE": quantize, "DEQUANTIZE": dequantize}
