"""Float ops the host computes between the chip's segments, with ONNX Runtime's own float32
arithmetic (CPU execution provider, x86-64; docs/numerics.md section 9), so the codes the chip
reads back equal ORT's.  Each function maps float32 arrays in ONNX (NCHW) order to float32.

The rules were read in ORT's and MLAS's sources and pinned with single-op probes against
onnxruntime 1.32:

* GlobalAveragePool, plain kernel (MLAS ``MlasPoolGlobalKernel``): four running float32 sums
  over the elements 4i + j of each channel, combined (l0 + l2) + (l1 + l3), then the leftover
  elements in order, then divided by H * W.
* GlobalAveragePool in ORT's blocked-channel layout (NCHWc): one running sum per channel in
  order, divided by H * W.
* ReduceMean over H and W, NCHW (Eigen's vectorised sum, 4-wide packets after a scalar peel to
  a 16-byte boundary) or NHWC (rows added in order), divided by H * W.
* ConvTranspose (MLAS SGEMM + Col2Im): per kernel tap a fused multiply-add chain over the input
  channels, the taps added into the output in (kh, kw) order, then the bias.
* Resize, mode linear (``UpsampleBilinear``): ((c11 X11 + c21 X21) + c12 X12) + c22 X22 with
  c11 = dx2 dy2 ..., the coordinates in float32.
"""

from __future__ import annotations

import math

import numpy as np

from isa.requant import fma_f32

F32 = np.float32


def gap_lanes(x: np.ndarray) -> np.ndarray:
    """GlobalAveragePool, plain MLAS kernel: (N, C, H, W) -> (N, C, 1, 1)."""
    x = np.asarray(x, F32)
    n, c, h, w = x.shape
    rows = x.reshape(n * c, h * w)
    k = (h * w) // 4 * 4
    lanes = np.zeros((n * c, 4), F32)
    for i in range(0, k, 4):
        lanes = (lanes + rows[:, i:i + 4]).astype(F32)
    acc = ((lanes[:, 0] + lanes[:, 2]).astype(F32) + (lanes[:, 1] + lanes[:, 3]).astype(F32)).astype(F32)
    for i in range(k, h * w):
        acc = (acc + rows[:, i]).astype(F32)
    return (acc / F32(h * w)).astype(F32).reshape(n, c, 1, 1)


def gap_sequential(x: np.ndarray) -> np.ndarray:
    """GlobalAveragePool in the NCHWc layout (and ReduceMean over NHWC rows): each channel's
    elements added in order, then divided by H * W."""
    x = np.asarray(x, F32)
    n, c, h, w = x.shape
    rows = x.reshape(n * c, h * w)
    acc = rows[:, 0].copy()
    for i in range(1, h * w):
        acc = (acc + rows[:, i]).astype(F32)
    return (acc / F32(h * w)).astype(F32).reshape(n, c, 1, 1)


def _eigen_sum(v: np.ndarray, peel: int) -> np.float32:
    """Eigen's vectorised float32 sum (SSE packets of 4): ``peel`` scalars to reach alignment,
    two packet accumulators, their sum, one more packet, the packet reduced (a0 + a2) + (a1 + a3),
    then the peeled scalars, then the tail."""
    n, p = v.size, 4
    head = min(peel, n)
    body = (n - head) // p * p
    body2 = (n - head) // (2 * p) * (2 * p)
    if body == 0:
        r = v[0]
        for i in range(1, n):
            r = F32(r + v[i])
        return F32(r)
    p0 = v[head:head + p].copy()
    if body > p:
        p1 = v[head + p:head + 2 * p].copy()
        for i in range(head + 2 * p, head + body2, 2 * p):
            p0, p1 = (p0 + v[i:i + p]).astype(F32), (p1 + v[i + p:i + 2 * p]).astype(F32)
        p0 = (p0 + p1).astype(F32)
        if body > body2:
            p0 = (p0 + v[head + body2:head + body2 + p]).astype(F32)
    r = F32(F32(p0[0] + p0[2]) + F32(p0[1] + p0[3]))
    for i in list(range(head)) + list(range(head + body, n)):
        r = F32(r + v[i])
    return r


def reduce_mean_hw(x: np.ndarray, nhwc: bool = False) -> np.ndarray:
    """ReduceMean over H and W with keepdims (N, C, 1, 1): Eigen's sum per NCHW channel (each
    channel's buffer offset sets the peel), or, for ORT's NHWC layout, rows added in order."""
    x = np.asarray(x, F32)
    if nhwc:
        return gap_sequential(x)
    n, c, h, w = x.shape
    rows = x.reshape(n * c, h * w)
    sums = np.array([_eigen_sum(rows[i], (-(i * h * w)) % 4) for i in range(n * c)], F32)
    return (sums / F32(h * w)).astype(F32).reshape(n, c, 1, 1)


def conv_transpose(x: np.ndarray, w: np.ndarray, bias: np.ndarray | None, stride: tuple, pads: tuple,
                   output_padding: tuple = (0, 0), group: int = 1) -> np.ndarray:
    """2-D ConvTranspose (dilation 1): x (N, Cin, H, W), w (Cin, Cout/group, kh, kw), pads (top,
    left, bottom, right); MLAS's order of float32 operations."""
    x, w = np.asarray(x, F32), np.asarray(w, F32)
    n, cin, h, wd = x.shape
    _, cout_g, kh, kw = w.shape
    sh, sw = stride
    full_h, full_w = (h - 1) * sh + kh + output_padding[0], (wd - 1) * sw + kw + output_padding[1]
    y = np.zeros((n, cout_g * group, full_h, full_w), F32)
    cin_g = cin // group
    for g in range(group):
        xs, ws = x[:, g * cin_g:(g + 1) * cin_g], w[g * cin_g:(g + 1) * cin_g]
        out = slice(g * cout_g, (g + 1) * cout_g)
        for i in range(kh):
            for j in range(kw):
                t = np.zeros((n, cout_g, h, wd), F32)
                for c in range(cin_g):
                    t = fma_f32(xs[:, c][:, None], ws[c, :, i, j][None, :, None, None], t)
                rows, cols = slice(i, i + (h - 1) * sh + 1, sh), slice(j, j + (wd - 1) * sw + 1, sw)
                y[:, out, rows, cols] = (y[:, out, rows, cols] + t).astype(F32)
    top, left, bottom, right = pads
    y = y[:, :, top:full_h - bottom, left:full_w - right]
    if bias is not None:
        y = (y + np.asarray(bias, F32)[None, :, None, None]).astype(F32)
    return y


def _source_coordinate(o: int, scale: np.float32, out_len: int, in_len: int, mode: str) -> np.float32:
    """ORT's GetOriginalCoordinateFromResizedCoordinate, in float32."""
    x = F32(o)
    if mode == "asymmetric":
        return F32(x / scale)
    if mode in ("half_pixel", "pytorch_half_pixel"):
        if mode == "pytorch_half_pixel" and out_len <= 1:
            return F32(0)
        return F32(F32(F32(x + F32(0.5)) / scale) - F32(0.5))
    if mode == "align_corners":
        return F32(0) if out_len == 1 else F32(F32(x * F32(in_len - 1)) / F32(out_len - 1))
    if mode == "tf_half_pixel_for_nn":
        return F32(F32(x + F32(0.5)) / scale)
    raise ValueError(f"coordinate_transformation_mode {mode!r}")


def _source_rows(o: int, in_len: int, out_len: int, scale: np.float32, mode: str) -> tuple[np.float32, int, int]:
    """Output index ``o``'s source coordinate (clamped to the input) and the rows below and above it."""
    v = F32(o) if scale == F32(1) else _source_coordinate(o, scale, out_len, in_len, mode)
    v = F32(max(F32(0), min(v, F32(in_len - 1))))
    a = min(int(v), in_len - 1)
    return v, a, min(a + 1, in_len - 1)


def _linear_axis(in_len: int, out_len: int, scale: np.float32, mode: str):
    lo = np.zeros(out_len, np.int64)
    hi = np.zeros(out_len, np.int64)
    d_lo = np.zeros(out_len, F32)
    d_hi = np.zeros(out_len, F32)
    for o in range(out_len):
        v, a, b = _source_rows(o, in_len, out_len, scale, mode)
        lo[o], hi[o] = a, b
        d_lo[o], d_hi[o] = (F32(0.5), F32(0.5)) if a == b else (F32(abs(F32(v - F32(a)))), F32(abs(F32(v - F32(b)))))
    return lo, hi, d_lo, d_hi


def resize_linear(x: np.ndarray, out_hw: tuple, scales_hw: tuple, mode: str = "half_pixel") -> np.ndarray:
    """Resize, mode linear, on the two inner axes of a float (N, C, H, W) tensor."""
    x = np.asarray(x, F32)
    _, _, h, w = x.shape
    y1, y2, dy1, dy2 = _linear_axis(h, out_hw[0], F32(scales_hw[0]), mode)
    x1, x2, dx1, dx2 = _linear_axis(w, out_hw[1], F32(scales_hw[1]), mode)
    a, b = x[:, :, y1], x[:, :, y2]
    x11, x21, x12, x22 = a[..., x1], a[..., x2], b[..., x1], b[..., x2]
    dx1, dx2, dy1, dy2 = dx1[None, None, None], dx2[None, None, None], dy1[None, None, :, None], dy2[None, None, :, None]
    c11, c21, c12, c22 = (dx2 * dy2).astype(F32), (dx1 * dy2).astype(F32), (dx2 * dy1).astype(F32), (dx1 * dy1).astype(F32)
    r = ((c11 * x11).astype(F32) + (c21 * x21).astype(F32)).astype(F32)
    r = (r + (c12 * x12).astype(F32)).astype(F32)
    return (r + (c22 * x22).astype(F32)).astype(F32)


def _linear_int_axis(in_len: int, out_len: int, scale: np.float32, mode: str):
    """Source rows and the 10-bit weight of the far one (ORT's SetupUpsampleBilinearInteger)."""
    lo = np.zeros(out_len, np.int64)
    hi = np.zeros(out_len, np.int64)
    w_hi = np.zeros(out_len, np.int64)
    for o in range(out_len):
        v, a, b = _source_rows(o, in_len, out_len, scale, mode)
        lo[o], hi[o] = a, b
        w_hi[o] = 512 if a == b else abs(int(F32(v * F32(1024))) - a * 1024)
    return lo, hi, w_hi


def resize_linear_codes(q: np.ndarray, out_hw: tuple, scales_hw: tuple, mode: str, nhwc: bool,
                        signed: bool) -> np.ndarray:
    """Resize, mode linear, of 8-bit codes (ORT runs it on the integers): in NCHW the float
    formula of resize_linear on the codes, truncated toward zero; in NHWC (inside a network ORT
    turned to NHWC) 10-bit weights w and 1024 - w per axis, the four products summed in int32 and
    shifted right by 20 (divided, truncating, for int8)."""
    q = np.asarray(q, np.int64)
    if not nhwc:
        return np.trunc(resize_linear(q.astype(F32), out_hw, scales_hw, mode)).astype(np.int64)
    _, _, h, w = q.shape
    y1, y2, sy = _linear_int_axis(h, out_hw[0], F32(scales_hw[0]), mode)
    x1, x2, sx = _linear_int_axis(w, out_hw[1], F32(scales_hw[1]), mode)
    a, b = q[:, :, y1], q[:, :, y2]
    sx1, sy1 = sx[None, None, None, :], sy[None, None, :, None]
    sx2, sy2 = 1024 - sx1, 1024 - sy1
    acc = (sx2 * sy2) * a[..., x1] + (sx1 * sy2) * a[..., x2] + (sx2 * sy1) * b[..., x1] + (sx1 * sy1) * b[..., x2]
    return np.trunc(acc / float(1 << 20)).astype(np.int64) if signed else acc >> 20


def resize_nearest_index(in_len: int, out_len: int, scale: float, mode: str = "half_pixel",
                         nearest: str = "round_prefer_floor") -> np.ndarray:
    """Resize, mode nearest: the input index of every output index along one axis (ORT)."""
    s = F32(scale)
    if s == F32(1):
        return np.arange(out_len)
    out = []
    for o in range(out_len):
        v = _source_coordinate(o, s, out_len, in_len, mode)
        if nearest == "floor":
            k = math.floor(v)
        elif nearest == "ceil":
            k = math.ceil(v)
        elif nearest == "round_prefer_floor" and v == F32(F32(int(v)) + F32(0.5)):
            k = math.floor(v)
        else:
            k = int(math.copysign(math.floor(abs(v) + 0.5), v))
        out.append(min(max(k, 0), in_len - 1))
    return np.array(out, np.int64)


# ------------------------------------------------------------------ QLinearSoftmax (on codes)
def _logf(x: float) -> float:
    """float32 natural logarithm (glibc's logf is correctly rounded; so is this)."""
    return float(F32(math.log(float(F32(x)))))


def qlinear_softmax(q: np.ndarray, x_scale: float, y_scale: float, y_zp: int, signed: bool) -> np.ndarray:
    """ORT's QLinearSoftmax over the last axis of integer codes ``q`` (uint8, or int8 with
    ``signed``): a 256-entry float32 exp table shifted by ``max(0, logf(FLT_MAX / D) - 5) / s_x``
    (the log in float32), e_j = table[x_j - max + 255], their float32 sum in order,
    v_j = e_j / sum * floor(1 / s_y) in double, then rint(v_j) + z_y, saturated."""
    q = np.asarray(q, np.int64)
    d = q.shape[-1]
    xs = float(F32(x_scale))
    shift = max(0.0, _logf(float(F32(np.finfo(F32).max) / F32(d))) - 5.0) / xs
    table = np.array([F32(math.exp((i - 255.0 + shift) * xs)) for i in range(256)], F32)
    rows = q.reshape(-1, d)
    e = table[rows - rows.max(axis=1, keepdims=True) + 255]
    total = np.zeros(rows.shape[0], F32)
    for j in range(d):
        total = (total + e[:, j]).astype(F32)
    ys = F32(np.floor(F32(F32(1) / F32(y_scale))))
    v = e.astype(np.float64) / total[:, None].astype(np.float64) * float(ys)
    lo, hi = (-128, 127) if signed else (0, 255)
    return np.clip(np.rint(v) + int(y_zp), lo, hi).astype(np.int64).reshape(q.shape)


# ------------------------------------------------------------------ window and channel ops
def max_pool(x: np.ndarray, kernel: tuple, stride: tuple, pads: tuple, dilation: tuple = (1, 1),
             out_hw: tuple | None = None) -> np.ndarray:
    """Float MaxPool (exact in any order): the window maximum, padding never chosen."""
    x = np.asarray(x, F32)
    n, c, h, w = x.shape
    top, left, bottom, right = pads
    kh, kw = kernel
    (sh, sw), (dh, dw) = stride, dilation
    oh, ow = out_hw or ((h + top + bottom - dh * (kh - 1) - 1) // sh + 1, (w + left + right - dw * (kw - 1) - 1) // sw + 1)
    xp = np.full((n, c, max(h + top + bottom, top + (oh - 1) * sh + dh * (kh - 1) + 1),
                  max(w + left + right, left + (ow - 1) * sw + dw * (kw - 1) + 1)), -np.inf, F32)
    xp[:, :, top:top + h, left:left + w] = x
    out = np.full((n, c, oh, ow), -np.inf, F32)
    for i in range(kh):
        for j in range(kw):
            r0, c0 = i * dh, j * dw
            out = np.maximum(out, xp[:, :, r0:r0 + sh * (oh - 1) + 1:sh, c0:c0 + sw * (ow - 1) + 1:sw])
    return out


def batch_norm(x: np.ndarray, scale, bias, mean, var, eps: float) -> np.ndarray:
    """Inference BatchNormalization (ORT batch_norm.h): new_scale = (1 / sqrt(var + eps)) * scale,
    new_bias = bias - mean * new_scale, y = x * new_scale + new_bias, each step rounded."""
    x = np.asarray(x, F32)
    shape = (1, x.shape[1]) + (1,) * (x.ndim - 2)
    inv_std = (F32(1) / np.sqrt((np.asarray(var, F32) + F32(eps)).astype(F32))).astype(F32)
    new_scale = (inv_std * np.asarray(scale, F32)).astype(F32)
    new_bias = (np.asarray(bias, F32) - (np.asarray(mean, F32) * new_scale).astype(F32)).astype(F32)
    return ((x * new_scale.reshape(shape)).astype(F32) + new_bias.reshape(shape)).astype(F32)


# ------------------------------------------------------------------ float Softmax (MLAS)
_EXP_LOWER = F32(-88.3762626647949)
_ROUNDING_BIAS = F32(12582912.0)           # 1.5 * 2^23
_LOG2_RECIPROCAL = F32(1.44269504088896341)
_LOG2_HIGH = F32(-6.93145752e-1)
_LOG2_LOW = F32(-1.42860677e-6)
_EXP_POLY = tuple(F32(float.fromhex(h)) for h in ("0x1.694000p-10", "0x1.125edcp-7", "0x1.555b5ap-5",
                                                  "0x1.555450p-3", "0x1.fffff6p-2"))


def mlas_exp_shifted(x: np.ndarray, neg_max: np.ndarray) -> np.ndarray:
    """exp(x - max) as MLAS's FMA3 softmax kernel computes it: a range reduction by ln 2 in two
    parts, a degree-6 polynomial evaluated with fused multiply-adds, and the power of two added
    to the exponent bits (32-bit wrap-around)."""
    v = np.maximum(_EXP_LOWER, (np.asarray(x, F32) + neg_max).astype(F32))
    b = fma_f32(v, _LOG2_RECIPROCAL, _ROUNDING_BIAS)
    m = (b - _ROUNDING_BIAS).astype(F32)
    v = fma_f32(m, _LOG2_HIGH, v)
    v = fma_f32(m, _LOG2_LOW, v)
    p = fma_f32(_EXP_POLY[0], v, _EXP_POLY[1])
    for c in _EXP_POLY[2:] + (F32(1), F32(1)):
        p = fma_f32(p, v, c)
    bits = ((b.view(np.uint32).astype(np.uint64) << np.uint64(23)) + np.uint64(0x3F800000)) & np.uint64(0xFFFFFFFF)
    return (p * bits.astype(np.uint32).view(F32)).astype(F32)


def _sum8(e: np.ndarray) -> np.ndarray:
    """MLAS's 8-lane float32 sum of each row (lane j adds e[8i + j]), reduced
    ((a0 + a1) + (a2 + a3)) + ((a4 + a5) + (a6 + a7))."""
    rows, d = e.shape
    acc = np.zeros((rows, 8), F32)
    for i in range(0, d, 8):
        part = np.zeros((rows, 8), F32)
        part[:, :min(8, d - i)] = e[:, i:i + 8]
        acc = (acc + part).astype(F32)

    def s(a, b):
        return (a + b).astype(F32)

    return s(s(s(acc[:, 4], acc[:, 5]), s(acc[:, 6], acc[:, 7])), s(s(acc[:, 0], acc[:, 1]), s(acc[:, 2], acc[:, 3])))


def softmax(x: np.ndarray, axis: int = -1, log: bool = False) -> np.ndarray:
    """Float Softmax / LogSoftmax (ORT opset 13, MLAS MlasComputeSoftmax): e = exp(x - max) as
    above, their 8-lane sum, then y = e * (1 / sum), or (x - max) - logf(sum)."""
    x = np.moveaxis(np.asarray(x, F32), axis, -1)
    shape = x.shape
    rows = x.reshape(-1, shape[-1])
    neg = (-rows.max(axis=1, keepdims=True)).astype(F32)
    e = mlas_exp_shifted(rows, neg)
    total = _sum8(e)
    if log:
        y = ((rows + neg).astype(F32) - np.array([_logf(float(t)) for t in total], F32)[:, None]).astype(F32)
    else:
        y = (e * (F32(1) / total).astype(F32)[:, None]).astype(F32)
    return np.moveaxis(y.reshape(shape), -1, axis)
