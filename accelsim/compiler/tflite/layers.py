"""CONV_2D, DEPTHWISE_CONV_2D and FULLY_CONNECTED: integer weights with per-channel (or
per-tensor) scales, an int32 bias in units of s_in * s_w, a fused activation; each layer takes
the requant mode of the engine's kernel (engines.py)."""

from __future__ import annotations

import numpy as np

from ..ir import QConv, QDepthwiseConv, QReshape, QTensor
from .context import TFLiteContext
from .load import TOp

_WEIGHT_TYPES = {"INT8": "s8", "UINT8": "u8", "INT4": "s4"}


def same_pads(size: int, k: int, stride: int, dilation: int) -> tuple[int, int]:
    """TFLite SAME padding of one dim: ceil(size / stride) outputs, the odd pad after."""
    out = -(-size // stride)
    total = max((out - 1) * stride + (k - 1) * dilation + 1 - size, 0)
    return total // 2, total - total // 2


def pads_of(padding: int, hw: tuple, k: tuple, stride: tuple, dil: tuple) -> tuple[int, int, int, int]:
    """(top, left, bottom, right) for Padding SAME (0) or VALID (1)."""
    if padding == 1:
        return (0, 0, 0, 0)
    (t, b), (lft, r) = (same_pads(hw[i], k[i], stride[i], dil[i]) for i in range(2))
    return (t, lft, b, r)


def _mode(ctx: TFLiteContext, op: TOp, kind: str, x: QTensor) -> str:
    """The engine's requant mode for this layer; 16-bit activations (16x8 kernels) are not pinned."""
    if x.dtype not in ("s8", "u8"):
        raise ctx.fail(op, f"{x.dtype} activations: only int8 and uint8 layers are matched to an engine yet")
    return ctx.engine.mode(kind, x.dtype)


def _weights(ctx: TFLiteContext, op: TOp, n_out: int, axis: int) -> tuple[np.ndarray, str, np.ndarray, int]:
    """Integer weights, their type, float32 scales (one per output channel) and the zero point."""
    w = ctx.const(op, 1, "weight")
    t = ctx.tensor(op.inputs[1])
    w_dtype = _WEIGHT_TYPES.get(t.type)
    if w_dtype is None:
        raise ctx.fail(op, f"weight {t.name!r} is {t.type}, not an integer type the MAC array takes (int8, uint8)")
    if not t.quantized:
        raise ctx.fail(op, f"weight {t.name!r} has no quantization parameters (a float model?)")
    scale, zp = t.scale.astype(np.float32), t.zero_point
    if scale.size not in (1, n_out) or (scale.size > 1 and t.axis != axis):
        raise ctx.fail(op, f"weight {t.name!r}: {scale.size} scales along axis {t.axis}; expected 1 or {n_out} "
                           f"along axis {axis}")
    if not (np.isfinite(scale) & (scale > 0)).all():
        raise ctx.fail(op, f"weight {t.name!r} has a scale that is not finite and positive")
    if np.unique(zp).size != 1:
        raise ctx.fail(op, f"weight {t.name!r} has several zero points; the MAC array takes one per layer")
    return np.asarray(w, np.int64), w_dtype, np.broadcast_to(scale, (n_out,)).copy(), int(zp.flat[0])


def _bias(ctx: TFLiteContext, op: TOp, n_out: int) -> np.ndarray:
    if not ctx.has_input(op, 2):
        return np.zeros(n_out, np.int64)
    b = ctx.const(op, 2, "bias")
    t = ctx.tensor(op.inputs[2])
    if t.type != "INT32":
        raise ctx.fail(op, f"bias {t.name!r} is {t.type}; int8 layers take an int32 bias")
    if b.size != n_out:
        raise ctx.fail(op, f"bias {t.name!r} has {b.size} values for {n_out} output channels")
    return np.asarray(b, np.int64).ravel()


def _check_out(ctx: TFLiteContext, op: TOp, y: QTensor, shape: tuple) -> None:
    if tuple(y.shape) != tuple(shape):
        raise ctx.fail(op, f"the output is declared {ctx.tensor(op.outputs[0]).shape}, the layer makes "
                           f"{(shape[0],) + tuple(shape[2:]) + (shape[1],) if len(shape) == 4 else shape}")


def _conv_out(size: int, k: int, stride: int, dil: int, pad: tuple) -> int:
    return (size + pad[0] + pad[1] - dil * (k - 1) - 1) // stride + 1


def conv_2d(ctx: TFLiteContext, op: TOp) -> None:
    """CONV_2D: OHWI weights; a filter with fewer input channels than the input is a grouped conv."""
    x = ctx.q(op, 0)
    o = op.options
    if len(x.shape) != 4:
        raise ctx.fail(op, f"input rank {len(x.shape)}: CONV_2D takes NHWC tensors")
    w_ohwi = ctx.const(op, 1, "weight")
    if w_ohwi.ndim != 4:
        raise ctx.fail(op, f"weight rank {w_ohwi.ndim}, expected OHWI")
    n_out, kh, kw, cin = w_ohwi.shape
    w, w_dtype, ws, wz = _weights(ctx, op, n_out, 0)
    if cin < 1 or x.shape[1] % cin or n_out % (x.shape[1] // cin):
        raise ctx.fail(op, f"weight {tuple(w_ohwi.shape)} does not fit the input's {x.shape[1]} channels")
    group = x.shape[1] // cin
    stride, dil = (o.StrideH(), o.StrideW()), (o.DilationHFactor(), o.DilationWFactor())
    _layer(ctx, op, x, w.transpose(0, 3, 1, 2), w_dtype, ws, wz, stride, dil, group, o.Padding(),
           o.FusedActivationFunction(), _mode(ctx, op, "conv", x))


def depthwise_conv_2d(ctx: TFLiteContext, op: TOp) -> None:
    """DEPTHWISE_CONV_2D: weights 1 x kh x kw x (C * multiplier); output channel c * m + j reads
    input channel c.  Multiplier 1 runs on DWCONV, others as a grouped conv."""
    x = ctx.q(op, 0)
    o = op.options
    if len(x.shape) != 4:
        raise ctx.fail(op, f"input rank {len(x.shape)}: DEPTHWISE_CONV_2D takes NHWC tensors")
    w_1hwc = ctx.const(op, 1, "weight")
    if w_1hwc.ndim != 4 or w_1hwc.shape[0] != 1:
        raise ctx.fail(op, f"weight shape {tuple(w_1hwc.shape)}, expected 1 x kh x kw x C*multiplier")
    n_out = w_1hwc.shape[3]
    c = x.shape[1]
    if n_out % c:
        raise ctx.fail(op, f"{n_out} output channels are not a multiple of the input's {c}")
    w, w_dtype, ws, wz = _weights(ctx, op, n_out, 3)
    stride, dil = (o.StrideH(), o.StrideW()), (o.DilationHFactor(), o.DilationWFactor())
    _mode(ctx, op, "depthwise", x)
    mode, tail = ctx.engine.depthwise_modes(n_out, x.dtype)
    _layer(ctx, op, x, w[0].transpose(2, 0, 1)[:, None], w_dtype, ws, wz, stride, dil, c, o.Padding(),
           o.FusedActivationFunction(), mode, tail)


def _layer(ctx: TFLiteContext, op: TOp, x: QTensor, w: np.ndarray, w_dtype: str, ws, wz: int, stride, dil,
           group: int, padding: int, act: int, mode: str, tail=None) -> None:
    n, c, h, wd = x.shape
    n_out, kh, kw = w.shape[0], w.shape[2], w.shape[3]
    if min(stride) < 1 or min(dil) < 1:
        raise ctx.fail(op, f"strides {stride} and dilations {dil} must be at least 1")
    pads = pads_of(padding, (h, wd), (kh, kw), stride, dil)
    oh = _conv_out(h, kh, stride[0], dil[0], (pads[0], pads[2]))
    ow = _conv_out(wd, kw, stride[1], dil[1], (pads[1], pads[3]))
    y = ctx.out(op)
    _check_out(ctx, op, y, (n, n_out, oh, ow))
    bias = _bias(ctx, op, n_out)
    depthwise = group > 1 and group == c == n_out
    cls = QDepthwiseConv if depthwise else QConv
    delegated = x.dtype == "s8" or not depthwise  # XNNPACK leaves a uint8 depthwise to the built-in kernel
    ctx.graph.nodes.append(cls(y.name, op.op, x.name, y.name, w, w_dtype, ws, wz, bias, tuple(stride), pads,
                               tuple(dil), group, ctx.clamp(op, y, act, delegated), requant=mode, requant_tail=tail))


def fully_connected(ctx: TFLiteContext, op: TOp) -> None:
    """FULLY_CONNECTED: weights O x K; an input of another rank is read as rows of K (a reshape
    to N x K first), and the output keeps the input's leading dims with keep_num_dims."""
    x = ctx.q(op, 0)
    o = op.options
    w2 = ctx.const(op, 1, "weight")
    if w2.ndim != 2:
        raise ctx.fail(op, f"weight rank {w2.ndim}, expected O x K")
    n_out, k = w2.shape
    size = int(np.prod(x.shape))
    if size % k:
        raise ctx.fail(op, f"input {x.shape} does not split into rows of {k}")
    if o is not None and o.WeightsFormat() != 0:
        raise ctx.fail(op, "shuffled weight formats are not supported")
    w, w_dtype, ws, wz = _weights(ctx, op, n_out, 0)
    rows = size // k
    if len(x.shape) != 2 or x.shape[1] != k:  # the file's order is the chip's: a view
        flat = QTensor(f"{x.name}:rows", (rows, k), x.dtype, x.scale, x.zero_point)
        ctx.graph.tensors[flat.name] = flat
        ctx.graph.nodes.append(QReshape(flat.name, "RESHAPE", x.name, flat.name, nhwc=True))
        x = flat
    y_t = ctx.tensor(op.outputs[0])
    y = ctx.out(op)
    if int(np.prod(y.shape)) != rows * n_out:
        raise ctx.fail(op, f"the output is declared {y_t.shape}, the layer makes {rows} x {n_out}")
    act = o.FusedActivationFunction() if o is not None else 0
    target = y
    if tuple(y.shape) != (rows, n_out):
        target = QTensor(f"{y.name}:rows", (rows, n_out), y.dtype, y.scale, y.zero_point)
        ctx.graph.tensors[target.name] = target
    ctx.graph.nodes.append(QConv(y.name, op.op, x.name, target.name, w.reshape(n_out, k, 1, 1), w_dtype, ws, wz,
                                 _bias(ctx, op, n_out), clamp=ctx.clamp(op, y, act, delegated=True),
                                 requant=_mode(ctx, op, "fc", x)))
    if target is not y:
        ctx.graph.nodes.append(QReshape(y.name + ":view", "RESHAPE", target.name, y.name, nhwc=True))
