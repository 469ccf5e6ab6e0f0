"""Deferred loads (accelsim.chip.hints.defer_loads): a LOADWIN into INP or a dense LOADW whose
words only GEMMs and DWCONVs with operands of at most 8 bits read before later writes replace them
all is skipped, and those instructions gather the operand from DRAM themselves.  The flags are set exactly when that is unobservable, and
every buffer word and DRAM byte equals the golden semantics' whatever the program does between."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import isa
from accelsim.chip import Program, Simulator
from accelsim.chip.rows import ARGS, OP, OP_LOADW, OP_LOADWIN
from isa import Instruction as I
from isa.semantics import MachineState
from isa.table import BUFFERS

from .sim_programs import SIZES, SMALL_CHIP

SIM = Simulator(SMALL_CHIP)
LOADWIN_DEFERRED = 3 + ARGS["LOADWIN"].index("deferred")
LOADW_DEFERRED = 3 + ARGS["LOADW"].index("deferred")
WINDOW_COL = {op: 3 + ARGS[op].index("window") for op in ("GEMM", "DWCONV")}
WEIGHTS_COL = {op: 3 + ARGS[op].index("weights") for op in ("GEMM", "DWCONV")}
SOURCE, WEIGHTS = 0, 4096  # DRAM bytes of the input image and of the dense weight stream
WGT_AT = 1000


def _between(kind: str, a_words: int, w_words: int) -> tuple[list[I], bool, bool]:
    """Instructions between the GEMMs and the loads that replace their operands, and whether the
    LOADWIN and the LOADW may still be deferred."""
    if kind == "nothing":
        return [], True, True
    if kind == "store over the image":
        return [I("STORE", buf="OUT", dtype="u8", dram=SOURCE + 3, sram=0, x=2, y=1, y_stride=0)], False, True
    if kind == "store over the weights":
        return [I("STORE", buf="OUT", dtype="u8", dram=WEIGHTS, sram=0, x=2, y=1, y_stride=0)], True, False
    if kind == "vector op reads a window":
        return [I("VMAX", a_buf="INP", a=a_words - 1, b_buf="OUT", b=0, dst_buf="OUT", dst=8, n=1)], False, True
    if kind == "vector op reads a weight":
        return [I("VMAX", a_buf="WGT", a=WGT_AT, b_buf="OUT", b=0, dst_buf="OUT", dst=8, n=1)], True, False
    if kind == "partial overwrites first":  # the later full loads still replace everything
        return [I("LOAD", buf="INP", dtype="s8", dram=100, sram=0, x=1, y=1, y_stride=0),
                I("LOAD", buf="WGT", dtype="s8", dram=100, sram=WGT_AT + w_words - 1, x=1, y=1, y_stride=0)], True, True
    if kind == "host step":
        return [I("HOST", call=1)], False, False
    raise AssertionError(kind)


def _zp(rng: np.random.Generator, dtype: str) -> int:
    return int(rng.integers(-3, 4)) if dtype[0] == "s" else int(rng.integers(0, 4))


def _host(call: int, dram: np.ndarray) -> None:
    dram[10:12] = 9  # inside the image the LOADWIN reads


def _golden(prog: list[I], image: np.ndarray) -> MachineState:
    dram = np.zeros(SMALL_CHIP.dram_bytes(), np.uint8)
    dram[:image.size] = image
    state = MachineState.create(dram, sizes=SIZES)
    state.host = _host
    isa.run(prog, state)
    return state


KINDS = ("nothing", "store over the image", "store over the weights", "vector op reads a window",
         "vector op reads a weight", "partial overwrites first", "host step")
NARROW = ("u8", "s8", "u4", "s4")


@given(kind=st.sampled_from(KINDS), seed=st.integers(0, 2**32 - 1),
       a=st.sampled_from(NARROW), w=st.sampled_from(NARROW), src=st.sampled_from(("u8", "s8", "u4", "s16", "u16")),
       wsrc=st.sampled_from(NARROW), k_h=st.integers(1, 3), k_w=st.integers(1, 3), in_c=st.integers(1, 5),
       pad=st.integers(0, 1), stride=st.integers(1, 2), n=st.integers(1, 20), replaced=st.booleans(),
       mac=st.sampled_from(("GEMM", "DWCONV")), accumulate=st.booleans(), acc_bits=st.sampled_from((12, 32, 48)))
def test_deferred_loads_equal_the_golden_semantics(kind, seed, a, w, src, wsrc, k_h, k_w, in_c, pad, stride, n,
                                                   replaced, mac, accumulate, acc_bits):
    rng = np.random.default_rng(seed)
    image = rng.integers(0, 256, 8192).astype(np.uint8)
    in_h = in_w = 5
    out_w = (in_w + 2 * pad - k_w) // stride + 1
    npix = out_w * ((in_h + 2 * pad - k_h) // stride + 1)
    k = k_h * k_w * in_c
    n = in_c if mac == "DWCONV" else min(n, 1024 // (2 * npix))  # both results fit the 1024-word ACC
    count = k_h * k_w * in_c if mac == "DWCONV" else n * k
    window = I("SETWIN", in_h=in_h, in_w=in_w, in_c=in_c, k_h=k_h, k_w=k_w, stride_h=stride, stride_w=stride,
               dil_h=1, dil_w=1, pad_top=pad, pad_left=pad, out_w=out_w, pad_value=int(rng.integers(-9, 9)), out_h=0)
    loadwin = I("LOADWIN", buf="INP", dtype=src, dram=SOURCE, sram=0, pix0=0, npix=npix, c0=0, nc=in_c)
    loadw = I("LOADW", sram=WGT_AT, dram=WEIGHTS, count=count, format="dense", dtype=wsrc)
    config = I("CONFIG", a=a, w=w, o="s8", acc_bits=acc_bits, mode="fp32", a_zp=_zp(rng, a), w_zp=_zp(rng, w), o_zp=0,
               clamp_min=-128, clamp_max=127)
    if mac == "GEMM":
        gemms = [I("GEMM", inp=0, wgt=WGT_AT, acc=acc, m=npix, n=n, k=k, accumulate=0) for acc in (0, npix * n)]
    else:
        gemms = [I("DWCONV", inp=0, wgt=WGT_AT, acc=acc, m=npix, r=k_h * k_w, c=in_c, accumulate=int(accumulate))
                 for acc in (0, npix * in_c)]
    extra, win_ok, w_ok = _between(kind, npix * k, count)
    replace = [I("LOADWIN", buf="INP", dtype="u8", dram=SOURCE + 7, sram=0, pix0=1, npix=npix, c0=0, nc=in_c),
               I("LOADW", sram=WGT_AT, dram=WEIGHTS + 64, count=count, format="dense", dtype="s8")]
    prog = [config, window, loadwin, loadw, *gemms, *extra, *(replace if replaced else []), I("HALT")]
    program = Program(isa.encode_program(prog), image)
    rows = SIM.lower(program).rows
    lw, ld = rows[rows[:, 0] == OP_LOADWIN][0], rows[rows[:, 0] == OP_LOADW][0]
    partial = kind == "partial overwrites first"  # a one-word "partial" write replaces a one-word block
    assert lw[LOADWIN_DEFERRED] == int(win_ok and (replaced or (partial and npix * k == 1))), "LOADWIN"
    assert ld[LOADW_DEFERRED] == int(w_ok and (replaced or (partial and count == 1))), "LOADW"
    g = rows[rows[:, 0] == OP[mac]]
    assert (g[:, WINDOW_COL[mac]] > 0).tolist() == [bool(lw[LOADWIN_DEFERRED])] * 2
    assert (g[:, WEIGHTS_COL[mac]] > 0).tolist() == [bool(ld[LOADW_DEFERRED])] * 2
    golden = _golden(prog, image)
    SIM.run(program, host=_host)
    low = SIM.lower(program)
    np.testing.assert_array_equal(SIM.last_dram, golden.dram)
    for b in BUFFERS:
        assert np.array_equal(SIM.last_mem[low.base[b]:low.base[b] + low.sizes[b]], golden.buffers[b]), b


def test_wide_operands_and_other_buffers_are_not_deferred():
    """A 16-bit CONFIG (not the byte path) and a LOADWIN into another buffer keep their loads."""
    win = I("SETWIN", in_h=2, in_w=2, in_c=2, k_h=1, k_w=1, out_w=2, out_h=0)
    wide = [I("CONFIG", a="s16", w="s8", o="s8", acc_bits=32, mode="fp32", clamp_min=-128, clamp_max=127), win,
            I("LOADWIN", buf="INP", dtype="u8", dram=0, sram=0, pix0=0, npix=4, c0=0, nc=2),
            I("GEMM", inp=0, wgt=0, acc=0, m=4, n=1, k=2, accumulate=0),
            I("LOADWIN", buf="INP", dtype="u8", dram=0, sram=0, pix0=0, npix=4, c0=0, nc=2), I("HALT")]
    other = [win, I("LOADWIN", buf="OUT", dtype="u8", dram=0, sram=0, pix0=0, npix=4, c0=0, nc=2),
             I("LOADWIN", buf="OUT", dtype="u8", dram=0, sram=0, pix0=0, npix=4, c0=0, nc=2), I("HALT")]
    for prog in (wide, other):
        rows = SIM.lower(Program(isa.encode_program(prog), np.zeros(64, np.uint8))).rows
        assert not rows[rows[:, 0] == OP_LOADWIN][:, LOADWIN_DEFERRED].any()


@pytest.mark.parametrize("a", NARROW)
@pytest.mark.parametrize("acc_bits", (12, 16, 32))
@pytest.mark.parametrize("accumulate", (0, 1))
@pytest.mark.parametrize("k_h, k_w, in_h, in_w, in_c, pad", [(3, 3, 1, 2, 19, 1), (2, 2, 2, 3, 23, 0),
                                                               (1, 5, 1, 5, 17, 0)])
def test_deferred_dwconv_byte_path_wraps_and_sums_every_tap(a, acc_bits, accumulate, k_h, k_w, in_h, in_w, in_c,
                                                            pad):
    """The byte path's DWCONV (int32 lanes, taps three at a time, the sum stored unwrapped when the
    accumulator has at least 32 bits and nothing accumulates) on windows of many channels: full
    triples and one or two taps left, pad taps, narrow accumulators that wrap, and accumulating."""
    rng = np.random.default_rng(acc_bits * 7 + accumulate + in_c)
    image = rng.integers(0, 256, 8192).astype(np.uint8)
    out_h, out_w = in_h + 2 * pad - k_h + 1, in_w + 2 * pad - k_w + 1
    npix, r = out_h * out_w, k_h * k_w
    window = I("SETWIN", in_h=in_h, in_w=in_w, in_c=in_c, k_h=k_h, k_w=k_w, stride_h=1, stride_w=1, dil_h=1,
               dil_w=1, pad_top=pad, pad_left=pad, out_w=out_w, pad_value=-7, out_h=0)
    config = I("CONFIG", a=a, w="s8", o="s8", acc_bits=acc_bits, mode="fp32", a_zp=_zp(rng, a), w_zp=1, o_zp=0,
               clamp_min=-128, clamp_max=127)
    prog = [config, window,
            I("LOADWIN", buf="INP", dtype="s8", dram=SOURCE, sram=0, pix0=0, npix=npix, c0=0, nc=in_c),
            I("LOADW", sram=WGT_AT, dram=WEIGHTS, count=r * in_c, format="dense", dtype="s8"),
            *[I("DWCONV", inp=0, wgt=WGT_AT, acc=acc, m=npix, r=r, c=in_c, accumulate=accumulate)
              for acc in (0, 0, npix * in_c)],
            I("LOADWIN", buf="INP", dtype="u8", dram=SOURCE + 7, sram=0, pix0=0, npix=npix, c0=0, nc=in_c),
            I("LOADW", sram=WGT_AT, dram=WEIGHTS + 64, count=r * in_c, format="dense", dtype="s8"), I("HALT")]
    program = Program(isa.encode_program(prog), image)
    rows = SIM.lower(program).rows
    assert (rows[rows[:, 0] == OP["DWCONV"]][:, WINDOW_COL["DWCONV"]] > 0).all()
    golden = _golden(prog, image)
    SIM.run(program, host=_host)
    low = SIM.lower(program)
    acc = golden.buffers["ACC"][:2 * npix * in_c]
    if acc_bits == 12:
        assert np.abs(acc).max() >= 1024, "the case should drive the accumulators near their wrap"
    for b in BUFFERS:
        assert np.array_equal(SIM.last_mem[low.base[b]:low.base[b] + low.sizes[b]], golden.buffers[b]), b
