"""End-to-end tests that can see rounding: single-op QOperator and QDQ models compiled and run
on the chip against ONNX Runtime (the exact reference session), built so that rounding decides.

* Power-of-two scales make the requantization exact up to its last step, so many outputs are
  exact ties (x.5): conv, fully connected, Add, AveragePool (same and other scale) and
  GlobalAveragePool.  Each test counts its ties from an independent integer computation and
  requires enough of them, so round-half-to-even cannot be swapped for half-away unseen.
* Convolutions and depthwise convolutions whose input zero point is not 0 (u8 and s8), with
  padding: the padding must read the zero point.
* A QLinearAdd probe over all 65536 (a, b) pairs of u8 codes, at scales where ONNX Runtime's FMA
  nesting fma(a, rA, fma(b, rB, F)) and the other nesting fma(b, rB, fma(a, rA, F)) give different
  codes: the chip must take ORT's.
"""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from accelsim.compiler import compile_graph, import_model
from isa.requant import fma_f32

from .ort_models import session

NP = {"u8": np.uint8, "s8": np.int8}
TP = {"u8": TensorProto.UINT8, "s8": TensorProto.INT8}
RANGE = {"u8": (0, 255), "s8": (-128, 127)}


def _init(name, value, dtype=None):
    return numpy_helper.from_array(np.asarray(value, dtype) if dtype is not None else np.asarray(value), name)


def _model(nodes, inits, inputs, out_shape, opset=17) -> onnx.ModelProto:
    g = helper.make_graph(nodes, "probe", [helper.make_tensor_value_info(n, TensorProto.FLOAT, s) for n, s in inputs],
                          [helper.make_tensor_value_info("output", TensorProto.FLOAT, out_shape)], inits)
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", opset), helper.make_opsetid("com.microsoft", 1)])
    m.ir_version = 10
    return m


def _q_in(name: str, scale, zp, dtype) -> tuple[list, list]:
    """QuantizeLinear of graph input ``name`` to ``name_q``."""
    return ([helper.make_node("QuantizeLinear", [name, f"{name}_s", f"{name}_z"], [f"{name}_q"])],
            [_init(f"{name}_s", np.float32(scale)), _init(f"{name}_z", zp, NP[dtype])])


def _dq_out(src: str, scale, zp, dtype) -> tuple[list, list]:
    return ([helper.make_node("DequantizeLinear", [src, "y_s", "y_z"], ["output"])],
            [_init("y_s", np.float32(scale)), _init("y_z", zp, NP[dtype])])


def _codes(rng, shape, dtype, zp, scale, spread: int = 255) -> tuple[np.ndarray, np.ndarray]:
    """Integer codes within ``spread`` of the zero point, and the float input that quantizes to
    exactly them (small spreads keep the outputs of a sum of many products off saturation)."""
    lo, hi = RANGE[dtype]
    q = np.clip(zp + rng.integers(-spread, spread + 1, shape), lo, hi)
    return q, (np.float32(scale) * (q - zp).astype(np.float32)).astype(np.float32)


def _chip_equals_ort(model: onnx.ModelProto, feeds: dict) -> np.ndarray:
    compiled = compile_graph(import_model(model))
    out, _ = compiled.run(feeds)
    ref = session(model).run(None, feeds)[0]
    np.testing.assert_array_equal(out["output"], ref)
    return ref


def _ties(acc: np.ndarray, shift: int) -> int:
    """How many ``acc * 2^-shift`` are exact halves."""
    return int((np.mod(acc, 1 << shift) == 1 << (shift - 1)).sum())


def _int_conv(q: np.ndarray, zx: int, w: np.ndarray, bias: np.ndarray, pads: int, group: int) -> np.ndarray:
    """Exact int64 convolution (stride 1) of (q - zx) with w, padding reading the zero point."""
    x = np.pad(q.astype(np.int64) - zx, ((0, 0), (0, 0), (pads, pads), (pads, pads)))
    n, c, h, wd = x.shape
    o, cg, kh, kw = w.shape
    oh, ow = h - kh + 1, wd - kw + 1
    acc = np.zeros((n, o, oh, ow), np.int64)
    for oc in range(o):
        c0 = (oc // (o // group)) * cg
        for i in range(kh):
            for j in range(kw):
                acc[:, oc] += np.einsum("nchw,c->nhw", x[:, c0:c0 + cg, i:i + oh, j:j + ow], w[oc, :, i, j].astype(np.int64))
    return acc + bias[None, :, None, None]


# ------------------------------------------------------------------------------------------ conv
@pytest.mark.parametrize("dtype, zx, group", [("u8", 100, 1), ("s8", -20, 1), ("u8", 77, 6), ("s8", 13, 6)])
def test_conv_ties_and_nonzero_input_zero_point(dtype, zx, group):
    """3x3 pad 1 over 6 channels, stride 1: s_x = 2^-2, s_w = 2^-3 (per channel 2^-3 / 2^-4), s_y =
    2^-1, so acc * 2^-4 (or 2^-5): exact ties wherever acc is 8 (16) mod 16 (32).  group 6 is the
    depthwise case; the input zero point is not 0, so padded taps must read it."""
    rng = np.random.default_rng(3)
    c, o = 6, 6 if group == 6 else 5
    w = rng.integers(-4, 5, (o, c // group, 3, 3)).astype(np.int8)
    ws = np.where(np.arange(o) % 2 == 0, 2.0 ** -3, 2.0 ** -4).astype(np.float32)
    bias = rng.integers(-50, 51, o).astype(np.int32)
    yz = 128 if dtype == "u8" else 0
    nodes, inits = _q_in("input", 2.0 ** -2, zx, dtype)
    conv = helper.make_node("QLinearConv", ["input_q", "input_s", "input_z", "w", "ws", "wz", "y_s", "y_z", "b"],
                            ["y_q"], pads=[1, 1, 1, 1], group=group)
    dq, dq_inits = _dq_out("y_q", 2.0 ** -1, yz, dtype)
    inits += [_init("w", w), _init("ws", ws), _init("wz", np.zeros(o, np.int8)), _init("b", bias)] + dq_inits
    model = _model(nodes + [conv] + dq, inits, [("input", [1, c, 7, 7])], [1, o, 7, 7])
    q, x = _codes(rng, (1, c, 7, 7), dtype, zx, 2.0 ** -2, spread=20)
    _chip_equals_ort(model, {"input": x})
    acc = _int_conv(q, zx, w, bias.astype(np.int64), 1, group)
    shifts = np.where(np.arange(o) % 2 == 0, 4, 5)
    ties = sum(_ties(acc[:, k], int(shifts[k])) for k in range(o))
    assert ties >= 0.02 * acc.size, ties


def test_fully_connected_ties():
    """QGemm 40 -> 512 with s_x 2^-3, s_w 2^-2, s_y 2^0: acc * 2^-5 ties at acc = 16 mod 32."""
    rng = np.random.default_rng(4)
    w = rng.integers(-10, 11, (512, 40)).astype(np.int8)
    bias = rng.integers(-100, 101, 512).astype(np.int32)
    nodes, inits = _q_in("input", 2.0 ** -3, 128, "u8")
    gemm = helper.make_node("QGemm", ["input_q", "input_s", "input_z", "w", "ws", "wz", "b", "y_s", "y_z"], ["y_q"],
                            domain="com.microsoft", transB=1)
    dq, dq_inits = _dq_out("y_q", 1.0, 128, "u8")
    inits += [_init("w", w), _init("ws", np.float32(0.25)), _init("wz", np.int8(0)), _init("b", bias)] + dq_inits
    model = _model(nodes + [gemm] + dq, inits, [("input", [1, 40])], [1, 512])
    q, x = _codes(rng, (1, 40), "u8", 128, 2.0 ** -3, spread=20)
    _chip_equals_ort(model, {"input": x})
    acc = (q.astype(np.int64) - 128) @ w.T.astype(np.int64) + bias
    assert _ties(acc, 5) >= 0.02 * acc.size


# ------------------------------------------------------------------------------------------ add
@pytest.mark.parametrize("dtype", ["u8", "s8"])
def test_add_ties(dtype):
    """QLinearAdd with s_a 2^-2, s_b 2^-3, s_y 2^-1: a/2 + b/4 + F, F an integer: ties at every odd
    quarter sum, a quarter of all pairs."""
    rng = np.random.default_rng(5)
    za, zb, zy = (7, 200, 128) if dtype == "u8" else (-3, 50, 0)
    nodes, inits = _q_in("a", 2.0 ** -2, za, dtype)
    n2, i2 = _q_in("b", 2.0 ** -3, zb, dtype)
    add = helper.make_node("QLinearAdd", ["a_q", "a_s", "a_z", "b_q", "b_s", "b_z", "y_s", "y_z"], ["y_q"],
                           domain="com.microsoft")
    dq, dq_inits = _dq_out("y_q", 2.0 ** -1, zy, dtype)
    model = _model(nodes + n2 + [add] + dq, inits + i2 + dq_inits, [("a", [1, 4, 16, 16]), ("b", [1, 4, 16, 16])],
                   [1, 4, 16, 16])
    qa, a = _codes(rng, (1, 4, 16, 16), dtype, za, 2.0 ** -2, spread=60)
    qb, b = _codes(rng, (1, 4, 16, 16), dtype, zb, 2.0 ** -3, spread=60)
    _chip_equals_ort(model, {"a": a, "b": b})
    quarters = 2 * (qa - za) + (qb - zb)  # (a - za)/2 + (b - zb)/4 in quarters: a tie at 2 mod 4
    assert int((np.mod(quarters, 4) == 2).sum()) >= 0.15 * quarters.size


# FMA probe: scales (float32 bit patterns) and zero points found by a search over random settings:
# over all 65536 pairs of u8 codes, the two nestings of the fused multiply-adds differ on 2 codes.
PROBE = dict(sa=1029106880, sb=1024326710, sc=1009667102, za=224, zb=214, zc=165)


def _nested(a, b, ra, rb, f, a_inside: bool) -> np.ndarray:
    inner = fma_f32(a, ra, f) if a_inside else fma_f32(b, rb, f)
    v = fma_f32(b, rb, inner) if a_inside else fma_f32(a, ra, inner)
    return np.clip(np.rint(v), 0, 255)


def test_add_probe_tells_the_fma_nestings_apart():
    sa, sb, sc = (np.uint32(PROBE[k]).view(np.float32) for k in ("sa", "sb", "sc"))
    za, zb, zc = PROBE["za"], PROBE["zb"], PROBE["zc"]
    qa = np.repeat(np.arange(256), 256).reshape(1, 1, 256, 256)
    qb = np.tile(np.arange(256), 256).reshape(1, 1, 256, 256)
    nodes, inits = _q_in("a", sa, za, "u8")
    n2, i2 = _q_in("b", sb, zb, "u8")
    add = helper.make_node("QLinearAdd", ["a_q", "a_s", "a_z", "b_q", "b_s", "b_z", "y_s", "y_z"], ["y_q"],
                           domain="com.microsoft")
    dq, dq_inits = _dq_out("y_q", sc, zc, "u8")
    model = _model(nodes + n2 + [add] + dq, inits + i2 + dq_inits, [("a", [1, 1, 256, 256]), ("b", [1, 1, 256, 256])],
                   [1, 1, 256, 256])
    a = (sa * (qa - za).astype(np.float32)).astype(np.float32)
    b = (sb * (qb - zb).astype(np.float32)).astype(np.float32)
    ref = _chip_equals_ort(model, {"a": a, "b": b})
    codes = np.rint(ref / sc).astype(np.int64) + zc
    ra, rb = np.float32(sa / sc), np.float32(sb / sc)
    f = np.float32(np.float32(zc) - fma_f32(ra, np.float32(za), rb * np.float32(zb)))
    fa, fb = qa.astype(np.float32), qb.astype(np.float32)
    ort_rule, swapped = _nested(fa, fb, ra, rb, f, False), _nested(fa, fb, ra, rb, f, True)
    assert np.array_equal(codes, ort_rule)          # ORT's rule, documented in isa.requant.add_fp32
    assert int((swapped != ort_rule).sum()) >= 1    # and the probe sees the other nesting


# ------------------------------------------------------------------------------------------ pools
@pytest.mark.parametrize("same_scale", [True, False])
def test_average_pool_ties(same_scale):
    """2x2 stride 2 average: the same scale out gives the exact mean of 4 codes (ties at sum 2 mod
    4); s_y = 2 s_x gives sum / 8 (ties at 4 mod 8)."""
    rng = np.random.default_rng(6)
    sx, zx = 2.0 ** -3, 90
    sy, zy = (sx, zx) if same_scale else (2 * sx, 60)
    nodes, inits = _q_in("input", sx, zx, "u8")
    pool = helper.make_node("QLinearAveragePool", ["input_q", "input_s", "input_z", "y_s", "y_z"], ["y_q"],
                            domain="com.microsoft", kernel_shape=[2, 2], strides=[2, 2])
    dq, dq_inits = _dq_out("y_q", sy, zy, "u8")
    model = _model(nodes + [pool] + dq, inits + dq_inits, [("input", [1, 5, 12, 12])], [1, 5, 6, 6])
    q, x = _codes(rng, (1, 5, 12, 12), "u8", zx, sx)
    _chip_equals_ort(model, {"input": x})
    s = (q - zx).reshape(1, 5, 6, 2, 6, 2).sum(axis=(3, 5))
    assert _ties(s, 2 if same_scale else 3) >= 0.1 * s.size


def test_global_average_pool_ties():
    """Over 4 x 4 pixels with s_y = s_x: sum / 16, ties at 8 mod 16."""
    rng = np.random.default_rng(7)
    nodes, inits = _q_in("input", 2.0 ** -4, 100, "u8")
    pool = helper.make_node("QLinearGlobalAveragePool", ["input_q", "input_s", "input_z", "y_s", "y_z"], ["y_q"],
                            domain="com.microsoft")
    dq, dq_inits = _dq_out("y_q", 2.0 ** -4, 100, "u8")
    model = _model(nodes + [pool] + dq, inits + dq_inits, [("input", [1, 512, 4, 4])], [1, 512, 1, 1])
    q, x = _codes(rng, (1, 512, 4, 4), "u8", 100, 2.0 ** -4)
    _chip_equals_ort(model, {"input": x})
    assert _ties((q - 100).sum(axis=(2, 3)), 4) >= 0.03 * 512


# ------------------------------------------------------------------------------------------ QDQ
@pytest.mark.parametrize("dtype, zx", [("u8", 120), ("s8", -25)])
def test_qdq_depthwise_with_nonzero_zero_point_and_padding(dtype, zx):
    """The same depthwise conv in QDQ form (ONNX Runtime fuses the group into a QLinearConv)."""
    rng = np.random.default_rng(8)
    c = 8
    w = rng.integers(-100, 101, (c, 1, 3, 3)).astype(np.int8)
    bias = rng.integers(-200, 201, c).astype(np.int32)
    ws = np.full(c, 2.0 ** -3, np.float32)
    nodes = [helper.make_node("QuantizeLinear", ["input", "xs", "xz"], ["xq"]),
             helper.make_node("DequantizeLinear", ["xq", "xs", "xz"], ["xf"]),
             helper.make_node("DequantizeLinear", ["w", "ws", "wz"], ["wf"], axis=0),
             helper.make_node("DequantizeLinear", ["b", "bs", "bz"], ["bf"], axis=0),
             helper.make_node("Conv", ["xf", "wf", "bf"], ["yf"], pads=[1, 1, 1, 1], group=c),
             helper.make_node("QuantizeLinear", ["yf", "ys", "yz"], ["yq"]),
             helper.make_node("DequantizeLinear", ["yq", "ys", "yz"], ["output"])]
    yz = 128 if dtype == "u8" else 0
    inits = [_init("xs", np.float32(2.0 ** -2)), _init("xz", zx, NP[dtype]), _init("w", w), _init("ws", ws),
             _init("wz", np.zeros(c, np.int8)), _init("b", bias), _init("bs", ws * np.float32(2.0 ** -2)),
             _init("bz", np.zeros(c, np.int32)), _init("ys", np.float32(0.5)), _init("yz", yz, NP[dtype])]
    model = _model(nodes, inits, [("input", [1, c, 9, 9])], [1, c, 9, 9], opset=13)
    q, x = _codes(rng, (1, c, 9, 9), dtype, zx, 2.0 ** -2)
    graph = import_model(model)
    assert any(type(n).__name__ == "QDepthwiseConv" for n in graph.nodes)
    _chip_equals_ort(model, {"input": x})
    acc = _int_conv(q, zx, w, bias.astype(np.int64), 1, c)
    assert _ties(acc, 4) >= 0.02 * acc.size
