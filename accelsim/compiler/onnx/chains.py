"""Chains of elementwise float ops between a DequantizeLinear and a QuantizeLinear: each becomes a
lookup table (QLut) over the 256 codes of the 8-bit input, holding exactly ONNX Runtime's float
result (accelsim.compiler.floatops), one table per channel when a constant operand varies by
channel.

A chain starts at a dequantized activation, takes unary ops (Relu, Clip, LeakyRelu, PRelu,
HardSigmoid, HardSwish, Sigmoid, Tanh, Neg, Abs) and binary ops with one constant operand (Add,
Sub, Mul, Div by a scalar or per-channel constant: an initializer, a Constant, or a quantized
constant behind its own DequantizeLinear), optionally one Flatten/Reshape, and ends at the
QuantizeLinear that reads it.  Relu / Clip right after a layer are not chains: the layer's clamp
takes them (ImportContext.activation_after).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Callable, Optional

import numpy as np
import onnx

from isa.quant import quantize
from isa.table import DTYPES

from .. import floatops as F
from ..ir import ModelError, QLut, QReshape, QTensor
from .context import ImportContext, attrs, scalar_f32
from .layout import reshape_shape

UNARY_OPS = ("Relu", "Clip", "LeakyRelu", "PRelu", "HardSigmoid", "HardSwish", "Sigmoid", "Tanh", "Neg", "Abs")
BINARY_OPS = ("Add", "Sub", "Mul", "Div")


@dataclass(frozen=True)
class Chain:
    """Float ops applied to a dequantized tensor, not yet quantized again."""

    src: str                                   # the quantized tensor the chain starts from
    steps: tuple[Callable[[np.ndarray], np.ndarray], ...]
    per_channel: bool                          # a step's constant varies by channel
    nodes: tuple[str, ...]                     # node names, in order
    ops: tuple[str, ...]                       # their op types
    reshape: Optional[onnx.NodeProto] = None   # a Flatten/Reshape before the QuantizeLinear


def chain_of(ctx: ImportContext, x: str) -> Optional[Chain]:
    """The chain a float tensor belongs to: a dequantized activation starts one."""
    if x in ctx.chains:
        return ctx.chains[x]
    if x in ctx.q_of_float:
        return Chain(ctx.q_of_float[x], (), False, (), ())
    return None


def constant_value(ctx: ImportContext, name: str) -> Optional[np.ndarray]:
    """The float value of a constant operand (an initializer, or an initializer behind a
    DequantizeLinear), or None when the operand is an activation."""
    if name in ctx.floats:
        return np.asarray(ctx.floats[name], np.float32)
    if name in ctx.inits and name not in ctx.q_of_float:
        return np.asarray(ctx.inits[name], np.float32)
    return None


def _per_channel(n: onnx.NodeProto, c: np.ndarray, src: QTensor) -> tuple[np.ndarray, bool]:
    """A constant as a scalar, or as a (C, 1) column that varies by channel (NCHW axis 1)."""
    if c.size == 1:
        return c.reshape(()), False
    rank = len(src.shape)
    if c.ndim > rank:
        raise ModelError(n.name, n.op_type, f"constant of shape {c.shape} broadcasts beyond the input {src.shape}")
    full = np.broadcast_to(c.reshape((1,) * (rank - c.ndim) + c.shape), src.shape)
    per = full.reshape(src.shape[0], src.shape[1], -1)
    if not (per == per[:1, :, :1]).all():
        raise ModelError(n.name, n.op_type, f"a constant of shape {c.shape} varies over more than the channels")
    return per[0, :, 0].reshape(-1, 1), True


def _step(ctx: ImportContext, n: onnx.NodeProto, src: QTensor) -> tuple[Callable, bool]:
    """The float function of one unary node (and whether it is per channel)."""
    op, a = n.op_type, attrs(n)
    if op == "Clip":
        lo = ctx.optional_init(n, 1, "min")
        hi = ctx.optional_init(n, 2, "max")
        return F.clip(np.float32(-np.inf) if lo is None else scalar_f32(lo),
                      np.float32(np.inf) if hi is None else scalar_f32(hi)), False
    if op == "LeakyRelu":
        return F.leaky_relu(np.float32(a.get("alpha", 0.01))), False
    if op == "HardSigmoid":
        return F.hard_sigmoid(np.float32(a.get("alpha", 0.2)), np.float32(a.get("beta", 0.5))), False
    if op == "PRelu":
        slope = constant_value(ctx, n.input[1])
        if slope is None:
            raise ModelError(n.name, op, "the slope must be a constant")
        s, per = _per_channel(n, slope, src)
        return F.prelu(s), per
    return F.UNARY[op], False


def _extend(ctx: ImportContext, n: onnx.NodeProto, chain: Chain, step: Callable, per: bool) -> None:
    if chain.reshape is not None:
        raise ModelError(n.name, n.op_type, "an elementwise op after a Flatten/Reshape of a float tensor")
    ctx.chains[n.output[0]] = Chain(chain.src, chain.steps + (step,), chain.per_channel or per,
                                    chain.nodes + (n.name,), chain.ops + (n.op_type,))
    ctx.shapes[n.output[0]] = ctx.graph.tensors[chain.src].shape


def unary(ctx: ImportContext, n: onnx.NodeProto) -> None:
    """An elementwise unary float op: the next step of a chain (or a layer's fused activation),
    or of a host region."""
    if n.input[0] in ctx.lazy:
        from .islands import elementwise

        src = ctx.graph.tensors[ctx.lazy[n.input[0]].src]
        step, per = _step(ctx, n, _at_shape(src, ctx.lazy[n.input[0]].shape))
        elementwise(ctx, n, _full_tensor(step, per))
        return
    chain = chain_of(ctx, n.input[0])
    if chain is None:
        if n.op_type in ("Relu", "Clip"):
            return  # folded into the layer before it (ImportContext.activation_after)
        raise ModelError(n.name, n.op_type, f"input {n.input[0]!r} is not a dequantized tensor")
    step, per = _step(ctx, n, ctx.graph.tensors[chain.src])
    _extend(ctx, n, chain, step, per)


def constant_binary(ctx: ImportContext, n: onnx.NodeProto) -> bool:
    """Add / Sub / Mul / Div with one constant operand as a chain step; False when neither
    operand is a constant (a binary op of two tensors)."""
    consts = [constant_value(ctx, i) for i in n.input[:2]]
    if (consts[0] is None) == (consts[1] is None):
        if consts[0] is not None:
            raise ModelError(n.name, n.op_type, "both operands are constants (fold them before quantizing)")
        return False
    k = 0 if consts[0] is not None else 1
    if n.input[1 - k] in ctx.lazy:
        from .islands import elementwise

        c = np.asarray(consts[k], np.float32)
        elementwise(ctx, n, F.binary(n.op_type, c, const_first=k == 0))
        return True
    chain = chain_of(ctx, n.input[1 - k])
    if chain is None:
        raise ModelError(n.name, n.op_type, f"input {n.input[1 - k]!r} is not a dequantized tensor")
    c, per = _per_channel(n, consts[k], ctx.graph.tensors[chain.src])
    _extend(ctx, n, chain, F.binary(n.op_type, c, const_first=k == 0), per)
    return True


def _at_shape(src: QTensor, shape: tuple) -> QTensor:
    return QTensor(src.name, tuple(shape), src.dtype, src.scale, src.zero_point)


def _full_tensor(step: Callable, per: bool) -> Callable:
    """A chain step (made for (C, 256) tables when ``per``) applied to a whole NCHW tensor."""
    if not per:
        return step
    return lambda x: np.moveaxis(step(np.moveaxis(np.asarray(x, np.float32), 1, -2)), -2, 1)


def reshape_of_chain(ctx: ImportContext, n: onnx.NodeProto) -> bool:
    """A Flatten/Reshape of a chain's float tensor: it moves after the table.  False otherwise."""
    chain = ctx.chains.get(n.input[0])
    if chain is None:
        return False
    if chain.reshape is not None:
        raise ModelError(n.name, n.op_type, "two reshapes of a float tensor before its QuantizeLinear")
    ctx.chains[n.output[0]] = replace(chain, reshape=n)
    ctx.shapes[n.output[0]] = reshape_shape(ctx, n, ctx.graph.tensors[chain.src].shape)
    return True


def chain_floats(src: QTensor, chain: Chain) -> np.ndarray:
    """steps(DQ(code)) in float32 for the 256 codes: (256,) or, per channel, (C, 256)."""
    bits, signed = DTYPES[src.dtype]
    v = np.arange(256, dtype=np.int64) & ((1 << bits) - 1)
    if signed:
        v = np.where(v >= 1 << (bits - 1), v - (1 << bits), v)
    x = (np.float32(src.scale) * (v - src.zero_point).astype(np.float32)).astype(np.float32)
    if chain.per_channel:
        x = np.broadcast_to(x, (src.shape[1], 256)).copy()
    for step in chain.steps:
        x = np.asarray(step(x), np.float32)
    return np.broadcast_to(x, (src.shape[1], 256) if chain.per_channel else (256,))


def chain_table(src: QTensor, dst: QTensor, chain: Chain) -> np.ndarray:
    """Q(steps(DQ(code))) for the 256 codes: (256,) or, per channel, (C, 256)."""
    return quantize(chain_floats(src, chain), dst.scale, dst.zero_point, dst.dtype).astype(np.int64)


def finish(ctx: ImportContext, qn: onnx.NodeProto, chain: Chain) -> None:
    """The QuantizeLinear ending a chain: its QLut (and the reshape after it)."""
    src = ctx.graph.tensors[chain.src]
    if DTYPES[src.dtype][0] > 8:
        raise ModelError(chain.nodes[-1] if chain.nodes else qn.name, chain.ops[-1] if chain.ops else qn.op_type,
                         f"an elementwise float op on a {src.dtype} tensor is not "
                                                         "supported (the lookup table takes 8-bit codes)")
    out = qn.output[0] + "::mapped" if chain.reshape is not None else qn.output[0]
    y = ctx.add_tensor(qn, out, src.shape, *ctx.qparams(qn))
    if DTYPES[y.dtype][0] > 8:
        raise ModelError(chain.nodes[-1] if chain.nodes else qn.name, chain.ops[-1] if chain.ops else qn.op_type,
                         f"output type {y.dtype}: the lookup table yields at most 8 bits")
    name = chain.nodes[-1] if chain.nodes else qn.name  # no ops: a requantization
    ops = "+".join(chain.ops) or "Requantize"
    ctx.graph.nodes.append(QLut(name, ops, src.name, y.name, chain_table(src, y, chain)))
    if chain.reshape is not None:
        r = chain.reshape
        ctx.alias_tensor(qn.output[0], y, reshape_shape(ctx, r, src.shape))
        ctx.graph.nodes.append(QReshape(r.name, r.op_type, y.name, qn.output[0]))

