"""Elementwise activations of 8-bit codes as tables on VLUT: LOGISTIC in each engine's
arithmetic (tables.py)."""

from __future__ import annotations

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
