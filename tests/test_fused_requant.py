"""Fused requantization (accelsim.chip.hints.fuse_requant): a byte-path GEMM or DWCONV that
overwrites accumulators of at least 32 bits, followed by an fp32-mode REQUANT of exactly those
words, requantizes its int32 sums into the REQUANT's destination itself when nothing else reads
them before later writes replace them.  The flags are set exactly then, and every buffer word and
DRAM byte equals the golden semantics' whatever follows."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import isa
from accelsim import zoo
from accelsim.chip import Program, Simulator
from accelsim.chip.rows import ARGS, OP
from accelsim.compiler import compile_model
from accelsim.quant import QuantConfig, quantize_model
from isa import Instruction as I
from isa.semantics import MachineState
from isa.table import BUFFERS

from .sim_programs import SIZES, SMALL_CHIP

SIM = Simulator(SMALL_CHIP)
REQUANT_COL = {op: 3 + ARGS[op].index("requant") for op in ("GEMM", "DWCONV")}
FUSED_COL = 3 + ARGS["REQUANT"].index("fused")
WGT_AT, ACC_AT, PRM_AT = 7, 16, 0  # SMALL_CHIP: 2048 INP and WGT words, 512 ACC and OUT words
A_DRAM, W_DRAM, P_DRAM = 0, 8192, 16384
#: what follows the pair, and whether the pair may still be fused
FOLLOW = {"replaced": True, "partly written, then replaced": True, "a vector op reads a sum": False,
          "requantized again": False, "halt": False, "host step": False, "halt, then replaced": False,
          "requant overwrites the activations": True}
DTYPES = ("u8", "s8", "u4", "s4", "s16")


def _zp(rng: np.random.Generator, dtype: str) -> int:
    return int(rng.integers(-3, 4)) if dtype[0] == "s" else int(rng.integers(0, 4))


def _table(rng: np.random.Generator, n: int, mode: str, magnitude: float) -> np.ndarray:
    """A PRM table of n channels: bias, the multiplier (an fp32 scale's bits, or M0) and shift; fp32
    scales bring sums of about ``magnitude`` to 0.1 .. 10 output steps (few clamp)."""
    bias = rng.integers(-3000, 3000, n)
    if mode == "fp32":
        scale = (10.0 ** rng.uniform(-1, 1, n) / magnitude).astype(np.float32)
        return np.concatenate([bias, scale.view(np.int32), np.zeros(n)]).astype(np.int32)
    return np.concatenate([bias, rng.integers(1 << 30, 1 << 31, n), rng.integers(-16, 1, n)]).astype(np.int32)


def _follow(kind: str, mac: I, requant: I, words: int) -> list[I]:
    """The instructions after the pair for ``kind`` (``words``: the size of its ACC block)."""
    again = [I(mac.op, **{**mac.args, "accumulate": 0})]
    if kind == "replaced":
        return again
    if kind == "partly written, then replaced":
        return [I("LOAD", buf="ACC", dtype="s8", dram=A_DRAM, sram=ACC_AT + words - 1, x=1, y=1, y_stride=0), *again]
    if kind == "a vector op reads a sum":
        return [I("VMAX", a_buf="ACC", a=ACC_AT + words - 1, b_buf="OUT", b=0, dst_buf="OUT", dst=500, n=1), *again]
    if kind == "requantized again":
        return [I("REQUANT", **{**requant.args, "dst_buf": "INP", "dst": 0}), *again]
    if kind == "halt":
        return []
    if kind == "halt, then replaced":  # words after HALT are never executed
        return [I("HALT"), *again]
    if kind == "host step":
        return [I("HOST", call=1), *again]
    raise AssertionError(kind)


def _golden(prog: list[I], image: np.ndarray) -> MachineState:
    dram = np.zeros(SMALL_CHIP.dram_bytes(), np.uint8)
    dram[:image.size] = image
    state = MachineState.create(dram, sizes=SIZES)
    state.host = lambda call, d: None
    isa.run(prog, state)
    return state


@given(seed=st.integers(0, 2**32 - 1), mac=st.sampled_from(("GEMM", "DWCONV")), a=st.sampled_from(DTYPES),
       w=st.sampled_from(DTYPES), o=st.sampled_from(("s8", "u8", "s16")), acc_bits=st.sampled_from((16, 32, 48)),
       mode=st.sampled_from(("fp32", "fp32", "fixed_double")), accumulate=st.booleans(),
       follow=st.sampled_from(tuple(FOLLOW)), m=st.integers(1, 9), n=st.integers(1, 40), k=st.integers(1, 40))
def test_fused_requant_equals_the_golden_semantics(seed, mac, a, w, o, acc_bits, mode, accumulate, follow, m, n, k):
    _check(seed, mac, a, w, o, acc_bits, mode, accumulate, follow, m, n, k)


BASE = dict(seed=7, a="u8", w="s8", o="s8", acc_bits=32, mode="fp32", accumulate=False, follow="replaced", m=5, n=19,
            k=13)
CHANGES = [{}, {"a": "s16"}, {"w": "s16"}, {"a": "s4", "w": "u4"}, {"acc_bits": 16}, {"acc_bits": 48},
           {"mode": "fixed_double"}, {"mode": "fixed_single"}, {"accumulate": True}, {"o": "u8"}, {"o": "s16"},
           *({"follow": f} for f in FOLLOW if f != "replaced")]


@pytest.mark.parametrize("mac", ("GEMM", "DWCONV"))
@pytest.mark.parametrize("change", CHANGES, ids=lambda c: ",".join(f"{k}={v}" for k, v in c.items()) or "fusable")
def test_each_condition_of_the_fusion(mac, change):
    """One fusable pair, then each condition broken by itself (or a change that keeps it fusable)."""
    _check(mac=mac, **{**BASE, **change})


def _check(seed, mac, a, w, o, acc_bits, mode, accumulate, follow, m, n, k):
    """The pair (and what follows) drawn from these: the flags as the rules say, the values golden."""
    rng = np.random.default_rng(seed)
    image = rng.integers(0, 256, 1 << 15).astype(np.uint8)
    n = min(n, 480 // m)  # the sums fit the ACC words from ACC_AT, the outputs OUT's first 480
    k = min(k, 9, 2040 // (m * n)) if mac == "DWCONV" else min(k, 2040 // n)  # taps; operands fit INP and WGT
    a_words, w_words = (m * k, n * k) if mac == "GEMM" else (m * k * n, k * n)
    magnitude = np.sqrt(k) * 2.0 ** (int(a[1:]) + int(w[1:]) - 2) + 1500
    image[P_DRAM:P_DRAM + 12 * n] = _table(rng, n, mode, magnitude).view(np.uint8)
    lo, hi = (0, 255) if o == "u8" else ((-128, 127) if o == "s8" else (-32768, 32767))
    config = I("CONFIG", a=a, w=w, o=o, acc_bits=acc_bits, mode=mode, a_zp=_zp(rng, a), w_zp=_zp(rng, w),
               o_zp=int(rng.integers(lo, hi + 1)) // 4, clamp_min=lo + int(rng.integers(0, 9)), clamp_max=hi)
    loads = [I("LOAD", buf="INP", dtype=a, dram=A_DRAM, sram=0, x=a_words, y=1, y_stride=0),
             I("LOAD", buf="WGT", dtype=w, dram=W_DRAM, sram=WGT_AT, x=w_words, y=1, y_stride=0),
             I("LOAD", buf="PRM", dtype="s32", dram=P_DRAM, sram=PRM_AT, x=3 * n, y=1, y_stride=0)]
    if mac == "GEMM":
        op = I("GEMM", inp=0, wgt=WGT_AT, acc=ACC_AT, m=m, n=n, k=k, accumulate=int(accumulate))
    else:
        op = I("DWCONV", inp=0, wgt=WGT_AT, acc=ACC_AT, m=m, r=k, c=n, accumulate=int(accumulate))
    dst_buf = "INP" if follow == "requant overwrites the activations" else "OUT"
    requant = I("REQUANT", src=ACC_AT, dst_buf=dst_buf, dst=0, prm=PRM_AT, m=m, n=n)
    tail = _follow("replaced" if follow == "requant overwrites the activations" else follow, op, requant, m * n)
    prog = [config, *loads, op, requant, *tail, I("HALT")]
    program = Program(isa.encode_program(prog), image)
    rows = SIM.lower(program).rows
    narrow = a != "s16" and w != "s16"
    want = narrow and not accumulate and acc_bits >= 32 and mode == "fp32" and FOLLOW[follow]
    assert rows[4, REQUANT_COL[mac]] == (6 if want else 0) and rows[5, FUSED_COL] == int(want)
    later = rows[6:]
    assert not later[later[:, 0] == OP["REQUANT"], FUSED_COL].any(), "nothing replaces the last sums read"
    golden = _golden(prog, image)
    SIM.run(program, host=lambda call, d: None)
    low = SIM.lower(program)
    np.testing.assert_array_equal(SIM.last_dram, golden.dram)
    for b in BUFFERS:
        assert np.array_equal(SIM.last_mem[low.base[b]:low.base[b] + low.sizes[b]], golden.buffers[b]), b


def test_fused_requant_rounds_ties_clamps_and_wraps_as_requant():
    """Sums of 1 x weight, requantized by hand: ties to even, clamps at both ends (the float clamp
    to [lo - zp, hi - zp] first), a NaN scale (the lower bound), and biases that wrap the sum at 32
    bits (unwrapped, the last two would swap)."""
    n = 8
    weights = np.array([5, 7, -5, 100, -100, 3, 127, -128], np.int8)
    bias = np.array([0, 0, 0, 0, 0, 0, 2**31 - 100, -2**31 + 100], np.int64).astype(np.int32)
    scale = np.array([0.5, 0.5, 0.5, 2.0, 2.0, np.nan, 2.0**-31, 2.0**-31], np.float32)
    image = np.zeros(1 << 15, np.uint8)
    image[A_DRAM] = 1
    image[W_DRAM:W_DRAM + n] = weights.view(np.uint8)
    image[P_DRAM:P_DRAM + 12 * n] = np.concatenate([bias, scale.view(np.int32), np.zeros(n, np.int32)]).view(np.uint8)
    gemm = I("GEMM", inp=0, wgt=WGT_AT, acc=ACC_AT, m=1, n=n, k=1, accumulate=0)
    prog = [I("CONFIG", a="u8", w="s8", o="s8", acc_bits=32, mode="fp32", o_zp=1, clamp_min=-128, clamp_max=127),
            I("LOAD", buf="INP", dtype="u8", dram=A_DRAM, sram=0, x=1, y=1, y_stride=0),
            I("LOAD", buf="WGT", dtype="s8", dram=W_DRAM, sram=WGT_AT, x=n, y=1, y_stride=0),
            I("LOAD", buf="PRM", dtype="s32", dram=P_DRAM, sram=PRM_AT, x=3 * n, y=1, y_stride=0),
            gemm, I("REQUANT", src=ACC_AT, dst_buf="OUT", dst=0, prm=PRM_AT, m=1, n=n), gemm, I("HALT")]
    program = Program(isa.encode_program(prog), image)
    rows = SIM.lower(program).rows
    assert rows[4, REQUANT_COL["GEMM"]] == 6 and rows[5, FUSED_COL] == 1
    SIM.run(program)
    low = SIM.lower(program)
    got = SIM.last_mem[low.base["OUT"]:low.base["OUT"] + n]
    # 2.5 -> 2, 3.5 -> 4, -2.5 -> -2 (+ 1); 200 and -200 clamp to 126 and -129 (+ 1); NaN -> -129 (+ 1);
    # 127 + 2^31 - 100 wraps to -2^31 + 27 -> float32 -2^31 -> -1 (+ 1); -2^31 - 28 wraps to 2^31 - 28 -> 1 (+ 1)
    assert got.tolist() == [3, 5, -1, 127, -128, -128, 0, 2]
    np.testing.assert_array_equal(got, _golden(prog, image).buffers["OUT"][:n])


def test_a_compiled_network_fuses_its_convolutions_requants():
    """In a compiled residual network most GEMM -> REQUANT pairs are fused (not the last one: its
    sums are still in ACC at HALT), and its outputs equal the unfused run's (the same program with
    every hint cleared)."""
    m = zoo.build("residual_odd", fold_bn=False)
    shape = zoo.input_shape(m)
    calib = np.random.default_rng(0).normal(0, 1, (8,) + shape[1:]).astype(np.float32)
    compiled = compile_model(quantize_model(m, calib, QuantConfig(), progress=False), batch=2)
    x = {"input": np.random.default_rng(1).normal(0, 1, (2,) + shape[1:]).astype(np.float32)}
    sim = Simulator(compiled.chip)
    want, _ = compiled.run(x, sim=sim)
    rows = sim.lower(compiled.program).rows
    pairs = (rows[:-1, 0] == OP["GEMM"]) & (rows[1:, 0] == OP["REQUANT"])
    fused = rows[:-1][pairs, REQUANT_COL["GEMM"]] > 0
    assert fused.sum() >= pairs.sum() // 2 > 0 and not fused[-1]
    for op, col in (*REQUANT_COL.items(), ("REQUANT", FUSED_COL)):
        rows[rows[:, 0] == OP[op], col] = 0
    assert sim.lower(compiled.program).rows is rows
    got, _ = compiled.run(x, sim=sim)  # the cached lowering, now without the hints
    for k in want:
        np.testing.assert_array_equal(got[k], want[k])
