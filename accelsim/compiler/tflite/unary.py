"""Activations: LOGISTIC as a table on VLUT in each engine's arithmetic (tables.py), SOFTMAX on the
host (softmax.py)."""

from __future__ import annotations

import numpy as np

from ..ir import QLut
from .context import TFLiteContext
from .load import TOp
from .tables import logistic_table


def logistic(ctx: TFLiteContext, op: TOp) -> None:
    x = ctx.q(op, 0)
    y = ctx.out(op)
    if x.dtype not in ("s8", "u8") or y.dtype not in ("s8", "u8"):
        raise ctx.fail(op, f"{x.dtype} -> {y.dtype}: tables take 8-bit codes")
    ctx.graph.nodes.append(QLut(y.name, op.op, x.name, y.name, logistic_table(ctx.engine, x, y)))


HANDLERS = {"LOGISTIC": logistic}


def softmax(ctx: TFLiteContext, op: TOp) -> None:
    """SOFTMAX over the file's last axis, on the host; TFLite takes outputs of scale 1/256 and zero
    point -128 (int8) or 0 (uint8)."""
    from .softmax import softmax as host_softmax

    x = ctx.q(op, 0)
    y = ctx.out(op)
    want = (np.float32(1 / 256), -128 if y.dtype == "s8" else 0)
    if x.dtype not in ("s8", "u8") or y.dtype != x.dtype or (y.scale, y.zero_point) != want:
        raise ctx.fail(op, f"takes 8-bit codes and gives scale 1/256, zero point {want[1]} (not {y.scale}, "
                           f"{y.zero_point} of {y.dtype})")
    beta = float(op.options.Beta()) if op.options is not None else 1.0
    kernel = "opt" if ctx.engine.optimized else "ref"  # XNNPACK takes no int8 softmax
    ctx.host_step(op, x, y, lambda codes: host_softmax(kernel, codes, float(x.scale), beta, float(y.scale),
                                                       y.zero_point, y.dtype))


HANDLERS["SOFTMAX"] = softmax
