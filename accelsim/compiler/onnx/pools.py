"""Pools: MaxPool, AveragePool and GlobalAveragePool (QDQ), QLinearAveragePool and
QLinearGlobalAveragePool (QOperator), MaxPool on a quantized tensor."""

from __future__ import annotations

import onnx

from isa.table import DTYPES

from ..ir import ModelError, QAvgPool, QGlobalAvgPool, QMaxPool, QTensor
from ..lut import identity
from . import islands
from .context import ImportContext, attrs, clamp_for, dtype_name, explicit_pads, scalar_f32, scalar_int
from .tables import add_lut


def _pool_size(size: int, k: int, s: int, d: int, p0: int, p1: int, ceil_mode: bool) -> int:
    span = size + p0 + p1 - d * (k - 1) - 1
    o = (-(-span // s) if ceil_mode else span // s) + 1
    if ceil_mode and (o - 1) * s >= size + p0:  # the last window must start inside
        o -= 1
    return o


def pool_geometry(n: onnx.NodeProto, src: QTensor) -> tuple:
    """(kernel, strides, dilations, pads top/left/bottom/right, output shape) of a 2-D pool."""
    a = attrs(n)
    if len(src.shape) != 4:
        raise ModelError(n.name, n.op_type, f"expects an NCHW input, got shape {src.shape}")
    if len(n.output) > 1 and n.output[1]:
        raise ModelError(n.name, n.op_type, "the Indices output is not supported")
    if len(a.get("kernel_shape", ())) != 2:
        raise ModelError(n.name, n.op_type, f"only 2-D pooling is supported (kernel_shape {a.get('kernel_shape')})")
    kh, kw = a["kernel_shape"]
    sh, sw = a.get("strides", (1, 1))
    dh, dw = a.get("dilations", (1, 1))
    pt, pl, pb, pr = explicit_pads(n, src.shape[2:], (kh, kw), (sh, sw), (dh, dw))
    ceil = bool(a.get("ceil_mode", 0))
    _, c, h, w = src.shape
    shape = (src.shape[0], c, _pool_size(h, kh, sh, dh, pt, pb, ceil), _pool_size(w, kw, sw, dw, pl, pr, ceil))
    return (kh, kw), (sh, sw), (dh, dw), (pt, pl, pb, pr), shape


def _add_maxpool(ctx: ImportContext, n: onnx.NodeProto, src: QTensor, out_name: str) -> None:
    k, st, dil, pads, shape = pool_geometry(n, src)
    ctx.alias_tensor(out_name, src, shape)
    ctx.graph.nodes.append(QMaxPool(n.name, n.op_type, src.name, out_name, k, st, pads, dil))


def _add_avgpool(ctx: ImportContext, n: onnx.NodeProto, src: QTensor, out_node, y_name: str, y_scale, y_zp) -> None:
    k, st, dil, pads, shape = pool_geometry(n, src)
    y = ctx.add_tensor(out_node, y_name, shape, y_scale, y_zp)
    if DTYPES[y.dtype][0] > 8 or DTYPES[src.dtype][0] > 8:
        raise ModelError(n.name, n.op_type, "average pooling of 16-bit tensors is not supported")
    ctx.graph.nodes.append(QAvgPool(n.name, n.op_type, src.name, y.name, k, st, pads, dil,
                                    count_include_pad=bool(attrs(n).get("count_include_pad", 0))))


def max_pool(ctx: ImportContext, n: onnx.NodeProto) -> None:
    """QDQ MaxPool.  Other quantization out than in: max commutes with the monotone
    DequantizeLinear, so pool, then requantize by a table.  Of a float result (a chain or a host
    region): a host step (accelsim.compiler.onnx.islands)."""
    if n.input[0] in ctx.chains or n.input[0] in ctx.lazy:
        islands.max_pool(ctx, n)
        return
    src, qn = ctx.quantized_io(n)
    qs, qz = ctx.qparams(qn)
    if (scalar_f32(qs), scalar_int(qz), dtype_name(qz, qn.name, qn.op_type)) == (src.scale, src.zero_point, src.dtype):
        _add_maxpool(ctx, n, src, qn.output[0])
    else:
        _add_maxpool(ctx, n, src, qn.output[0] + "::pooled")
        add_lut(ctx, n, ctx.graph.tensors[qn.output[0] + "::pooled"], qn, qn.output[0], qs, qz, identity)
    ctx.shapes[n.output[0]] = ctx.graph.tensors[qn.output[0]].shape


def qop_max_pool(ctx: ImportContext, n: onnx.NodeProto) -> None:
    """QOperator MaxPool: on the quantized tensor itself."""
    _add_maxpool(ctx, n, ctx.quantized_input(n), n.output[0])


def average_pool(ctx: ImportContext, n: onnx.NodeProto) -> None:
    src, qn = ctx.quantized_io(n)
    _add_avgpool(ctx, n, src, qn, qn.output[0], *ctx.qparams(qn))
    ctx.shapes[n.output[0]] = ctx.graph.tensors[qn.output[0]].shape


def qlinear_average_pool(ctx: ImportContext, n: onnx.NodeProto) -> None:
    if attrs(n).get("channels_last", 0):
        raise ModelError(n.name, n.op_type, "channels_last=1 is not supported")
    src = ctx.qlinear_input(n, n.input[0], 1, 2)
    _add_avgpool(ctx, n, src, n, n.output[0], ctx.init(n, n.input[3], "output scale"),
                 ctx.init(n, n.input[4], "output zero point"))


def global_average_pool(ctx: ImportContext, n: onnx.NodeProto) -> None:
    """QDQ GlobalAveragePool of a dequantized tensor: ORT's QLinearGlobalAveragePool (integer
    sum, float32 scale); of a chain's float result: a host step (accelsim.compiler.onnx.islands)."""
    if n.input[0] in ctx.chains or n.input[0] in ctx.lazy:
        islands.global_average_pool(ctx, n)
        return
    out, act = ctx.activation_after(n.output[0])
    src, qn = ctx.quantized_io(n, out)
    if len(src.shape) != 4:
        raise ModelError(n.name, n.op_type, f"expects an NCHW input, got shape {src.shape}")
    t = ctx.add_tensor(qn, qn.output[0], (src.shape[0], src.shape[1], 1, 1), *ctx.qparams(qn))
    ctx.graph.nodes.append(QGlobalAvgPool(n.name, n.op_type, src.name, t.name, clamp_for(t, act)))
    ctx.shapes[out] = t.shape


def qlinear_global_average_pool(ctx: ImportContext, n: onnx.NodeProto) -> None:
    src = ctx.quantized_input(n)
    if attrs(n).get("channels_last", 0):
        raise ModelError(n.name, n.op_type, "channels_last=1 is not supported")
    t = ctx.add_tensor(n, n.output[0], (src.shape[0], src.shape[1], 1, 1),
                       ctx.init(n, n.input[3], "output scale"), ctx.init(n, n.input[4], "output zero point"))
    ctx.graph.nodes.append(QGlobalAvgPool(n.name, n.op_type, src.name, t.name))
