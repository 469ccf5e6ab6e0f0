"""Acceptance 2: golden vectors for every rounding rule, worked by hand (arithmetic in comments)."""

from __future__ import annotations

import numpy as np
import pytest

from isa import Instruction
from isa.quant import pack_int4, unpack_int4
from isa.requant import (
    INT32_MAX,
    INT32_MIN,
    fp64_from_words,
    fp64_words,
    multiply_by_quantized_multiplier,
    quantize_multiplier,
    requant_fp32,
    requantize,
    rounding_divide_by_pot,
    srdhm,
    wrap,
)
from isa.semantics import MachineState, step

from .kernel_harness import assert_same_state, run_kernel

M_HALF = 1 << 30  # 0.5 in Q31


def mbqm(x, m, shift, mode, wide=False):
    return int(multiply_by_quantized_multiplier(x, m, shift, single_rounding=mode == "single", wide=wide))


# --------------------------------------------------------------------------- QuantizeMultiplier
@pytest.mark.parametrize("real, expect", [
    (0.0, (0, 0)),
    (0.5, (1 << 30, 0)),                    # frexp(0.5) = (0.5, 0); 0.5 * 2^31 = 2^30
    (0.75, (1610612736, 0)),                # 0.75 * 2^31
    (1.0, (1 << 30, 1)),                    # multiplier >= 1: frexp(1) = (0.5, 1)
    (3.0, (1610612736, 2)),                 # frexp(3) = (0.75, 2)
    (0.5 + 2**-32, ((1 << 30) + 1, 0)),     # q * 2^31 = 2^30 + 0.5: a tie, rounded AWAY (not to even)
    (0.5 - 2**-34, (1 << 30, 0)),           # q = 1 - 2^-33: q * 2^31 = 2^31 - 0.25 -> 2^31 -> 2^30, shift + 1
    (2.0**-32, (1 << 30, -31)),             # frexp = (0.5, -31): the smallest shift kept
    (2.0**-33, (0, 0)),                     # frexp = (0.5, -32): shift < -31 flushes to zero
    (2.0**-40, (0, 0)),
])
def test_quantize_multiplier(real, expect):
    assert quantize_multiplier(real) == expect


def test_quantize_multiplier_single_rounding_saturates_large_shift():
    # 2^31: frexp = (0.5, 32); double rounding keeps shift 32, single rounding saturates to (2^31-1, 30).
    assert quantize_multiplier(2.0**31) == (1 << 30, 32)
    assert quantize_multiplier(2.0**31, single_rounding=True) == ((1 << 31) - 1, 30)
    assert quantize_multiplier(2.0**29, single_rounding=True) == (1 << 30, 30)  # exactly at the limit


# --------------------------------------------------------------------------- gemmlowp primitives
@pytest.mark.parametrize("a, b, expect", [
    (1 << 30, 1 << 30, 1 << 29),        # 2^60 / 2^31 = 2^29 exactly
    (INT32_MIN, INT32_MIN, INT32_MAX),  # the one overflow: (-1) * (-1) in Q31 saturates
    (INT32_MIN, INT32_MAX, -INT32_MAX), # -2^31 * (2^31-1) / 2^31 = -(2^31 - 1), exact
    (1, M_HALF, 1),                     # 1 * 0.5 = 0.5: positive tie -> 1 (up)
    (3, M_HALF, 2),                     # 1.5 -> 2
    (-1, M_HALF, 0),                    # -0.5: (-2^30 + 1 - 2^30) / 2^31 = -0.99.. truncates to 0 (tie UP)
    (-3, M_HALF, -1),                   # -1.5: (-3*2^30 + 1 - 2^30) / 2^31 = -1.99.. -> -1 (tie up)
    (-5, 1288490189, -3),               # -5 * 0.6 = -3.0000000002 -> -3
])
def test_srdhm(a, b, expect):
    assert int(srdhm(a, b)) == expect


@pytest.mark.parametrize("x, e, expect", [
    (5, 1, 3),        # 2.5 -> 3: remainder 1 > threshold 0
    (-5, 1, -3),      # -2.5 -> -3: floor -3, remainder 1, threshold 0 + 1 = 1, not greater
    (-3, 1, -2),      # -1.5 -> -2 (away from zero)
    (-1, 1, -1),      # -0.5 -> -1
    (7, 2, 2),        # 1.75 -> 2
    (6, 2, 2),        # 1.5 -> 2
    (-6, 2, -2),      # -1.5 -> -2
    (12345, 0, 12345),
    (1 << 30, 31, 1),          # 0.5 at the largest exponent -> 1
    ((1 << 30) - 1, 31, 0),    # just below a half
    (INT32_MIN, 31, -1),       # exactly -1
    (-(1 << 30), 31, -1),      # -0.5 -> -1
])
def test_rounding_divide_by_pot(x, e, expect):
    assert int(rounding_divide_by_pot(x, e)) == expect


# --------------------------------------------------------------------------- MultiplyByQuantizedMultiplier
def test_double_and_single_rounding_differ_where_they_should():
    # x = 101, M0 = 2^30 (0.5), shift = -1: real product 101 * 0.25 = 25.25.
    # double: SRDHM(101, 2^30) = 50.5 -> 51; RDBPOT(51, 1) = 25.5 -> 26   (two roundings: 26)
    # single: (101 * 2^30 + 2^31) >> 32 = floor(25.25 + 0.5) = 25
    assert mbqm(101, M_HALF, -1, "double") == 26
    assert mbqm(101, M_HALF, -1, "single") == 25
    # x = -101: double: SRDHM = trunc((-101*2^30 + 1 - 2^30)/2^31) = -50; RDBPOT(-50, 1) = -25
    #           single: floor(-25.25 + 0.5) = -25
    assert mbqm(-101, M_HALF, -1, "double") == -25
    assert mbqm(-101, M_HALF, -1, "single") == -25
    # ties: x = -6 -> -1.5: double rounds away (-2), single rounds up (-1)
    assert mbqm(-6, M_HALF, -1, "double") == -2
    assert mbqm(-6, M_HALF, -1, "single") == -1
    assert mbqm(6, M_HALF, -1, "double") == 2
    assert mbqm(6, M_HALF, -1, "single") == 2


def test_multiplier_at_least_one():
    m, s = quantize_multiplier(3.0)  # (0.75 * 2^31, 2)
    # double: 7 << 2 = 28; SRDHM(28, 0.75) = 21.  single: 7 * 0.75 * 2^31 >> 29 = 21
    assert mbqm(7, m, s, "double") == 21
    assert mbqm(7, m, s, "single") == 21
    # The left shift of the double-rounding path wraps in int32: 2^29 << 2 = 2^31 -> INT32_MIN,
    # SRDHM(INT32_MIN, 2^30) = -2^30.  Single rounding works in int64: 2^29 * 2^30 >> 29 = 2^30.
    assert mbqm(1 << 29, M_HALF, 2, "double") == -(1 << 30)
    assert mbqm(1 << 29, M_HALF, 2, "single") == 1 << 30


def test_shifts_at_their_limits():
    # shift -31, M0 = 2^30: real multiplier 2^-32; x = 2^31 - 1 -> 0.49999999977.
    # double: SRDHM = (2^31-1)/2 = 2^30 - 0.5 -> 2^30 (tie up); RDBPOT(2^30, 31) = 0.5 -> 1
    # single: ((2^31-1) * 2^30 + 2^61) >> 62 = floor(0.99999999977) = 0
    assert mbqm(INT32_MAX, M_HALF, -31, "double") == 1
    assert mbqm(INT32_MAX, M_HALF, -31, "single") == 0
    # shift 30 (single rounding's maximum), M0 = 2^31 - 1: t = 1, (1 * (2^31-1) + 1) >> 1 = 2^30
    assert mbqm(1, INT32_MAX, 30, "single") == 1 << 30


def test_tiny_multiplier_flushes_to_zero():
    m, s = quantize_multiplier(1e-12)
    assert (m, s) == (0, 0)
    assert mbqm(INT32_MAX, m, s, "double") == 0
    assert mbqm(INT32_MAX, m, s, "single") == 0


def test_wide_accumulator_path():
    # int64 x: M0 reduced to 16 bits, rm = (2^30 + 2^15) >> 16 = 16384; t = 15 - shift.
    # x = 2^40, shift 0: (2^40 * 2^14 + 2^14) >> 15 = 2^39  (0.5 * 2^40)
    assert mbqm(1 << 40, M_HALF, 0, "double", wide=True) == wrap(1 << 39, 32)  # int32 result wraps: 0
    assert mbqm(1 << 30, M_HALF, 0, "single", wide=True) == 1 << 29
    # M0 >= 0x7FFF0000 uses rm = 0x7FFF: x = 2^20 -> (2^20 * 32767 + 2^14) >> 15 = 32 * 32767 = 1048544
    assert mbqm(1 << 20, INT32_MAX, 0, "double", wide=True) == 1048544
    # a tie: x = 3, rm = 16384, shift -1 -> t = 16: (3 * 2^14 + 2^15) >> 16 = floor(0.75 + 0.5) = 1
    assert mbqm(3, M_HALF, -1, "single", wide=True) == 1


# --------------------------------------------------------------------------- fp32 (MLAS) requant
def test_fp32_ties_round_half_to_even():
    x = np.array([5, 7, -5, -7, 1, -1, 3])
    # x * 0.5 = 2.5, 3.5, -2.5, -3.5, 0.5, -0.5, 1.5  ->  2, 4, -2, -4, 0, 0, 2
    got = requant_fp32(x, np.float32(0.5), 0, -128, 127)
    assert got.tolist() == [2, 4, -2, -4, 0, 0, 2]
    # with zero point 10 the zero point is added after rounding: 12, 14, 8, 6, 10, 10, 12
    assert requant_fp32(x, np.float32(0.5), 10, 0, 255).tolist() == [12, 14, 8, 6, 10, 10, 12]


def test_fp32_clamps_in_float_before_rounding():
    # 1000 * 1.0 clamped to [qmin - zp, qmax - zp] = [-138, 117] for s8 with zp 10 -> 127
    assert requant_fp32(np.array([1000, -1000]), np.float32(1.0), 10, -128, 127).tolist() == [127, -128]
    # NaN scale -> the lower bound (x86 MINPS/MAXPS keep the second operand): qmin
    nan = np.float32(np.nan)
    assert requant_fp32(np.array([3]), nan, 10, 0, 255).tolist() == [0]
    assert requant_fp32(np.array([3]), np.float32(np.inf), 10, 0, 255).tolist() == [255]


def test_fp32_accumulator_beyond_2_24_rounds_in_conversion():
    # acc = 2^24 + 2^11 + 1 = 16779265; exact * 2^-12 = 4096.5002 -> 4097 in exact arithmetic.
    # float32(16779265): spacing 2, a tie between 16779264 and 16779266 -> even mantissa 16779264;
    # 16779264 * 2^-12 = 4096.5 exactly -> half to even -> 4096.
    acc = np.array([16779265])
    assert requant_fp32(acc, np.float32(2.0**-12), 0, -32768, 32767).tolist() == [4096]


def test_requantize_modes_with_bias_and_wrap():
    acc, bias = np.array([[90, -110]]), np.array([11, 9])  # acc + bias = 101, -101
    m, s = M_HALF, np.array([-1, -1])
    common = dict(acc_bits=32, zp=3, qmin=-128, qmax=127)
    # fp32 with scale 0.25: 25.25 -> 25, -25.25 -> -25; + 3
    assert requantize(acc, bias, m, s, np.float32(0.25), mode="fp32", **common).tolist() == [[28, -22]]
    assert requantize(acc, bias, m, s, 0, mode="fixed_double", **common).tolist() == [[29, -22]]
    assert requantize(acc, bias, m, s, 0, mode="fixed_single", **common).tolist() == [[28, -22]]
    # acc + bias wraps to the accumulator width first: 16-bit acc, 32767 + 1 -> -32768 -> * 0.25 = -8192
    got = requantize(np.array([32767]), np.array([1]), M_HALF, np.array([-1]), 0, mode="fixed_single",
                     acc_bits=16, zp=0, qmin=-32768, qmax=32767)
    assert got.tolist() == [-8192]


def test_wrap():
    assert wrap(np.array([127, 128, -129, 255]), 8).tolist() == [127, -128, 127, -1]
    assert int(wrap(INT32_MAX + 1, 32)) == INT32_MIN
    assert int(wrap((1 << 47), 48)) == -(1 << 47)


# --------------------------------------------------------------------------- int4 packing
def test_int4_odd_length_packing():
    # s4 [1, -2, 7]: nibbles 0x1, 0xE, 0x7 -> bytes [0xE1, 0x07] (first element low, last byte padded 0)
    packed = pack_int4(np.array([1, -2, 7]))
    assert packed.tolist() == [0xE1, 0x07]
    assert unpack_int4(packed, 3, signed=True).tolist() == [1, -2, 7]
    # u4 [15, 0, 9] -> [0x0F, 0x09]; read back as signed the 15 is -1
    packed = pack_int4(np.array([15, 0, 9]))
    assert packed.tolist() == [0x0F, 0x09]
    assert unpack_int4(packed, 3, signed=False).tolist() == [15, 0, 9]
    assert unpack_int4(packed, 3, signed=True).tolist() == [-1, 0, -7]
    assert pack_int4(np.array([-8])).tolist() == [0x08]
    with pytest.raises(ValueError, match="too short"):
        unpack_int4(np.array([0x12], dtype=np.uint8), 3, signed=True)


def test_byte_aligned_packing_equals_the_bit_stream():
    """pack_bits' whole-byte fast path (8/16/32 bits) writes the same little-endian bit stream as
    the bit planes: low bits of each value first, two's complement for negatives."""
    from isa.quant import pack_bits, unpack_bits

    rng = np.random.default_rng(0)
    for bits in (8, 16, 32):
        v = rng.integers(-(1 << (bits - 1)), 1 << (bits - 1), 257)
        planes = ((v[:, None] & ((1 << bits) - 1)) >> np.arange(bits)) & 1
        expect = np.packbits(planes.astype(np.uint8).ravel(), bitorder="little")
        np.testing.assert_array_equal(pack_bits(v, bits), expect)
        np.testing.assert_array_equal(unpack_bits(pack_bits(v, bits), v.size, bits, True), v)


# LiteRT 2.3's kernel sets on a one-input fully connected layer, s_in = s_out = 1, weight 1, bias 0,
# weight scale 0.5 / 0.25 (multiplier M0 = 2^30 with shift 0 / -1): the codes each kernel set
# returned for inputs -7, -5, -3, -1, 1, 3, 5, 7 (every product an exact tie at 0.5, or at .25/.75).
TIE_INPUTS = np.array([-7, -5, -3, -1, 1, 3, 5, 7])


@pytest.mark.parametrize("mode, shift, expected", [
    # BUILTIN_WITHOUT_DEFAULT_DELEGATES (optimized kernels): SRDHM, then the shift rounds half up
    ("fixed_double_up", 0, [-3, -2, -1, 0, 1, 2, 3, 4]),
    ("fixed_double_up", -1, [-1, -1, 0, 0, 1, 1, 2, 2]),   # -1.75 -> SRDHM -3 -> (-3 + 1) >> 1 = -1
    # BUILTIN_REF's conv and depthwise: SRDHM, then RoundingDivideByPOT (half away from zero)
    ("fixed_double", -1, [-2, -1, -1, 0, 1, 1, 2, 2]),    # 0.25: SRDHM 1 -> 0.5 -> 1 -> RDBPOT 1
])
def test_litert_fixed_point_ties(mode, shift, expected):
    got = requantize(TIE_INPUTS, np.array([0]), np.array([M_HALF]), np.array([shift]), 0, mode=mode,
                     acc_bits=32, zp=0, qmin=-128, qmax=127)
    assert got.tolist() == expected


@pytest.mark.parametrize("real, expected", [
    (0.5, [-4, -3, -2, -1, 1, 2, 3, 4]),     # BUILTIN_REF's fully connected: ties away from zero
    (0.25, [-2, -1, -1, 0, 0, 1, 1, 2]),     # -1.25 -> -1 (one rounding; double rounding gives -2)
])
def test_litert_reference_fully_connected_ties(real, expected):
    low, high = fp64_words(np.array([real]))
    got = requantize(TIE_INPUTS, np.array([0]), low, high, 0, mode="fp64_away", acc_bits=32, zp=0,
                     qmin=-128, qmax=127)
    assert got.tolist() == expected


def test_fp64_away_uses_the_double_multiplier_not_m0():
    """A case where round(acc * real) and TFLite's Q31 multiplier disagree (found by search; LiteRT's
    reference fully connected returned the double's answer in 25 of 25 such cases)."""
    real = 3.428080423874833e-05
    m0, shift = quantize_multiplier(real)
    acc = np.arange(1, 1 << 24)
    q31 = (acc * m0 + (1 << (30 - shift))) >> (31 - shift)
    exact = np.floor(acc * real + 0.5)
    differ = acc[q31 != exact]
    assert differ.size  # the two rules do part somewhere in this range
    low, high = fp64_words(np.array([real]))
    got = requantize(differ[:5], np.array([0]), low, high, 0, mode="fp64_away", acc_bits=32, zp=0,
                     qmin=-(1 << 31), qmax=(1 << 31) - 1)
    assert got.tolist() == exact[q31 != exact][:5].astype(int).tolist()


def test_fp64_words_round_trip():
    v = np.array([0.0, 1.0, 0.3, 1e-300, 2.0**-1074])
    assert np.array_equal(fp64_from_words(*fp64_words(v)), v)


def test_xnnpack_add_rounds_once_ties_up():
    """VADD fixed_shared is XNNPACK's qs8 add: (a-za)*am + (b-zb)*bm + 2^(s-1), shifted right by s.
    Hand-checked: am = bm = 2^19 at s = 20 halves the sum, so odd sums are ties and go up
    ((3 + 0) / 2 = 1.5 -> 2, (-3 + 0) / 2 = -1.5 -> -1); the zero points come off first."""
    s = MachineState.create(16)
    step(s, Instruction("CONFIG", a="s8", w="s8", o="s8", mode="fixed_shared", o_zp=-5, clamp_min=-112,
                        clamp_max=127))
    s.buffers["INP"][:4] = [13, 7, 10 + 100, 10 - 120]      # a, a_zp = 10
    s.buffers["OUT"][:4] = [-20, -20, -20 + 100, -20 - 100]  # b, b_zp = -20
    s.buffers["PRM"][:9] = [10, -20, 1 << 19, 0, 1 << 19, 0, 0, 20, 0]
    ins = Instruction("VADD", a_buf="INP", a=0, b_buf="OUT", b=0, dst_buf="OUT", dst=8, n=4, prm=0)
    golden = s.copy()
    step(golden, ins)
    # (3 + 0) / 2 -> 2; (-3 + 0) / 2 -> -1; 200 / 2 = 100; -220 / 2 = -110; + o_zp -5; clamp at -112
    assert golden.buffers["OUT"][8:12].tolist() == [2 - 5, -1 - 5, 100 - 5, -112]
    assert_same_state(golden, run_kernel(s, ins))
    with pytest.raises(Exception, match="fixed_shared"):
        bad = s.copy()
        step(bad, Instruction("REQUANT", src=0, dst_buf="OUT", dst=0, prm=0, m=1, n=1))
