"""Resize of a 4-D NCHW tensor over H and W (the upsampling of feature-pyramid necks).

mode=nearest gathers codes: ONNX Runtime drops the DequantizeLinear / QuantizeLinear pair around
it in QDQ models and runs it on the codes (QOperator models do so anyway), so the chip copies
pixels with strided DMA (a QCopy; an integer upscale is one strided copy per output row and
phase).  Other output parameters than the input's requantize by a table after it.

mode=linear: in QDQ models ORT computes it in float between DequantizeLinear and
QuantizeLinear (a host region, accelsim.compiler.onnx.islands); on codes directly (QOperator) it
interpolates in its own integer arithmetic, which the host reproduces too.
"""

from __future__ import annotations

import numpy as np
import onnx

from .. import hostops as H
from ..ir import ModelError, Piece, QCopy, QHost, QTensor
from ..lut import identity
from . import islands
from .context import ImportContext, attrs, dtype_name, scalar_f32, scalar_int
from .tables import add_lut


def _text(v, default: str) -> str:
    if v is None:
        return default
    return v.decode() if isinstance(v, bytes) else str(v)


def geometry(ctx: ImportContext, n: onnx.NodeProto, shape: tuple) -> tuple[tuple, tuple, dict]:
    """(output H, W), (scale H, W) and the mode attributes of a Resize of ``shape``."""
    a = attrs(n)
    opts = {"mode": _text(a.get("mode"), "nearest"),
            "ctm": _text(a.get("coordinate_transformation_mode"), "half_pixel" if ctx.graph.opset >= 11 else "asymmetric"),
            "nearest": _text(a.get("nearest_mode"), "round_prefer_floor")}
    if len(shape) != 4:
        raise ModelError(n.name, n.op_type, f"only 4-D NCHW tensors are resized (shape {shape})")
    scales = sizes = None
    if ctx.graph.opset < 11:
        scales = ctx.init(n, n.input[1], "scales")
    else:
        if len(n.input) > 2 and n.input[2] and np.asarray(ctx.init(n, n.input[2], "scales")).size:
            scales = ctx.init(n, n.input[2], "scales")
        if len(n.input) > 3 and n.input[3]:
            sizes = ctx.init(n, n.input[3], "sizes")
    if sizes is not None:
        sizes = [int(v) for v in np.asarray(sizes).ravel()]
        if len(sizes) != 4 or sizes[:2] != list(shape[:2]):
            raise ModelError(n.name, n.op_type, f"sizes {sizes}: only H and W may change")
        out = (sizes[2], sizes[3])
        sc = (np.float32(out[0]) / np.float32(shape[2]), np.float32(out[1]) / np.float32(shape[3]))
    elif scales is not None:
        s = np.asarray(scales, np.float32).ravel()
        if s.size != 4 or s[0] != 1 or s[1] != 1:
            raise ModelError(n.name, n.op_type, f"scales {s.tolist()}: only H and W may be scaled")
        sc = (s[2], s[3])
        out = (int(np.float32(s[2] * np.float32(shape[2]))), int(np.float32(s[3] * np.float32(shape[3]))))
    else:
        raise ModelError(n.name, n.op_type, "neither scales nor sizes is given")
    if opts["mode"] not in ("nearest", "linear"):
        raise ModelError(n.name, n.op_type, f"mode {opts['mode']!r}: only nearest and linear are supported")
    if a.get("antialias", 0) or _text(a.get("keep_aspect_ratio_policy"), "stretch") != "stretch":
        raise ModelError(n.name, n.op_type, "antialias and keep_aspect_ratio_policy are not supported")
    if opts["ctm"] == "tf_crop_and_resize":
        raise ModelError(n.name, n.op_type, "coordinate_transformation_mode tf_crop_and_resize is not supported")
    return out, sc, opts


def _column_pieces(cols: np.ndarray, in_w: int) -> list[tuple[int, int, int, int, int]]:
    """(dst col, src col, pixels, dst step, src step) runs covering the output columns."""
    out_w = cols.size
    s = out_w // in_w if out_w % in_w == 0 else 0
    if s and np.array_equal(cols, np.arange(out_w) // s):  # an integer upscale: one run per phase
        return [(r, 0, in_w, s, 1) for r in range(s)]
    runs, ox = [], 0
    while ox < out_w:
        step = int(cols[ox + 1] - cols[ox]) if ox + 1 < out_w else 1
        end = ox + 1
        while end < out_w and cols[end] - cols[end - 1] == step and step >= 0:
            end += 1
        runs.append((ox, int(cols[ox]), end - ox, 1, max(step, 0)))
        ox = end
    return runs


def nearest_pieces(src: str, shape: tuple, out_hw: tuple, rows: np.ndarray, cols: np.ndarray) -> list[Piece]:
    """The strided copies of a nearest resize in NHWC order: per image, output row and column run,
    ``pixels`` pixels of C elements."""
    n, c, h, w = shape
    oh, ow = out_hw
    runs = _column_pieces(cols, w)
    pieces = []
    for b in range(n):
        for oy in range(oh):
            src_row, dst_row = (b * h + int(rows[oy])) * w, (b * oh + oy) * ow
            for d0, s0, count, dst_step, src_step in runs:
                pieces.append(Piece(src, (src_row + s0) * c, count, c, src_step * c, (dst_row + d0) * c, dst_step * c))
    return pieces


def _nearest(ctx: ImportContext, n: onnx.NodeProto, src: QTensor, out_hw: tuple, sc: tuple, opts: dict,
             y_node, y_name: str, y_scale, y_zp) -> None:
    if src.rowmajor:
        raise ModelError(n.name, n.op_type, "Resize of a transposed (row-major) tensor is not supported")
    rows = H.resize_nearest_index(src.shape[2], out_hw[0], sc[0], opts["ctm"], opts["nearest"])
    cols = H.resize_nearest_index(src.shape[3], out_hw[1], sc[1], opts["ctm"], opts["nearest"])
    shape = src.shape[:2] + tuple(out_hw)
    same = (scalar_f32(y_scale), scalar_int(y_zp), dtype_name(y_zp, n.name, n.op_type)) == \
        (src.scale, src.zero_point, src.dtype)
    name = y_name if same else y_name + "::resized"
    ctx.alias_tensor(name, src, shape)
    ctx.graph.nodes.append(QCopy(n.name, n.op_type, [src.name], name,
                                 nearest_pieces(src.name, src.shape, out_hw, rows, cols)))
    if not same:
        add_lut(ctx, n, ctx.graph.tensors[name], y_node, y_name, y_scale, y_zp, identity)


def _linear_on_codes(ctx: ImportContext, n: onnx.NodeProto, src: QTensor, out_hw: tuple, sc: tuple, opts: dict,
                     y_name: str) -> None:
    """QOperator linear Resize of codes (ORT's UpsampleBilinear on integers: float weights and
    truncation in NCHW, 10-bit integer weights in NHWC, where ORT's layout transformer puts it
    inside a network of convolutions)."""
    y = ctx.alias_tensor(y_name, src, src.shape[:2] + tuple(out_hw))
    nhwc = src.name not in ctx.graph.inputs.values()
    signed = src.dtype.startswith("s")

    def fn(inputs: list[np.ndarray]) -> np.ndarray:
        return H.resize_linear_codes(inputs[0], out_hw, sc, opts["ctm"], nhwc, signed)

    ctx.graph.nodes.append(QHost(n.name, "Resize(linear)", (src.name,), y.name, fn))


def resize(ctx: ImportContext, n: onnx.NodeProto) -> None:
    """QDQ: DequantizeLinear -> Resize -> QuantizeLinear."""
    if n.input[0] in ctx.lazy or n.input[0] in ctx.chains:
        x = islands.lazy_of(ctx, n, n.input[0])
        out_hw, sc, opts = geometry(ctx, n, x.shape)
        if opts["mode"] != "linear":
            raise ModelError(n.name, n.op_type, "a nearest Resize of a float result is not supported")
        islands.resize_linear(ctx, n, out_hw, sc, opts["ctm"])
        return
    src, qn = ctx.quantized_io(n)
    out_hw, sc, opts = geometry(ctx, n, src.shape)
    if opts["mode"] == "linear":
        islands.resize_linear(ctx, n, out_hw, sc, opts["ctm"])
        return
    _nearest(ctx, n, src, out_hw, sc, opts, qn, qn.output[0], *ctx.qparams(qn))
    ctx.shapes[n.output[0]] = ctx.graph.tensors[qn.output[0]].shape


def qop_resize(ctx: ImportContext, n: onnx.NodeProto) -> None:
    """Resize of a quantized tensor (QOperator models): the codes resized, quantization kept."""
    src = ctx.quantized_input(n)
    out_hw, sc, opts = geometry(ctx, n, src.shape)
    if opts["mode"] == "linear":
        _linear_on_codes(ctx, n, src, out_hw, sc, opts, n.output[0])
        return
    ctx.alias_tensor(n.output[0], src, src.shape[:2] + tuple(out_hw))
    rows = H.resize_nearest_index(src.shape[2], out_hw[0], sc[0], opts["ctm"], opts["nearest"])
    cols = H.resize_nearest_index(src.shape[3], out_hw[1], sc[1], opts["ctm"], opts["nearest"])
    ctx.graph.nodes.append(QCopy(n.name, n.op_type, [src.name], n.output[0],
                                 nearest_pieces(src.name, src.shape, out_hw, rows, cols)))
