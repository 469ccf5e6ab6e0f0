"""Float regions ONNX Runtime computes between DequantizeLinear and QuantizeLinear that no chip
op reproduces (float32 sums, interpolations, pools of float results): a host step (QHost) maps
the codes of the region's quantized input to the codes of its QuantizeLinear with ORT's own
float arithmetic (accelsim.compiler.hostops).

While the import walks such a region, its float tensors are *lazy*: the quantized tensor they
come from and the float function of its codes built so far.  A region starts at a dequantized
tensor or a chain of elementwise float ops on one (accelsim.compiler.onnx.chains), takes
GlobalAveragePool, ReduceMean, MaxPool, ConvTranspose, Resize (linear), BatchNormalization,
Reshape/Flatten and elementwise ops, and ends at a QuantizeLinear.  QLinearSoftmax (and the
Softmax ORT fuses into it) is a host step on codes.

ORT runs a float GlobalAveragePool in its blocked-channel layout (NCHWc) when its input comes
from a float MaxPool/AveragePool that the NCHWc transformer rewrote (C a multiple of the block,
8 on AVX2 and 16 with AVX-512) and otherwise with MLAS's plain kernel; the two sum in different
orders.  ReduceMean runs in NHWC when ORT's layout transformer pushed a transpose through it
(its input descends from a convolution), else in NCHW.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np
import onnx

from isa.quant import dequantize, quantize

from .. import hostops as H
from ..cpu import nchwc_block
from ..ir import ModelError, QHost, QTensor
from . import chains
from .context import ImportContext, attrs

FloatOp = Callable[[np.ndarray], np.ndarray]


@dataclass(frozen=True)
class Lazy:
    """A float tensor of a host region: ``fn`` maps the codes of ``src`` (ONNX order) to it."""

    src: str
    fn: FloatOp
    shape: tuple
    ops: tuple[str, ...]
    nchwc: bool = False  # made by an op ORT runs in its blocked-channel layout


BLOCK = nchwc_block()  # MLAS NCHWc channel block on this CPU


def lazy_of(ctx: ImportContext, n: onnx.NodeProto, x: str) -> Lazy:
    """The lazy float tensor ``x``: an open region, a chain, or a dequantized tensor."""
    if x in ctx.lazy:
        return ctx.lazy[x]
    chain = chains.chain_of(ctx, x)
    if chain is None:
        raise ModelError(n.name, n.op_type, f"input {x!r} is not a dequantized tensor")
    src = ctx.graph.tensors[chain.src]
    if chain.reshape is not None:
        raise ModelError(n.name, n.op_type, f"input {x!r} is a reshaped float tensor")
    if not chain.steps:
        return Lazy(src.name, lambda q: dequantize(q, src.scale, src.zero_point), src.shape, ())
    table = chains.chain_floats(src, chain)
    if table.ndim == 1:
        return Lazy(src.name, lambda q: table[np.asarray(q, np.int64) & 255], src.shape, chain.ops)
    channel = np.arange(src.shape[1]).reshape((1, -1) + (1,) * (len(src.shape) - 2))
    return Lazy(src.name, lambda q: table[channel, np.asarray(q, np.int64) & 255], src.shape, chain.ops)


def is_lazy(ctx: ImportContext, x: str) -> bool:
    return x in ctx.lazy


def _then(ctx: ImportContext, n: onnx.NodeProto, x: Lazy, op: FloatOp, shape: tuple, nchwc: bool = False) -> None:
    """Extend the region by one float op on ``x``."""
    f = x.fn
    ctx.lazy[n.output[0]] = Lazy(x.src, lambda q: op(f(q)), tuple(shape), x.ops + (n.op_type,), nchwc)
    ctx.shapes[n.output[0]] = tuple(shape)


def finish(ctx: ImportContext, qn: onnx.NodeProto) -> None:
    """The QuantizeLinear ending a region: its host step."""
    x = ctx.lazy[qn.input[0]]
    y = ctx.add_tensor(qn, qn.output[0], x.shape, *ctx.qparams(qn))
    f = x.fn

    def fn(inputs: list[np.ndarray]) -> np.ndarray:
        return quantize(f(inputs[0]), y.scale, y.zero_point, y.dtype)

    ctx.graph.nodes.append(QHost(qn.name, "+".join(x.ops) or "Identity", (x.src,), y.name, fn))


# ------------------------------------------------------------------ region ops
def global_average_pool(ctx: ImportContext, n: onnx.NodeProto) -> None:
    x = lazy_of(ctx, n, n.input[0])
    nb, c = x.shape[:2]
    blocked = x.nchwc and BLOCK > 1 and c % BLOCK == 0
    _then(ctx, n, x, H.gap_sequential if blocked else H.gap_lanes, (nb, c, 1, 1), blocked)


def max_pool(ctx: ImportContext, n: onnx.NodeProto) -> None:
    """A float MaxPool of a region (exact): ORT runs it NCHWc when the channels fill blocks."""
    from .pools import pool_geometry

    x = lazy_of(ctx, n, n.input[0])
    src = QTensor(n.input[0], x.shape, "u8", np.float32(1), 0)
    k, st, dil, pads, shape = pool_geometry(n, src)
    _then(ctx, n, x, lambda v: H.max_pool(v, k, st, pads, dil, shape[2:]), shape,
          BLOCK > 1 and x.shape[1] % BLOCK == 0)


def reduce_mean(ctx: ImportContext, n: onnx.NodeProto) -> None:
    """ReduceMean over H and W with keepdims."""
    x = lazy_of(ctx, n, n.input[0])
    a = attrs(n)
    axes = a.get("axes")
    if axes is None and len(n.input) > 1 and n.input[1]:
        axes = ctx.init(n, n.input[1], "axes").tolist()
    rank = len(x.shape)
    axes = sorted(int(v) % rank for v in (axes if axes is not None else range(rank)))
    if rank != 4 or axes != [2, 3] or not a.get("keepdims", 1):
        raise ModelError(n.name, n.op_type, f"only ReduceMean over H and W with keepdims is supported "
                                            f"(axes {axes} of a rank-{rank} tensor)")
    nhwc = ctx.graph.tensors[x.src].name not in ctx.graph.inputs.values()
    _then(ctx, n, x, lambda v: H.reduce_mean_hw(v, nhwc), (x.shape[0], x.shape[1], 1, 1))


def reshape(ctx: ImportContext, n: onnx.NodeProto) -> None:
    from .layout import reshape_shape

    x = lazy_of(ctx, n, n.input[0])
    shape = reshape_shape(ctx, n, x.shape)
    _then(ctx, n, x, lambda v: v.reshape(shape), shape)


def elementwise(ctx: ImportContext, n: onnx.NodeProto, step: FloatOp) -> None:
    x = ctx.lazy[n.input[0]]
    _then(ctx, n, x, step, x.shape, x.nchwc)


def batch_norm(ctx: ImportContext, n: onnx.NodeProto, params: list[np.ndarray]) -> None:
    x = lazy_of(ctx, n, n.input[0])
    eps = float(np.float32(attrs(n).get("epsilon", 1e-5)))
    _then(ctx, n, x, lambda v: H.batch_norm(v, *params, eps), x.shape)


def conv_transpose(ctx: ImportContext, n: onnx.NodeProto) -> None:
    """ConvTranspose: ORT has no integer kernel, it runs in float between DequantizeLinear and Q
    (QDQ: weights behind a DequantizeLinear; QOperator leaves them float initializers)."""
    a = attrs(n)
    x = lazy_of(ctx, n, n.input[0])
    w = ctx.floats.get(n.input[1])
    if w is None:
        w = np.asarray(ctx.init(n, n.input[1], "weight"), np.float32)
    bias = None
    if len(n.input) > 2 and n.input[2]:
        bias = ctx.floats.get(n.input[2])
        bias = np.asarray(ctx.init(n, n.input[2], "bias"), np.float32) if bias is None else bias
    if w.ndim != 4 or any(d != 1 for d in a.get("dilations", (1, 1))) or "output_shape" in a:
        raise ModelError(n.name, n.op_type, "only 2-D ConvTranspose without dilation or output_shape is supported")
    mode = a.get("auto_pad", b"NOTSET")
    if (mode.decode() if isinstance(mode, bytes) else mode) != "NOTSET":
        raise ModelError(n.name, n.op_type, "auto_pad is not supported for ConvTranspose")
    stride = tuple(a.get("strides", (1, 1)))
    p = tuple(a.get("pads", (0, 0, 0, 0)))
    out_pad = tuple(a.get("output_padding", (0, 0)))
    group = int(a.get("group", 1))
    nb, c, h, wd = x.shape
    if w.shape[0] != c:
        raise ModelError(n.name, n.op_type, f"shape mismatch: weight {w.shape} for {c} input channels")
    oh = (h - 1) * stride[0] + w.shape[2] + out_pad[0] - p[0] - p[2]
    ow = (wd - 1) * stride[1] + w.shape[3] + out_pad[1] - p[1] - p[3]
    _then(ctx, n, x, lambda v: H.conv_transpose(v, w, bias, stride, p, out_pad, group),
          (nb, w.shape[1] * group, oh, ow))


def resize_linear(ctx: ImportContext, n: onnx.NodeProto, out_hw: tuple, scales_hw: tuple, mode: str) -> None:
    x = lazy_of(ctx, n, n.input[0])
    _then(ctx, n, x, lambda v: H.resize_linear(v, out_hw, scales_hw, mode), x.shape[:2] + tuple(out_hw))


# ------------------------------------------------------------------ softmax on codes
def _qsoftmax(ctx: ImportContext, n: onnx.NodeProto, src: QTensor, y_node, y_name: str, y_scale, y_zp) -> None:
    axis = int(attrs(n).get("axis", -1 if ctx.graph.opset >= 13 else 1)) % len(src.shape)
    if axis != len(src.shape) - 1:
        raise ModelError(n.name, n.op_type, f"Softmax over axis {axis} of {src.shape}: only the last axis is supported")
    y = ctx.add_tensor(y_node, y_name, src.shape, y_scale, y_zp)
    if y.dtype not in ("u8", "s8") or src.dtype != y.dtype:
        raise ModelError(n.name, n.op_type, f"QLinearSoftmax takes 8-bit codes of one type ({src.dtype} -> {y.dtype})")
    x_scale, signed = float(src.scale), src.dtype == "s8"

    def fn(inputs: list[np.ndarray]) -> np.ndarray:
        return H.qlinear_softmax(inputs[0], x_scale, float(y.scale), y.zero_point, signed)

    ctx.graph.nodes.append(QHost(n.name, "QLinearSoftmax", (src.name,), y.name, fn))


def softmax(ctx: ImportContext, n: onnx.NodeProto) -> None:
    """QDQ DequantizeLinear -> Softmax -> QuantizeLinear, which ORT fuses into QLinearSoftmax."""
    qn = ctx.quantized_at.get(n.output[0])
    if n.input[0] not in ctx.q_of_float or qn is None:
        raise ModelError(n.name, n.op_type, "Softmax of a float result inside the network is not supported")
    src = ctx.graph.tensors[ctx.q_of_float[n.input[0]]]
    _qsoftmax(ctx, n, src, qn, qn.output[0], *ctx.qparams(qn))
    ctx.shapes[n.output[0]] = src.shape


def qlinear_softmax(ctx: ImportContext, n: onnx.NodeProto) -> None:
    """QOperator QLinearSoftmax(x, s_x, z_x, s_y, z_y)."""
    src = ctx.qlinear_input(n, n.input[0], 1, 2)
    _qsoftmax(ctx, n, src, n, n.output[0], ctx.init(n, n.input[3], "output scale"),
              ctx.init(n, n.input[4], "output zero point"))

