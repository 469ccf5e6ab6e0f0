"""AVERAGE_POOL_2D and MAX_POOL_2D on the pooling unit; MEAN over H and W there too where a
fixed-point mode expresses the engine's rule, else on the host (reduce.py).

TFLite's int8 average pool divides the sum of the codes in the window's in-image taps by their
count, ties away from zero, whatever the in and out quantization (only the activation bounds
come from the output's); no kernel set delegates it.  Max pooling never reads its padding."""

from __future__ import annotations

import math
from typing import Optional

import numpy as np

from isa.quant import qrange
from isa.requant import quantize_multiplier

from ..ir import QAvgPool, QGlobalAvgPool, QLut, QMaxPool, QTensor
from .context import TFLiteContext
from .layers import pads_of
from .load import TOp
from .reduce import mean
from .tables import codes_of


def _window(ctx: TFLiteContext, op: TOp):
    x = ctx.q(op, 0)
    o = op.options
    if len(x.shape) != 4:
        raise ctx.fail(op, f"input rank {len(x.shape)}: pools take NHWC tensors")
    k, stride = (o.FilterHeight(), o.FilterWidth()), (o.StrideH(), o.StrideW())
    if min(k) < 1 or min(stride) < 1:
        raise ctx.fail(op, f"filter {k} and strides {stride} must be at least 1")
    pads = pads_of(o.Padding(), x.shape[2:], k, stride, (1, 1))
    y = ctx.out(op, like=x)
    oh = (x.shape[2] + pads[0] + pads[2] - k[0]) // stride[0] + 1
    ow = (x.shape[3] + pads[1] + pads[3] - k[1]) // stride[1] + 1
    if tuple(y.shape) != (x.shape[0], x.shape[1], oh, ow) or y.dtype != x.dtype:
        raise ctx.fail(op, f"the output is declared {ctx.tensor(op.outputs[0]).shape}, the pool makes "
                           f"{(x.shape[0], oh, ow, x.shape[1])} of {x.dtype}")
    return x, y, k, stride, pads, o.FusedActivationFunction()


def average_pool(ctx: TFLiteContext, op: TOp) -> None:
    x, y, k, stride, pads, act = _window(ctx, op)
    if ctx.engine.micro and (x.scale, x.zero_point) != (y.scale, y.zero_point):
        raise ctx.fail(op, "tflite-micro requires the same quantization in and out (LiteRT ignores the output's)")
    ctx.graph.nodes.append(QAvgPool(y.name, op.op, x.name, y.name, k, stride, pads, codes=True, away=True,
                                    clamp=ctx.clamp(op, y, act)))


def max_pool(ctx: TFLiteContext, op: TOp) -> None:
    """The maximum of the in-image taps; a fused activation clamps it after (a table)."""
    x, y, k, stride, pads, act = _window(ctx, op)
    if (x.scale, x.zero_point) != (y.scale, y.zero_point) and act:
        raise ctx.fail(op, "a fused activation with in and out quantization apart")
    if not act:
        ctx.graph.nodes.append(QMaxPool(y.name, op.op, x.name, y.name, k, stride, pads))
        return
    pooled = QTensor(f"{y.name}:max", y.shape, y.dtype, y.scale, y.zero_point)
    ctx.graph.tensors[pooled.name] = pooled
    ctx.graph.nodes.append(QMaxPool(pooled.name, op.op, x.name, pooled.name, k, stride, pads))
    lo, hi = ctx.clamp(op, y, act, delegated=True)
    table = np.zeros(256, np.int64)
    codes = codes_of(y)
    table[codes & 255] = np.clip(codes, lo, hi)
    ctx.graph.nodes.append(QLut(y.name, "fused activation", pooled.name, y.name, table))


def _chip_mean(kernel: str, keep: bool, x: QTensor, y: QTensor) -> Optional[QGlobalAvgPool]:
    """MEAN over H and W as SUMPOOL + REQUANT in a fixed mode (reduce.py's ref and opt rules), or
    None where the chip cannot take it (XNNPACK's float rule; an output offset outside the type)."""
    n, c, h, w = x.shape
    count = h * w
    if kernel == "opt" and keep:
        temp = np.float32(np.float32(x.zero_point) * x.scale) / y.scale
        temp = np.float32(temp + np.float32(0.5)) if temp > 0 else np.float32(temp - np.float32(0.5))
        offset = y.zero_point - int(temp)
        m0, shift = quantize_multiplier(float(np.float32(x.scale / np.float32(np.float32(count) * y.scale))))
        blocks = c - c % 16
        mode, tail = ("fixed_double_up", (blocks, "fixed_double") if 0 < blocks < c else None) if blocks else \
            ("fixed_double", None)
        lo, hi = qrange(y.dtype)
        if not lo <= offset <= hi:
            return None
        return QGlobalAvgPool(y.name, "MEAN", x.name, y.name, requant=mode, multiplier=(m0, shift), sum_zero_point=0,
                              out_offset=offset, requant_tail=tail)
    if kernel == "xnn":
        return None
    m, sh = quantize_multiplier(float(np.float64(x.scale) / np.float64(y.scale)))
    k = min(int(math.log2(count)), 32, 31 + sh)
    return QGlobalAvgPool(y.name, "MEAN", x.name, y.name, requant="fixed_double",
                          multiplier=((m << k) // count, sh - k), sum_zero_point=x.zero_point, out_offset=y.zero_point)


def reduce_mean(ctx: TFLiteContext, op: TOp) -> None:
    """MEAN over constant axes in the engine's arithmetic: on the pooling unit over H and W of an
    NHWC tensor where a fixed-point mode expresses it, else on the host."""
    x = ctx.q(op, 0)
    rank = len(x.shape)
    axes = tuple(sorted({int(a) % rank for a in np.asarray(ctx.const(op, 1, "axes")).ravel()}))
    keep = bool(op.options.KeepDims()) if op.options is not None else False
    y = ctx.out(op)
    kernel = ctx.engine.kernels
    if rank == 4 and axes == (1, 2) and x.dtype == y.dtype:
        node = _chip_mean(kernel, keep, x, y)
        if node is not None:
            ctx.graph.nodes.append(node)
            return
    ctx.host_step(op, x, y, lambda codes: mean(kernel, codes, axes, keep, x, y))


HANDLERS = {"AVERAGE_POOL_2D": average_pool, "MAX_POOL_2D": max_pool, "MEAN": reduce_mean}
