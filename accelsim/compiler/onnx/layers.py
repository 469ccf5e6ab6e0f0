"""Convolutions and fully connected layers: Conv / Gemm / MatMul between DequantizeLinear and
QuantizeLinear (QDQ), QLinearConv / QGemm / QLinearMatMul (QOperator)."""

from __future__ import annotations

from typing import Optional

import numpy as np
import onnx

from ..ir import ModelError, conv_class
from .context import Activation, ImportContext, attrs, clamp_for, dtype_name, explicit_pads, scalar_f32, scalar_int

#: QOperator layers: input index of (weight, weight scale, weight zero point, output scale,
#: output zero point, bias); None where the op has no such input
_QLINEAR_INPUTS = {"QLinearConv": (3, 4, 5, 6, 7, 8), "QGemm": (3, 4, 5, 7, 8, 6), "QLinearMatMul": (3, 4, 5, 6, 7, None)}


def _conv_geometry(node: onnx.NodeProto, in_shape: tuple, w_shape: tuple) -> tuple:
    """(strides, pads top/left/bottom/right, dilations, group, output shape) of a 2-D Conv."""
    a = attrs(node)
    kh, kw = w_shape[2], w_shape[3]
    strides = tuple(a.get("strides", (1, 1)))
    dil = tuple(a.get("dilations", (1, 1)))
    p = explicit_pads(node, in_shape[2:], (kh, kw), strides, dil)  # top, left, bottom, right
    group = int(a.get("group", 1))
    n, c, h, w = in_shape
    oh = (h + p[0] + p[2] - dil[0] * (kh - 1) - 1) // strides[0] + 1
    ow = (w + p[1] + p[3] - dil[1] * (kw - 1) - 1) // strides[1] + 1
    return strides, (p[0], p[1], p[2], p[3]), dil, group, (n, w_shape[0], oh, ow)


def _conv_form(n: onnx.NodeProto, x_shape: tuple, w: np.ndarray) -> tuple:
    """Weight (N, C/group, kh, kw) and geometry of a convolution."""
    if w.ndim != 4:
        raise ModelError(n.name, n.op_type, f"only 2-D convolutions are supported (weight rank {w.ndim})")
    stride, pads, dil, group, out_shape = _conv_geometry(n, x_shape, w.shape)
    if w.shape[1] * group != x_shape[1]:
        raise ModelError(n.name, n.op_type, f"shape mismatch: weight {tuple(w.shape)} with group={group} takes "
                                            f"{w.shape[1] * group} input channels, the input {tuple(x_shape)} has {x_shape[1]}")
    if w.shape[0] % group:
        raise ModelError(n.name, n.op_type, f"group={group} does not divide the {w.shape[0]} output channels")
    return w, stride, pads, dil, group, out_shape


def _fc_form(n: onnx.NodeProto, x_shape: tuple, w: np.ndarray) -> tuple:
    """A fully connected layer as a 1x1 convolution: weight (N, K, 1, 1) and geometry."""
    a = attrs(n)
    if a.get("transA", 0):
        raise ModelError(n.name, n.op_type, "transA=1 is not supported")
    if (n.op_type in ("Gemm", "QGemm") and not a.get("transB", 0)) or n.op_type in ("MatMul", "QLinearMatMul"):
        w = w.T
    if len(x_shape) != 2 or x_shape[1] != w.shape[1]:
        raise ModelError(n.name, n.op_type, f"input shape {x_shape} does not match weight {w.shape}")
    if float(a.get("alpha", 1.0)) != 1.0 or float(a.get("beta", 1.0)) != 1.0:
        raise ModelError(n.name, n.op_type, "alpha/beta other than 1 are not supported")
    return w.reshape(w.shape[0], w.shape[1], 1, 1), (1, 1), (0, 0, 0, 0), (1, 1), 1, (x_shape[0], w.shape[0])


def add_layer(ctx: ImportContext, n: onnx.NodeProto, x_name: str, w, ws, wz, bias, y_name: str, y_scale, y_zp,
              act: Activation) -> None:
    """A QConv (or QDepthwiseConv) from integer weights, their scales, an int32 bias and the output."""
    x = ctx.graph.tensors[x_name]
    conv = n.op_type in ("Conv", "QLinearConv")
    weight, stride, pads, dil, group, out_shape = (_conv_form if conv else _fc_form)(n, x.shape, w)
    n_out = weight.shape[0]
    w_scale, w_zp = ctx.weight_params(n, ws, wz, n_out)
    b = np.zeros(n_out, np.int64) if bias is None else np.asarray(bias, np.int64).ravel()
    if b.size != n_out:
        raise ModelError(n.name, n.op_type, f"bias has {b.size} values for {n_out} channels")
    y = ctx.add_tensor(n, y_name, out_shape, y_scale, y_zp)
    cls = conv_class(group, x.shape[1], weight.shape)
    ctx.graph.nodes.append(cls(n.name, n.op_type, x.name, y.name, np.asarray(weight, np.int64),
                               dtype_name(w, n.name, n.op_type), w_scale, w_zp, b, stride, pads, dil, group,
                               clamp_for(y, act)))


def layer(ctx: ImportContext, n: onnx.NodeProto) -> None:
    """QDQ: DequantizeLinear(x), DequantizeLinear(integer weight[, int32 bias]) -> Conv / Gemm /
    MatMul -> [Relu | Clip] -> QuantizeLinear."""
    (x,) = ctx.quantized_inputs(n, n.input[:1])
    if n.input[1] not in ctx.weights:
        raise ModelError(n.name, n.op_type, f"weight {n.input[1]!r} is not a quantized initializer (missing scale?)")
    w, ws, wz = ctx.weights[n.input[1]]
    bias: Optional[np.ndarray] = None
    if len(n.input) > 2 and n.input[2]:
        if n.input[2] not in ctx.weights:
            raise ModelError(n.name, n.op_type, f"bias {n.input[2]!r} is not a quantized initializer")
        bias = ctx.weights[n.input[2]][0]
    out, act = ctx.activation_after(n.output[0])
    qn = ctx.output_q(n, out)
    add_layer(ctx, n, x.name, w, ws, wz, bias, qn.output[0], *ctx.qparams(qn), act)
    ctx.shapes[out] = ctx.graph.tensors[qn.output[0]].shape


def qlinear_layer(ctx: ImportContext, n: onnx.NodeProto) -> None:
    """QOperator: QLinearConv / QGemm / QLinearMatMul with all parameters as initializers."""
    x = n.input[0]
    if x not in ctx.graph.tensors:
        raise ModelError(n.name, n.op_type, f"input {x!r} is not a quantized tensor")
    wi, wsi, wzi, ysi, yzi, bi = _QLINEAR_INPUTS[n.op_type]
    w, ws, wz = (ctx.init(n, n.input[i], what) for i, what in ((wi, "weight"), (wsi, "weight scale"),
                                                              (wzi, "weight zero point")))
    bias = ctx.optional_init(n, bi, "bias") if bi is not None else None
    if n.op_type == "QGemm" and len(n.input) < 9:
        raise ModelError(n.name, n.op_type, "QGemm without an output scale (float output) is not supported")
    ys, yz = ctx.init(n, n.input[ysi], "output scale"), ctx.init(n, n.input[yzi], "output zero point")
    xt = ctx.graph.tensors[x]
    if scalar_f32(ctx.init(n, n.input[1], "input scale")) != xt.scale or \
            scalar_int(ctx.init(n, n.input[2], "input zero point")) != xt.zero_point:
        raise ModelError(n.name, n.op_type, f"input quantization of {x!r} differs from its producer's")
    add_layer(ctx, n, x, w, ws, wz, bias, n.output[0], ys, yz, None)
