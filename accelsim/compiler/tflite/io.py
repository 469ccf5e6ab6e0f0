"""The model's inputs and outputs as the file declares them: an integer tensor is given and
returned as codes in the file's layout (NHWC); a float input goes through its QUANTIZE, a float
output comes from a DEQUANTIZE (both on the host, with the engine's rounding)."""

from __future__ import annotations

from functools import partial

import numpy as np

from isa.quant import qrange
from isa.requant import round_half_away

from ..ir import ModelError, QLut
from .context import TFLiteContext
from .load import TOp
from .tables import requantize_tables


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
            g.input_quantizers[t.name] = partial(quantize_float, ctx.engine.kernels, images=ctx.batch)
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
            g.output_dequantizers[t.name] = partial(dequantize_codes, ctx.engine.kernels, images=ctx.batch)
        elif idx in ctx.q_of:
            g.outputs[t.name] = ctx.q_of[idx]
            g.code_io.add(t.name)
        else:
            raise ModelError("", "output", f"output {t.name!r} ({t.type}) is made by no op the chip runs")
        g.output_shapes[t.name] = _file_shape(ctx, idx)
        g.graph_outputs.append(t.name)


def quantize(ctx: TFLiteContext, op: TOp) -> None:
    """QUANTIZE inside the graph: an integer tensor requantized (a table); a float one is refused."""
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


INT32_MIN = -(1 << 31)


def _to_int32(v: np.ndarray, even: bool) -> np.ndarray:
    """x86's float -> int32 conversion: truncation (C's cast) or ties to even (cvtps2dq); NaN and
    values outside int32 become INT32_MIN."""
    v = np.asarray(v, np.float64)
    ok = np.isfinite(v) & (v > -2147483649.0) & (v < 2147483648.0)
    r = np.rint(np.where(ok, v, 0)) if even else np.trunc(np.where(ok, v, 0))
    return np.where(ok, r, INT32_MIN).astype(np.int64)


def _per_image(fn, x: np.ndarray, images: int) -> np.ndarray:
    """``fn`` over each image's elements in the file's order (LiteRT runs one image per invocation)."""
    flat = np.asarray(x).reshape(images, -1)
    return np.stack([fn(row) for row in flat]).reshape(np.shape(x))


def quantize_float(kernel: str, x: np.ndarray, t, images: int = 1) -> np.ndarray:
    """A float input's QUANTIZE: ``ref`` round(float32(x / s)) halves away; ``opt`` (LiteRT's
    optimized kernel) its 8-element blocks as ties-even(float32(x * (1 / s))), the tail
    round(double(x) / s); ``xnn`` ties-even(float32(x * (1 / s))) clamped to the type first.
    Conversions out of int32 give INT32_MIN and wrap with the zero point, as LiteRT does."""
    lo, hi = qrange(t.dtype)
    s, z = np.float32(t.scale), t.zero_point
    inv = np.float32(np.float32(1) / s)

    def wrap_clip(v: np.ndarray) -> np.ndarray:
        return np.clip(((v + z + (1 << 31)) & 0xFFFFFFFF) - (1 << 31), lo, hi)

    def one(row: np.ndarray) -> np.ndarray:
        row = np.asarray(row, np.float32)
        if kernel == "xnn":
            v = np.clip((row * inv).astype(np.float32), np.float32(lo - z), np.float32(hi - z))
            return np.rint(v).astype(np.int64) + z
        if kernel == "opt":
            k = row.size - row.size % 8
            body = _to_int32((row[:k] * inv).astype(np.float32), even=True)
            tail = _to_int32(round_half_away(row[k:].astype(np.float64) / np.float64(s)), even=False)
            return wrap_clip(np.concatenate([body, tail]))
        return wrap_clip(_to_int32(round_half_away((row / s).astype(np.float32)), even=False))

    return _per_image(one, x, images)


def dequantize_codes(kernel: str, q: np.ndarray, t, images: int = 1) -> np.ndarray:
    """A float output's DEQUANTIZE: float32(double(s) * (q - z)) (``ref``, ``xnn``); the optimized
    kernel's 8-element blocks float32(q * s) + float32(-z * s), two roundings."""
    s, z = np.float32(t.scale), t.zero_point

    def ref(row: np.ndarray) -> np.ndarray:
        return (np.float64(s) * (np.asarray(row, np.int64) - z).astype(np.float64)).astype(np.float32)

    def one(row: np.ndarray) -> np.ndarray:
        if kernel != "opt":
            return ref(row)
        k = row.size - row.size % 8
        zs = np.float32(-z * np.float64(s))
        body = ((np.asarray(row[:k], np.int64).astype(np.float32) * s).astype(np.float32) + zs).astype(np.float32)
        return np.concatenate([body, ref(row[k:])])

    return _per_image(one, q, images).astype(np.float32)


HANDLERS = {"QUANTIZE": quantize, "DEQUANTIZE": dequantize}
