"""Issue 3, acceptance 1 and 2: every kernel equals its golden function bit for bit.

Hypothesis draws shapes (1, odd, not multiples of the vector width), operand types 4/8/16 bits of
both signs, zero points at the ends of their range, words at the extremes (and beyond the
operand width, which the MAC array truncates), narrow accumulators that wrap, every requant mode
with ties, and compressed streams of every format, valid and corrupt.  This file also runs with
NUMBA_DISABLE_JIT=1 (test_kernels_without_jit.py).
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from accelsim.compiler import weights as compression
from isa import ExecError, Instruction
from isa.quant import qrange
from isa.requant import fma_f32, fp64_words, mul_fp32
from isa.semantics import MachineState, step
from isa.table import BUFFERS, MAC_DTYPES, MEM_DTYPES, REQUANT_MODES

from .kernel_harness import KernelFault, assert_same_state, run_kernel

SIZES = {"INP": 6000, "WGT": 6000, "ACC": 3000, "OUT": 6000, "PRM": 600}
DRAM = 12000
SHAPES = st.sampled_from([1, 2, 3, 4, 5, 7, 8, 9, 15, 16, 17, 31, 32, 33]) | st.integers(1, 70)


def _ends(dtype: str):
    lo, hi = qrange(dtype)
    return st.sampled_from([lo, hi, 0, lo + 1, hi - 1]) | st.integers(lo, hi)


@st.composite
def config(draw):
    a, w, o = (draw(st.sampled_from(MAC_DTYPES)) for _ in range(3))
    lo, hi = qrange(o)
    cmin, cmax = sorted((draw(_ends(o)), draw(_ends(o))))
    if draw(st.booleans()):
        cmin, cmax = lo, hi
    return Instruction("CONFIG", a=a, w=w, o=o, a_zp=draw(_ends(a)), w_zp=draw(_ends(w)), o_zp=draw(_ends(o)),
                       acc_bits=draw(st.sampled_from([32, 32, 48, 16, 12, 24, 40]) | st.integers(8, 48)),
                       mode=draw(st.sampled_from(REQUANT_MODES)), clamp_min=cmin, clamp_max=cmax)


@st.composite
def machine(draw, cfg):
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    s = MachineState.create(rng.integers(0, 256, DRAM).astype(np.uint8), sizes=SIZES)
    c = cfg.args
    for name in BUFFERS:
        profile = draw(st.sampled_from(["operands", "extremes", "words", "small"]))
        buf = s.buffers[name]
        if profile == "operands":  # in range of the configured types
            lo, hi = qrange(c["a"] if name in ("INP", "OUT") else c["w"])
            buf[:] = rng.integers(lo, hi + 1, buf.size)
        elif profile == "extremes":
            lo, hi = qrange(c["a"] if name in ("INP", "OUT") else c["w"])
            buf[:] = rng.choice([lo, hi], buf.size)
        elif profile == "words":
            buf[:] = rng.integers(-(2**31), 2**31, buf.size)
        else:
            buf[:] = rng.integers(-3, 4, buf.size)
    if draw(st.booleans()):
        s.buffers["ACC"][:] = rng.integers(-(2**47), 2**47, SIZES["ACC"])
    step(s, cfg)
    return s


def check(state: MachineState, ins: Instruction) -> None:
    golden = state.copy()
    try:
        step(golden, ins)
    except ExecError as e:
        if "outside the buffer" in str(e) or "outside DRAM" in str(e):
            return  # a span of the instruction table: the chip refuses it before any kernel runs
        with pytest.raises(KernelFault):  # a data-dependent fault: the kernel finds it itself
            run_kernel(state, ins)
        return
    assert_same_state(golden, run_kernel(state, ins))


def _addr(draw, buf, n):
    return draw(st.integers(0, SIZES[buf] - n) | st.just(SIZES[buf] - n))


# --------------------------------------------------------------------------- MAC array
@given(st.data())
def test_gemm(data):
    cfg = data.draw(config())
    s = data.draw(machine(cfg))
    m, n = data.draw(SHAPES), data.draw(SHAPES)
    k = data.draw(SHAPES | st.sampled_from([64, 80, 255, 256, 257]))
    assume(m * k <= SIZES["INP"] and n * k <= SIZES["WGT"] and m * n <= SIZES["ACC"])
    ins = Instruction("GEMM", inp=_addr(data.draw, "INP", m * k), wgt=_addr(data.draw, "WGT", n * k),
                      acc=_addr(data.draw, "ACC", m * n), m=m, n=n, k=k, accumulate=data.draw(st.integers(0, 1)))
    check(s, ins)


@given(st.sampled_from(["u8", "s8", "u4", "s4"]), st.sampled_from([12, 16, 20]), st.integers(0, 2**32 - 1))
def test_gemm_long_k_wraps_narrow_accumulators(a, acc_bits, seed):
    """Sums of extreme operands over long K exceed the accumulator and must wrap identically."""
    rng = np.random.default_rng(seed)
    lo, hi = qrange(a)
    cfg = Instruction("CONFIG", a=a, w="s8", o="s8", a_zp=lo, w_zp=-128, acc_bits=acc_bits, clamp_min=-128,
                      clamp_max=127)
    s = MachineState.create(16, sizes=SIZES)
    step(s, cfg)
    s.buffers["INP"][:] = rng.choice([lo, hi], SIZES["INP"])
    s.buffers["WGT"][:] = 127
    k = int(rng.integers(1000, 2000))
    golden = s.copy()
    ins = Instruction("GEMM", inp=0, wgt=0, acc=0, m=3, n=2, k=k)
    step(golden, ins)
    exact = (s.buffers["INP"][:3 * k].reshape(3, k) - lo) @ np.full((k, 2), 255)
    assert (np.abs(exact) >= 1 << (acc_bits - 1)).any()  # the wrap really happens
    assert_same_state(golden, run_kernel(s, ins))


@given(st.sampled_from(["u8", "s8", "u4", "s4"]), st.sampled_from(["s8", "s4", "u8", "u4"]), st.integers(0, 2**32 - 1),
       st.sampled_from([1, 3, 4, 9, 12, 17]), st.sampled_from([1, 7, 16, 33, 70, 130]),
       st.sampled_from([3, 63, 64, 65, 1030, 2100]), st.booleans())
def test_gemm_byte_tiles_path(a, w, seed, m, n, k, w_zero):
    """Operands of at most 8 bits take the u8 x s8 tiles (vpdpbusd on AVX512-VNNI): activations
    shifted to unsigned bytes, unsigned weights to signed ones, the zero-point terms removed per row
    and column, K padded to steps of 4 and split in chunks whose last one is shorter, 8- and 4-row
    tiles of one and two 16-column strips, panels of 64 columns.  Extreme operands and zero points."""
    rng = np.random.default_rng(seed)
    alo, ahi = qrange(a)
    wlo, whi = qrange(w)
    w_zp = 0 if w_zero else int(rng.choice([wlo, whi, (wlo + whi) // 2]))
    sizes = {"INP": m * k, "WGT": n * k, "ACC": m * n, "OUT": 16, "PRM": 16}
    s = MachineState.create(16, sizes=sizes)
    step(s, Instruction("CONFIG", a=a, w=w, o="s8", a_zp=int(rng.choice([alo, ahi, 0])), w_zp=w_zp, acc_bits=32,
                        clamp_min=-128, clamp_max=127))
    s.buffers["INP"][:] = rng.choice([alo, ahi, rng.integers(alo, ahi + 1)], m * k)
    s.buffers["WGT"][:] = rng.choice([wlo, whi, rng.integers(wlo, whi + 1)], n * k)
    check(s, Instruction("GEMM", inp=0, wgt=0, acc=0, m=m, n=n, k=k))


@given(st.sampled_from(["s16", "u16", "s8", "u8", "s4"]), st.sampled_from(["s16", "s8", "u8", "s4"]),
       st.integers(0, 2**32 - 1), st.sampled_from([1, 3, 5, 12, 17]), st.sampled_from([1, 7, 16, 33, 70]),
       st.sampled_from([1, 253, 254, 255, 509, 1030]), st.sampled_from([48, 40, 32]))
def test_gemm_16bit_digits_path(a, w, seed, m, n, k, acc_bits):
    """16-bit operands (and any weights that fit int16 minus their zero point) run the int16
    tiles (vpdpwssd on AVX512-VNNI): activations minus their zero point split in two digits, K in
    exact chunks of 254, odd chunks padded.  Extreme operands and zero points (a - zp = -65535)."""
    rng = np.random.default_rng(seed)
    alo, ahi = qrange(a)
    wlo, whi = qrange(w)
    w_zp = 0 if w == "s16" else int(rng.choice([wlo, whi, 0]))  # 8-bit weights with a zero point take it too
    sizes = {"INP": m * k, "WGT": n * k, "ACC": m * n, "OUT": 16, "PRM": 16}
    s = MachineState.create(16, sizes=sizes)
    step(s, Instruction("CONFIG", a=a, w=w, o="s8", a_zp=int(rng.choice([alo, ahi, 0])), w_zp=w_zp,
                        acc_bits=acc_bits, clamp_min=-128, clamp_max=127))
    s.buffers["INP"][:] = rng.choice([alo, ahi, rng.integers(alo, ahi + 1)], m * k)
    s.buffers["WGT"][:] = rng.choice([wlo, whi, rng.integers(wlo, whi + 1)], n * k)
    s.buffers["ACC"][:] = rng.integers(-(2**39), 2**39, m * n)
    check(s, Instruction("GEMM", inp=0, wgt=0, acc=0, m=m, n=n, k=k, accumulate=int(rng.integers(0, 2))))


@given(st.data())
def test_dwconv(data):
    cfg = data.draw(config())
    s = data.draw(machine(cfg))
    m, r, c = data.draw(SHAPES), data.draw(st.integers(1, 12)), data.draw(SHAPES)
    assume(m * r * c <= SIZES["INP"] and m * c <= SIZES["ACC"])
    ins = Instruction("DWCONV", inp=_addr(data.draw, "INP", m * r * c), wgt=_addr(data.draw, "WGT", r * c),
                      acc=_addr(data.draw, "ACC", m * c), m=m, r=r, c=c, accumulate=data.draw(st.integers(0, 1)))
    check(s, ins)


# --------------------------------------------------------------------------- requant
def _params(draw, rng, n, mode, wide):
    """Per-channel bias, multiplier or fp32 scale, shift; mostly valid, sometimes not."""
    bias = rng.integers(-(2**31), 2**31, n) if draw(st.booleans()) else rng.integers(-1000, 1000, n)
    if mode == "fp32":
        kind = draw(st.sampled_from(["normal", "normal", "special"]))
        if kind == "normal":
            scale = (2.0 ** rng.uniform(-20, 2, n)).astype(np.float32)
        else:
            scale = rng.choice(np.array([np.nan, np.inf, 0.0, 1e-38, 3e38, -0.5], np.float32), n)
        mult = scale.view(np.int32).astype(np.int64)
        shift = rng.integers(-100, 100, n)
    elif mode == "fp64_away":
        kind = draw(st.sampled_from(["normal", "normal", "special"]))
        if kind == "normal":
            real = 2.0 ** rng.uniform(-40, 4, n)
        else:
            real = rng.choice(np.array([np.nan, np.inf, 0.0, 5e-324, 1e300, -0.5, -0.0]), n)
        mult, shift = fp64_words(real)
    else:
        top = 14 if wide else 30
        mult = rng.integers(1 << 30, 1 << 31, n)
        shift = rng.integers(-31, top + 1, n) if draw(st.booleans()) else rng.integers(-12, 1, n)
        if draw(st.booleans()):
            mult[rng.integers(0, n)] = draw(st.sampled_from([0, 1 << 30, (1 << 31) - 1, 0x7FFF0000, -1]))
        if draw(st.integers(0, 9)) == 0:
            shift[rng.integers(0, n)] = draw(st.sampled_from([-32, top + 1]))
    return bias, mult, shift


def _tie_params(rng, n, mode, acc, m):
    """Scales 2^-s and accumulators with acc + bias = odd * 2^(s-1): every output is an exact tie."""
    s = rng.integers(1, 8, n)
    bias = rng.integers(-1000, 1000, n)
    acc[: m * n] = ((2 * rng.integers(-300, 300, (m, n)) + 1) * (1 << (s - 1)) - bias).ravel()
    if mode == "fp32":
        return bias, (2.0 ** -s).astype(np.float32).view(np.int32).astype(np.int64), np.zeros(n, np.int64)
    if mode == "fp64_away":
        return (bias, *fp64_words(2.0 ** -s))
    return bias, np.full(n, 1 << 30, np.int64), 1 - s  # M0 = 0.5, shift 1 - s: 2^-s


@given(st.data())
def test_requant(data):
    cfg = data.draw(config())
    s = data.draw(machine(cfg))
    rng = np.random.default_rng(data.draw(st.integers(0, 2**32 - 1)))
    m, n = data.draw(SHAPES), data.draw(SHAPES)
    assume(m * n <= SIZES["ACC"] and 3 * n <= SIZES["PRM"])
    src = _addr(data.draw, "ACC", m * n)
    if data.draw(st.booleans()):
        acc = s.buffers["ACC"][src:src + m * n]
        bias, mult, shift = _tie_params(rng, n, cfg.mode, acc, m)
    else:
        bias, mult, shift = _params(data.draw, rng, n, cfg.mode, cfg.acc_bits > 32)
    prm = _addr(data.draw, "PRM", 3 * n)
    s.buffers["PRM"][prm:prm + 3 * n] = np.concatenate([bias, mult, shift])
    dst_buf = data.draw(st.sampled_from(["INP", "OUT"]))
    ins = Instruction("REQUANT", src=src, dst_buf=dst_buf, dst=_addr(data.draw, dst_buf, m * n), prm=prm, m=m, n=n)
    check(s, ins)


# --------------------------------------------------------------------------- vector unit
def _period(draw, n):
    """A broadcast period bn for n elements: 0 (b has n elements), 1 (a scalar), n or anything up to n."""
    return draw(st.sampled_from([0, 0, 1, min(3, n), n]) | st.integers(0, min(n, 4095)))


@given(st.data())
def test_vadd(data):
    cfg = data.draw(config())
    s = data.draw(machine(cfg))
    rng = np.random.default_rng(data.draw(st.integers(0, 2**32 - 1)))
    n = data.draw(SHAPES | st.integers(1, 500))
    bn = _period(data.draw, n)
    bufs = [data.draw(st.sampled_from(BUFFERS)) for _ in range(3)]
    prm = _addr(data.draw, "PRM", 9)
    if cfg.mode == "fp32":
        f = (2.0 ** rng.uniform(-3, 1, 2)).astype(np.float32).view(np.int32)
        rec = [rng.integers(-128, 128), rng.integers(-128, 128), f[0], 0, f[1], 0, 0, 0, 0]
    elif cfg.mode == "fixed_shared":  # multipliers near 2^20 at shifts near 20; sometimes out of range
        shift = data.draw(st.sampled_from([20, 19, 22, 1, 31]) | st.integers(-2, 33))
        rec = [rng.integers(-128, 128), rng.integers(-128, 128), rng.integers(-10, 1 << 22), 0,
               rng.integers(0, 1 << 22), 0, 0, shift, 0]
    else:
        rec = [rng.integers(-128, 128), rng.integers(-128, 128), rng.integers(1 << 30, 1 << 31), rng.integers(-8, 1),
               rng.integers(1 << 30, 1 << 31), rng.integers(-8, 1), rng.integers(1 << 30, 1 << 31),
               rng.integers(-25, -15), data.draw(st.sampled_from([20, 15, 0, 30, 31]))]
    s.buffers["PRM"][prm:prm + 9] = rec
    ins = Instruction("VADD", a_buf=bufs[0], a=_addr(data.draw, bufs[0], n), b_buf=bufs[1],
                      b=_addr(data.draw, bufs[1], bn or n), dst_buf=bufs[2], dst=_addr(data.draw, bufs[2], n), n=n,
                      bn=bn, prm=prm)
    check(s, ins)


def _mul_record(draw, rng, cfg) -> list[int]:
    """a_zp, b_zp, mult, shift: an fp32 ratio (sometimes NaN, infinite, 0 or huge), or a fixed-point
    multiplier and shift, mostly valid, sometimes not."""
    a_zp, b_zp = draw(_ends(cfg.a)), draw(_ends(cfg.w))
    if cfg.mode == "fp32":
        if draw(st.integers(0, 4)) == 0:
            ratio = rng.choice(np.array([np.nan, np.inf, -np.inf, 0.0, 1e-38, 3e38, -0.25], np.float32))
        else:
            ratio = np.float32(2.0 ** rng.uniform(-20, 2))
        return [a_zp, b_zp, int(np.float32(ratio).view(np.int32)), int(rng.integers(-100, 100))]
    mult = int(rng.integers(1 << 30, 1 << 31))
    shift = int(rng.integers(-31, 31)) if draw(st.booleans()) else int(rng.integers(-16, 1))
    if draw(st.integers(0, 9)) == 0:
        mult, shift = draw(st.sampled_from([(-1, 0), (mult, 31), (mult, -32), (0, 0), ((1 << 31) - 1, 30)]))
    return [a_zp, b_zp, mult, shift]


@given(st.data())
def test_vmul(data):
    cfg = data.draw(config())
    s = data.draw(machine(cfg))
    rng = np.random.default_rng(data.draw(st.integers(0, 2**32 - 1)))
    n = data.draw(SHAPES | st.integers(1, 500))
    bn = _period(data.draw, n)
    bufs = [data.draw(st.sampled_from(BUFFERS)) for _ in range(3)]
    prm = _addr(data.draw, "PRM", 4)
    s.buffers["PRM"][prm:prm + 4] = _mul_record(data.draw, rng, cfg)
    ins = Instruction("VMUL", a_buf=bufs[0], a=_addr(data.draw, bufs[0], n), b_buf=bufs[1],
                      b=_addr(data.draw, bufs[1], bn or n), dst_buf=bufs[2], dst=_addr(data.draw, bufs[2], n), n=n,
                      bn=bn, prm=prm)
    check(s, ins)


def _near_ties(rng, count):
    """(ratio, zp, products) where one rounding of p * ratio + zp (a fused multiply-add) rounds
    differently from two float32 roundings, for products p of 8-bit operands."""
    p = np.arange(-65025, 65026)
    found = []
    while len(found) < count:
        ratio, zp = np.float32(2.0 ** rng.uniform(-12, 0)), int(rng.integers(-128, 128))
        twice = mul_fp32(p, 1, ratio, 0, 0, zp, -128, 127)
        once = np.clip(np.rint(fma_f32(p.astype(np.float32), ratio, np.float32(zp))), -128, 127)
        if (twice != once).any():
            found.append((ratio, zp, p[twice != once]))
    return found


@pytest.mark.parametrize("seed", range(3))
def test_vmul_fp32_kernel_rounds_twice_not_fused(seed):
    """Products whose p * ratio + o_zp sits where a fused multiply-add (or a float64 product) would
    round differently: the kernel's float32 multiply, then add, equals the golden bit for bit."""
    for ratio, zp, hits in _near_ties(np.random.default_rng(seed), 3):
        a = np.concatenate([hits - 1, hits, hits + 1])
        s = MachineState.create(16, sizes=SIZES)
        step(s, Instruction("CONFIG", a="s16", w="s16", o="s8", o_zp=zp, clamp_min=-128, clamp_max=127))
        s.buffers["INP"][:a.size] = a
        s.buffers["WGT"][0] = 1
        s.buffers["PRM"][:4] = [0, 0, int(ratio.view(np.int32)), 0]
        ins = Instruction("VMUL", a_buf="INP", a=0, b_buf="WGT", b=0, dst_buf="OUT", dst=0, n=a.size, bn=1, prm=0)
        golden = s.copy()
        step(golden, ins)
        fused = np.clip(np.rint(fma_f32(hits.astype(np.float32), ratio, np.float32(zp))), -128, 127)
        assert (golden.buffers["OUT"][hits.size:2 * hits.size] != fused).all()
        assert_same_state(golden, run_kernel(s, ins))


@given(st.data(), st.sampled_from(["VMAX", "VMIN"]))
def test_vmax_vmin_including_overlaps(data, op):
    cfg = data.draw(config())
    s = data.draw(machine(cfg))
    n = data.draw(SHAPES | st.integers(1, 500))
    buf = data.draw(st.sampled_from(BUFFERS))
    a = _addr(data.draw, buf, n)
    dst = data.draw(st.sampled_from([a, max(0, a - 3), min(SIZES[buf] - n, a + 3)]) | st.just(_addr(data.draw, buf, n)))
    b_buf = data.draw(st.sampled_from(BUFFERS))
    ins = Instruction(op, a_buf=buf, a=a, b_buf=b_buf, b=_addr(data.draw, b_buf, n), dst_buf=buf, dst=dst, n=n)
    check(s, ins)


@given(st.data(), st.sampled_from(["MAXPOOL", "AVGPOOL", "SUMPOOL"]))
def test_pools(data, op):
    cfg = data.draw(config())
    s = data.draw(machine(cfg))
    m, r, c = data.draw(st.integers(1, 20)), data.draw(st.integers(1, 12)), data.draw(SHAPES)
    src_buf = data.draw(st.sampled_from(BUFFERS))
    assume(m * r * c <= SIZES[src_buf] and m * c <= SIZES["ACC"])
    fields = dict(src_buf=src_buf, src=_addr(data.draw, src_buf, m * r * c), m=m, r=r, c=c)
    if op == "SUMPOOL":
        fields.update(acc=_addr(data.draw, "ACC", m * c), accumulate=data.draw(st.integers(0, 1)))
    else:
        dst_buf = data.draw(st.sampled_from(BUFFERS))
        assume(m * c <= SIZES[dst_buf])
        fields.update(dst_buf=dst_buf, dst=_addr(data.draw, dst_buf, m * c))
    if op == "AVGPOOL":
        fields["divisor"] = data.draw(st.sampled_from([1, 2, 4, 6, r, r + 1]) | st.integers(1, 1023))
        fields["even"] = data.draw(st.integers(0, 1))
    check(s, Instruction(op, **fields))


@given(st.data())
def test_shr(data):
    cfg = data.draw(config())
    s = data.draw(machine(cfg))
    n = data.draw(SHAPES | st.integers(1, 500))
    src_buf, dst_buf = data.draw(st.sampled_from(BUFFERS)), data.draw(st.sampled_from(BUFFERS))
    src = _addr(data.draw, src_buf, n)
    dst = data.draw(st.sampled_from([src, src + 2]) if src_buf == dst_buf and src + 2 + n <= SIZES[dst_buf]
                    else st.just(_addr(data.draw, dst_buf, n)))
    check(s, Instruction("SHR", src_buf=src_buf, src=src, dst_buf=dst_buf, dst=dst, n=n,
                         shift=data.draw(st.sampled_from([0, 1, 7, 31, 32, 63]) | st.integers(0, 63)),
                         round=data.draw(st.integers(0, 1))))


@given(st.data())
def test_vlut_including_overlaps(data):
    """Any word indexes the table by its low 8 bits (signed codes too); outputs may overlap."""
    cfg = data.draw(config())
    s = data.draw(machine(cfg))
    n = data.draw(SHAPES | st.integers(1, 500))
    prm = _addr(data.draw, "PRM", 256)
    src_buf, dst_buf = data.draw(st.sampled_from(BUFFERS)), data.draw(st.sampled_from(BUFFERS))
    src = _addr(data.draw, src_buf, n)
    dst = data.draw(st.sampled_from([src, src + 3]) if src_buf == dst_buf and src + 3 + n <= SIZES[dst_buf]
                    else st.just(_addr(data.draw, dst_buf, n)))
    check(s, Instruction("VLUT", src_buf=src_buf, src=src, dst_buf=dst_buf, dst=dst, n=n, prm=prm))


# --------------------------------------------------------------------------- DMA
@given(st.data())
def test_load_and_store(data):
    cfg = data.draw(config())
    s = data.draw(machine(cfg))
    dtype = data.draw(st.sampled_from(MEM_DTYPES))
    bits = int(dtype[1:])
    x, y = data.draw(SHAPES), data.draw(st.integers(1, 12))
    y_stride = data.draw(st.sampled_from([x, x + 1, 0, 3 * x + 5]) | st.integers(0, 200))
    span_bytes = ((y - 1) * y_stride + x) * bits // 8 + 2
    assume(span_bytes < DRAM)
    buf = data.draw(st.sampled_from(BUFFERS))
    assume(x * y <= SIZES[buf])
    dram = data.draw(st.integers(0, DRAM - span_bytes))
    fields = dict(buf=buf, dtype=dtype, dram=dram, sram=_addr(data.draw, buf, x * y), x=x, y=y, y_stride=y_stride)
    check(s, Instruction("LOAD", **fields))
    check(s, Instruction("STORE", **fields))


@given(st.data())
def test_loadwin(data):
    cfg = data.draw(config())
    s = data.draw(machine(cfg))
    in_h, in_w, in_c = data.draw(st.integers(1, 9)), data.draw(st.integers(1, 9)), data.draw(st.integers(1, 20))
    k_h, k_w = data.draw(st.integers(1, 5)), data.draw(st.integers(1, 5))
    win = Instruction("SETWIN", in_h=in_h, in_w=in_w, in_c=in_c, k_h=k_h, k_w=k_w,
                      stride_h=data.draw(st.integers(1, 3)), stride_w=data.draw(st.integers(1, 3)),
                      dil_h=data.draw(st.integers(1, 3)), dil_w=data.draw(st.integers(1, 3)),
                      pad_top=data.draw(st.integers(0, 4)), pad_left=data.draw(st.integers(0, 4)),
                      out_w=data.draw(st.integers(1, 9)), pad_value=data.draw(st.integers(-65536, 65535)),
                      out_h=data.draw(st.integers(0, 3)))
    step(s, win)
    dtype = data.draw(st.sampled_from(MEM_DTYPES))
    c0 = data.draw(st.integers(0, in_c - 1))
    nc = data.draw(st.integers(1, in_c - c0))
    npix = data.draw(st.integers(1, 40))
    buf = data.draw(st.sampled_from(["INP", "ACC", "OUT"]))
    assume(npix * k_h * k_w * nc <= SIZES[buf])
    dram = data.draw(st.integers(0, DRAM - in_h * in_w * in_c * int(dtype[1:]) // 8 - 1))
    check(s, Instruction("LOADWIN", buf=buf, dtype=dtype, dram=dram, sram=_addr(data.draw, buf, npix * k_h * k_w * nc),
                         pix0=data.draw(st.integers(0, 100)), npix=npix, c0=c0, nc=nc))


@given(st.data())
def test_loadwin_whole_pixel_runs(data):
    """Windows of every channel: each kernel row at dilation 1 is one run, a 1 x 1 window that
    reads every pixel in order one run per tile; both must match the golden gather at the edges."""
    cfg = data.draw(config())
    s = data.draw(machine(cfg))
    in_h, in_w, in_c = data.draw(st.integers(1, 9)), data.draw(st.integers(1, 9)), data.draw(st.integers(1, 12))
    pointwise = data.draw(st.booleans())
    k = 1 if pointwise else data.draw(st.integers(1, 7))
    out_h = data.draw(st.sampled_from([0, in_h]) if pointwise else st.integers(0, 3))
    win = Instruction("SETWIN", in_h=in_h, in_w=in_w, in_c=in_c, k_h=k, k_w=data.draw(st.integers(1, 7)) if k > 1 else 1,
                      stride_h=1 if pointwise else data.draw(st.integers(1, 3)),
                      stride_w=1 if pointwise else data.draw(st.integers(1, 3)),
                      dil_h=data.draw(st.integers(1, 2)), dil_w=1,
                      pad_top=0 if pointwise else data.draw(st.integers(0, 4)),
                      pad_left=0 if pointwise else data.draw(st.integers(0, 4)),
                      out_w=in_w if pointwise else data.draw(st.integers(1, 9)),
                      pad_value=data.draw(st.integers(-65536, 65535)), out_h=out_h)
    step(s, win)
    dtype = data.draw(st.sampled_from(MEM_DTYPES))
    npix = data.draw(st.integers(1, 40))
    taps = win.args["k_h"] * win.args["k_w"]
    buf = data.draw(st.sampled_from(["INP", "ACC", "OUT"]))
    images = 4 * in_h * in_w * in_c * int(dtype[1:]) // 8  # pix0 reaches into the fourth image
    assume(npix * taps * in_c <= SIZES[buf] and images < DRAM)
    dram = data.draw(st.integers(0, DRAM - images - 1))
    check(s, Instruction("LOADWIN", buf=buf, dtype=dtype, dram=dram, sram=_addr(data.draw, buf, npix * taps * in_c),
                         pix0=data.draw(st.integers(0, 3 * in_h * in_w)), npix=npix, c0=0, nc=in_c))


# --------------------------------------------------------------------------- LOADW
@given(st.data())
def test_loadw_valid_streams(data):
    cfg = data.draw(config())
    s = data.draw(machine(cfg))
    rng = np.random.default_rng(data.draw(st.integers(0, 2**32 - 1)))
    dtype = data.draw(st.sampled_from(MAC_DTYPES))
    lo, hi = qrange(dtype)
    count = data.draw(SHAPES | st.integers(1, 3000))
    zero = data.draw(st.sampled_from([0, lo, hi]))
    kind = data.draw(st.sampled_from(["sparse", "clustered", "uniform"]))
    if kind == "sparse":
        w = np.where(rng.random(count) < data.draw(st.floats(0, 1)), zero, rng.integers(lo, hi + 1, count))
    elif kind == "clustered":
        w = rng.choice(rng.integers(lo, hi + 1, data.draw(st.integers(1, 16))), count)
    else:
        w = rng.integers(lo, hi + 1, count)
    fmt = data.draw(st.sampled_from(["dense", "bitmask", "rle", "codebook"]))
    if fmt == "dense":
        stream = compression.encode_dense(w, dtype)
    elif fmt == "bitmask":
        stream = compression.encode_bitmask(w, dtype, zero)
    elif fmt == "rle":
        stream = compression.encode_rle(w, dtype, data.draw(st.integers(1, 8)), zero)
    else:
        stream = compression.encode_codebook(w, dtype)
        assume(stream is not None)
    assume(stream.nbytes < DRAM)
    at = data.draw(st.integers(0, DRAM - stream.nbytes))
    s.dram[at:at + stream.nbytes] = np.frombuffer(stream.data, np.uint8)
    ins = Instruction("LOADW", sram=_addr(data.draw, "WGT", count), dram=at, count=count, format=stream.format,
                      dtype=dtype, param=stream.param, zero=stream.zero)
    check(s, ins)
    golden = s.copy()
    step(golden, ins)
    assert golden.buffers["WGT"][ins.sram:ins.sram + count].tolist() == w.tolist()  # exact round trip


@given(st.data())
def test_loadw_corrupt_streams(data):
    """Random bytes as a stream, near the end of DRAM: decoded, overrun or refused identically."""
    cfg = data.draw(config())
    s = data.draw(machine(cfg))
    fmt = data.draw(st.sampled_from(["dense", "bitmask", "rle", "codebook"]))
    dtype = data.draw(st.sampled_from(MAC_DTYPES))
    param = data.draw(st.integers(1, min(8, int(dtype[1:]))))
    count = data.draw(st.integers(1, 400))
    at = data.draw(st.integers(DRAM - 400, DRAM - 1) | st.integers(0, DRAM - 1))
    ins = Instruction("LOADW", sram=_addr(data.draw, "WGT", count), dram=at, count=count, format=fmt, dtype=dtype,
                      param=param, zero=data.draw(st.integers(-5, 5)))
    check(s, ins)


@pytest.mark.parametrize("mode", ["fp32", "fixed_double"])
@pytest.mark.parametrize("shift", [-5, -1, 0, 1, 7])
@pytest.mark.parametrize("b_at, bn", [(200, 0), (100, 0), (103, 0), (101, 3), (300, 3)])
def test_vadd_overlapping_operands(mode, shift, b_at, bn):
    """VADD with a, b and dst in one buffer: dst shifted below, onto and above a (and onto and
    across b, broadcast or not); every element as the golden semantics (which read all first)."""
    rng = np.random.default_rng(abs(shift) * 31 + b_at + bn)
    s = MachineState.create(16, sizes=SIZES)
    step(s, Instruction("CONFIG", a="u8", w="s8", o="u8", mode=mode, o_zp=9, clamp_min=0, clamp_max=255))
    s.buffers["OUT"][:400] = rng.integers(0, 256, 400)
    f = np.array([0.7, 0.45], np.float32).view(np.int32)
    s.buffers["PRM"][:9] = ([3, 7, f[0], 0, f[1], 0, 0, 0, 0] if mode == "fp32" else
                            [3, 7, 1 << 30, 0, 1 << 30, -1, 1 << 30, -1, 20])
    a_at, n = 100, 61
    ins = Instruction("VADD", a_buf="OUT", a=a_at, b_buf="OUT", b=b_at, dst_buf="OUT", dst=a_at + shift, n=n,
                      bn=bn, prm=0)
    golden = s.copy()
    step(golden, ins)
    assert_same_state(golden, run_kernel(s, ins))


@pytest.mark.parametrize("mode", ["fixed_double", "fixed_single"])
def test_vadd_int32_sum_wraps_like_tflite(mode):
    """(1023 << 20) << 1 scaled by ~1.0 twice sums past 2^31: the int32 sum must wrap (as C++ does)."""
    s = MachineState.create(16, sizes=SIZES)
    step(s, Instruction("CONFIG", a="s16", w="s8", o="s16", mode=mode, clamp_min=-32768, clamp_max=32767))
    s.buffers["INP"][:4] = [1023, 1023, -1023, 5]
    s.buffers["OUT"][:4] = [1023, 1000, -1023, 5]
    s.buffers["PRM"][:9] = [0, 0, (1 << 31) - 1, 1, (1 << 31) - 1, 1, 1 << 30, -20, 20]
    ins = Instruction("VADD", a_buf="INP", a=0, b_buf="OUT", b=0, dst_buf="OUT", dst=8, n=4, prm=0)
    golden = s.copy()
    step(golden, ins)
    assert golden.buffers["OUT"][8] < 0  # the wrapped sum: a large positive sum came out negative
    assert_same_state(golden, run_kernel(s, ins))
