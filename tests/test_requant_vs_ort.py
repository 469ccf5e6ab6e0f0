"""Acceptance 3: the fp32 requant mode, run through the golden instructions
(LOAD, LOADW, CONFIG, GEMM, REQUANT, STORE), equals ONNX Runtime's QLinearMatMul bit for bit.

Facts on x86 AVX2 without VNNI: s8 x s8 is exact over the full range; u8 x s8 is exact only when
the int16 pair sums of vpmaddubsw cannot saturate, e.g. weights in [-64, 64] (reduce_range).
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import isa
from isa.quant import pack_bits
from isa.semantics import MachineState

from .ort_models import qlinear_matmul

A_AT, W_AT, P_AT, Y_AT = 0, 1 << 14, 2 << 14, 3 << 14


def chip_qlinear_matmul(a, a_scale, a_zp, b, b_scale, b_zp, y_scale, y_zp, a_type, o_type):
    """The same product on the specified chip: returns the output read back from DRAM."""
    m, k = a.shape
    n = b.shape[1]
    scales = (np.float32(a_scale) * np.asarray(b_scale, np.float32)) / np.float32(y_scale)  # as ORT
    scales = np.broadcast_to(scales, (n,)).astype(np.float32)
    params = np.concatenate([np.zeros(n, np.int64), scales.view(np.int32).astype(np.int64),
                             np.zeros(n, np.int64)])
    dram = np.zeros(4 << 14, dtype=np.uint8)
    for at, vals, bits in ((A_AT, a.ravel(), 8), (W_AT, b.T.ravel(), 8), (P_AT, params, 32)):
        packed = pack_bits(vals, bits)
        dram[at:at + packed.size] = packed
    o_lo, o_hi = (0, 255) if o_type == "u8" else (-128, 127)
    prog = [
        isa.Instruction("LOAD", buf="INP", dtype=a_type, dram=A_AT, sram=0, x=k, y=m, y_stride=k),
        isa.Instruction("LOADW", sram=0, dram=W_AT, count=n * k, dtype="s8"),
        isa.Instruction("LOAD", buf="PRM", dtype="s32", dram=P_AT, sram=0, x=3 * n, y=1, y_stride=0),
        isa.Instruction("CONFIG", a=a_type, w="s8", o=o_type, a_zp=int(a_zp), w_zp=int(np.ravel(b_zp)[0]),
                        o_zp=int(y_zp), mode="fp32", clamp_min=o_lo, clamp_max=o_hi),
        isa.Instruction("GEMM", inp=0, wgt=0, acc=0, m=m, n=n, k=k),
        isa.Instruction("REQUANT", src=0, dst_buf="OUT", dst=0, prm=0, m=m, n=n),
        isa.Instruction("STORE", buf="OUT", dtype=o_type, dram=Y_AT, sram=0, x=n, y=m, y_stride=n),
        isa.Instruction("HALT"),
    ]
    state = isa.run(isa.encode_program(prog), MachineState.create(dram))
    out = state.dram[Y_AT:Y_AT + m * n].view(np.uint8 if o_type == "u8" else np.int8)
    return out.reshape(m, n)


@st.composite
def matmul_case(draw, a_type, w_range):
    m, k, n = draw(st.integers(1, 24)), draw(st.integers(1, 80)), draw(st.integers(1, 24))
    a_lo, a_hi = (0, 255) if a_type == "u8" else (-128, 127)
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    extreme = draw(st.booleans())  # operands pinned to the ends of their ranges
    if extreme:
        a = rng.choice([a_lo, a_hi], size=(m, k))
        b = rng.choice([w_range[0], w_range[1]], size=(k, n))
    else:
        a = rng.integers(a_lo, a_hi + 1, size=(m, k))
        b = rng.integers(w_range[0], w_range[1] + 1, size=(k, n))
    a = a.astype(np.uint8 if a_type == "u8" else np.int8)
    b = b.astype(np.int8)
    a_zp = draw(st.sampled_from([a_lo, a_hi, (a_lo + a_hi + 1) // 2]) | st.integers(a_lo, a_hi))
    per_column = draw(st.booleans())
    a_scale = draw(st.floats(0.0009765625, 1.0, width=32))
    b_scale = rng.uniform(1e-3, 0.05, size=n).astype(np.float32) if per_column \
        else np.float32(draw(st.floats(0.0009765625, 0.0625, width=32)))
    spread = draw(st.floats(0.05, 3.0))
    y_scale = np.float32(a_scale * float(np.max(b_scale)) * np.sqrt(k) * 128 * spread / 60)
    y_type = a_type  # ORT registers QLinearMatMul with the output type equal to A's
    y_lo, y_hi = (0, 255) if y_type == "u8" else (-128, 127)
    y_zp = draw(st.integers(y_lo, y_hi))
    b_zp = np.zeros(n if per_column else (), dtype=np.int8)
    return a, a_scale, a_zp, b, b_scale, b_zp, y_scale, y_zp, a_type, y_type


def _compare(case):
    a, a_scale, a_zp, b, b_scale, b_zp, y_scale, y_zp, a_type, y_type = case
    y_np = np.uint8 if y_type == "u8" else np.int8
    ours = chip_qlinear_matmul(a, a_scale, a_zp, b, b_scale, b_zp, y_scale, y_zp, a_type, y_type)
    ref = qlinear_matmul(a, a_scale, a_zp, b, b_scale, b_zp, y_scale, y_zp, y_np)
    np.testing.assert_array_equal(ours, ref)
    return ours


@given(matmul_case("s8", (-128, 127)))
def test_s8_x_s8_full_range_equals_onnxruntime(case):
    _compare(case)


@given(matmul_case("u8", (-64, 64)))
def test_u8_x_s8_reduced_weights_equals_onnxruntime(case):
    _compare(case)


def test_ties_and_saturation_against_onnxruntime():
    """Hand-built: accumulators whose scaled values are exact .5 ties, and outputs that saturate."""
    # a = [[1..8]] (s8), b = identity-ish column picks: acc = a itself; scale 0.5 -> ties at odd acc
    a = np.array([[1, 3, 5, 7, -1, -3, -5, -7]], dtype=np.int8)
    b = np.eye(8, dtype=np.int8)
    out = _compare((a, 0.5, 0, b, np.float32(1.0), np.int8(0), 1.0, 0, "s8", "s8"))
    # 0.5, 1.5, 2.5, 3.5, -0.5, -1.5, -2.5, -3.5 -> half to even
    assert out.tolist() == [[0, 2, 2, 4, 0, -2, -2, -4]]
    a = np.full((2, 64), 127, dtype=np.int8)
    b = np.full((64, 3), 127, dtype=np.int8)
    out = _compare((a, 1.0, 0, b, np.float32(1.0), np.int8(0), 1.0, 5, "s8", "s8"))
    assert out.tolist() == [[127] * 3] * 2


@pytest.mark.parametrize("seed", range(3))
def test_u8_full_range_is_where_ort_defaults_are_not_exact(seed):
    """With full-range s8 weights, ORT's default u8 x s8 kernel on a CPU without VNNI saturates
    int16 pair sums and differs from exact integer arithmetic; its exact session (the reference
    engine) and the chip do not.  Both are run here, on this CPU."""
    from accelsim.compiler.onnx.runtime import default_u8s8_is_exact

    rng = np.random.default_rng(seed)
    a = np.full((4, 64), 255, dtype=np.uint8)
    b = np.full((64, 4), -128, dtype=np.int8)
    b[::2] = 127
    b = np.where(rng.random((64, 4)) < 0.5, b, np.int8(-128)).astype(np.int8)
    ours = chip_qlinear_matmul(a, 0.01, 0, b, np.float32(0.01), np.int8(0), 0.5, 128, "u8", "u8")
    exact = (a.astype(np.int64) @ b.astype(np.int64)).astype(np.float32) * np.float32(1e-4 / 0.5)
    exact = np.clip(np.rint(exact) + 128, 0, 255)
    np.testing.assert_array_equal(ours, exact)
    args = (a, 0.01, 0, b, np.float32(0.01), np.int8(0), 0.5, 128, np.uint8)
    np.testing.assert_array_equal(qlinear_matmul(*args), exact)                 # the reference session
    default = qlinear_matmul(*args, exact=False)                                 # ORT's default kernels
    assert np.array_equal(default, exact) == default_u8s8_is_exact()


def _qlinear_add(n, sa, za, sb, zb, sc, zc, dtype):
    from onnx import TensorProto, helper, numpy_helper

    from .ort_models import session

    tp = TensorProto.UINT8 if dtype == np.uint8 else TensorProto.INT8
    inits = [numpy_helper.from_array(np.float32(sa), "sa"), numpy_helper.from_array(np.array(za, dtype), "za"),
             numpy_helper.from_array(np.float32(sb), "sb"), numpy_helper.from_array(np.array(zb, dtype), "zb"),
             numpy_helper.from_array(np.float32(sc), "sc"), numpy_helper.from_array(np.array(zc, dtype), "zc")]
    node = helper.make_node("QLinearAdd", ["a", "sa", "za", "b", "sb", "zb", "sc", "zc"], ["y"], domain="com.microsoft")
    g = helper.make_graph([node], "add", [helper.make_tensor_value_info("a", tp, [n]),
                                          helper.make_tensor_value_info("b", tp, [n])],
                          [helper.make_tensor_value_info("y", tp, [n])], inits)
    return session(helper.make_model(g, opset_imports=[helper.make_opsetid("", 17),
                                                      helper.make_opsetid("com.microsoft", 1)]))


@pytest.mark.parametrize("dtype", [np.uint8, np.int8])
def test_vadd_fp32_equals_onnxruntime_qlinearadd(dtype):
    """VADD in fp32 mode, run through the golden instruction, equals ONNX Runtime's QLinearAdd on
    hundreds of thousands of random values (its MLAS AVX2 kernel: fma(a, rA, fma(b, rB, F)))."""
    lo, hi = (0, 255) if dtype == np.uint8 else (-128, 127)
    rng = np.random.default_rng(12)
    for _ in range(30):
        n = int(rng.integers(1000, 6000))
        sa, sb, sc = (np.float32(rng.uniform(0.005, 0.1)) for _ in range(3))
        za, zb, zc = (int(rng.integers(lo, hi + 1)) for _ in range(3))
        a = rng.integers(lo, hi + 1, n).astype(dtype)
        b = rng.integers(lo, hi + 1, n).astype(dtype)
        ref = _qlinear_add(n, sa, za, sb, zb, sc, zc, dtype).run(None, {"a": a, "b": b})[0].astype(np.int64)
        state = MachineState.create(16, sizes={"INP": n, "OUT": n, "WGT": 16, "ACC": 16, "PRM": 16})
        state.buffers["INP"][:] = a
        state.buffers["OUT"][:] = b
        ra, rb = np.float32(sa) / np.float32(sc), np.float32(sb) / np.float32(sc)
        state.buffers["PRM"][:9] = [za, zb, int(ra.view(np.int32)), 0, int(rb.view(np.int32)), 0, 0, 0, 0]
        t = "u8" if dtype == np.uint8 else "s8"
        isa.run([isa.Instruction("CONFIG", a=t, w="s8", o=t, o_zp=zc, clamp_min=lo, clamp_max=hi),
                 isa.Instruction("VADD", a_buf="INP", a=0, b_buf="OUT", b=0, dst_buf="INP", dst=0, n=n, prm=0)],
                state)
        np.testing.assert_array_equal(state.buffers["INP"], ref)


def _qlinear_mul(shape_a, shape_b, sa, za, sb, zb, sc, zc, dtype):
    """A one-node com.microsoft QLinearMul session (a and b inputs, ONNX broadcasting)."""
    from onnx import TensorProto, helper, numpy_helper

    from .ort_models import session

    tp = TensorProto.UINT8 if dtype == np.uint8 else TensorProto.INT8
    inits = [numpy_helper.from_array(np.float32(sa), "sa"), numpy_helper.from_array(np.array(za, dtype), "za"),
             numpy_helper.from_array(np.float32(sb), "sb"), numpy_helper.from_array(np.array(zb, dtype), "zb"),
             numpy_helper.from_array(np.float32(sc), "sc"), numpy_helper.from_array(np.array(zc, dtype), "zc")]
    node = helper.make_node("QLinearMul", ["a", "sa", "za", "b", "sb", "zb", "sc", "zc"], ["y"], domain="com.microsoft")
    shape_y = list(np.broadcast_shapes(tuple(shape_a), tuple(shape_b)))
    g = helper.make_graph([node], "mul", [helper.make_tensor_value_info("a", tp, list(shape_a)),
                                          helper.make_tensor_value_info("b", tp, list(shape_b))],
                          [helper.make_tensor_value_info("y", tp, shape_y)], inits)
    return session(helper.make_model(g, opset_imports=[helper.make_opsetid("", 17),
                                                      helper.make_opsetid("com.microsoft", 1)]))


def _mul_ratio(sa, sb, sc) -> np.float32:
    """The fp32 VMUL ratio as the compiler (and ORT) computes it: float32(float32(s_a * s_b) / s_c)."""
    return np.float32(np.float32(np.float32(sa) * np.float32(sb)) / np.float32(sc))


def _chip_vmul(a, b, bn, sa, za, sb, zb, sc, zc, dtype) -> np.ndarray:
    """VMUL in fp32 mode through the golden instruction: a (n elements), b (bn elements, or n when bn == 0)."""
    lo, hi = (0, 255) if dtype == np.uint8 else (-128, 127)
    n = a.size
    state = MachineState.create(16, sizes={"INP": n, "OUT": n, "WGT": 16, "ACC": 16, "PRM": 16})
    state.buffers["INP"][:] = a.ravel()
    state.buffers["OUT"][:b.size] = b.ravel()
    state.buffers["PRM"][:4] = [za, zb, int(_mul_ratio(sa, sb, sc).view(np.int32)), 0]
    t = "u8" if dtype == np.uint8 else "s8"
    isa.run([isa.Instruction("CONFIG", a=t, w="s8", o=t, o_zp=zc, clamp_min=lo, clamp_max=hi),
             isa.Instruction("VMUL", a_buf="INP", a=0, b_buf="OUT", b=0, dst_buf="INP", dst=0, n=n, bn=bn, prm=0)],
            state)
    return state.buffers["INP"].copy()


@pytest.mark.parametrize("dtype", [np.uint8, np.int8])
def test_vmul_fp32_equals_onnxruntime_qlinearmul(dtype):
    """VMUL in fp32 mode equals ONNX Runtime's QLinearMul for tensors of the same shape, a [1,C,1,1]
    operand (period C over NHWC memory) and a scalar (period 1)."""
    lo, hi = (0, 255) if dtype == np.uint8 else (-128, 127)
    rng = np.random.default_rng(13)
    for _ in range(20):
        params = [np.float32(rng.uniform(0.005, 0.2)) for _ in range(3)]
        zps = [int(rng.integers(lo, hi + 1)) for _ in range(3)]
        sa, sb, sc = params
        za, zb, zc = zps
        n = int(rng.integers(1000, 6000))
        a, b = (rng.integers(lo, hi + 1, n).astype(dtype) for _ in range(2))
        ref = _qlinear_mul([n], [n], sa, za, sb, zb, sc, zc, dtype).run(None, {"a": a, "b": b})[0]
        np.testing.assert_array_equal(_chip_vmul(a, b, 0, sa, za, sb, zb, sc, zc, dtype), ref)
        c, h, w = int(rng.integers(1, 40)), int(rng.integers(1, 12)), int(rng.integers(1, 12))
        a = rng.integers(lo, hi + 1, (1, c, h, w)).astype(dtype)
        for shape_b, period in (([1, c, 1, 1], c), ([1], 1)):
            b = rng.integers(lo, hi + 1, shape_b).astype(dtype)
            ref = _qlinear_mul(a.shape, shape_b, sa, za, sb, zb, sc, zc, dtype).run(None, {"a": a, "b": b})[0]
            nhwc = a.transpose(0, 2, 3, 1)
            ours = _chip_vmul(nhwc, b, period, sa, za, sb, zb, sc, zc, dtype).reshape(nhwc.shape)
            np.testing.assert_array_equal(ours.transpose(0, 3, 1, 2), ref)


#: scales (float32 of these decimals) and zero points where, over all 65536 operand pairs,
#: float32(float32(p) * ratio) + zc rounds differently from one rounding of p * ratio + zc (a fused
#: multiply-add, or a float64 product), found by a search over random parameters
ADVERSARIAL_MUL = {
    np.uint8: [(0.052212, 0.146622, 0.157686, 17, 150, 190), (0.148946, 0.071052, 0.031617, 17, 127, 49),
               (0.295324, 0.019682, 0.220637, 76, 107, 74), (0.012899, 0.076982, 0.098688, 234, 59, 149)],
    np.int8: [(0.17381, 0.076772, 0.105116, -25, 91, 28), (0.012899, 0.076982, 0.098688, 106, -69, 21),
              (0.251287, 0.050244, 0.147725, -103, -16, -57), (0.042863, 0.195781, 0.202739, 94, 71, -71)],
}


@pytest.mark.parametrize("dtype", [np.uint8, np.int8])
def test_vmul_fp32_rounds_twice_like_onnxruntime(dtype):
    """Every operand pair under parameters where one rounding (FMA or a float64 product) and
    "round, then add the zero point" would differ from two float32 roundings: VMUL equals ORT."""
    from isa.requant import fma_f32

    lo, hi = (0, 255) if dtype == np.uint8 else (-128, 127)
    v = np.arange(lo, hi + 1)
    a, b = np.repeat(v, v.size).astype(dtype), np.tile(v, v.size).astype(dtype)
    rounded_first = 0
    for sa, sb, sc, za, zb, zc in ADVERSARIAL_MUL[dtype]:
        ref = _qlinear_mul([a.size], [a.size], sa, za, sb, zb, sc, zc, dtype).run(None, {"a": a, "b": b})[0]
        np.testing.assert_array_equal(_chip_vmul(a, b, 0, sa, za, sb, zb, sc, zc, dtype), ref)
        p = (a.astype(np.int64) - za) * (b.astype(np.int64) - zb)
        ratio = _mul_ratio(sa, sb, sc)
        fused = np.clip(np.rint(fma_f32(p.astype(np.float32), ratio, np.float32(zc))), lo, hi)
        wide = np.clip(np.rint(np.float32(p * np.float64(ratio) + zc)), lo, hi)
        assert (fused != ref).any() and (wide != ref).any()  # the parameters do what they claim
        rounded_first += int((np.clip(np.rint(p.astype(np.float32) * ratio) + zc, lo, hi) != ref).sum())
    assert rounded_first > 0
