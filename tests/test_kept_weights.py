"""Packed weights kept across runs (accelsim.chip.hints.keep_packed, Simulator._kept_store): a
byte-path GEMM whose weights a LOADW decoded from DRAM bytes that nothing in the program (no
instruction, no HOST step, no input tensor) can change packs them on the first run and reads the
packed copy on later ones.  Every run of the same program, with new inputs each time, must equal
the golden semantics' run on those inputs, in every weight format and whatever the program does."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import isa
from accelsim.chip import Program, SimError, Simulator
from accelsim.chip.program import TensorRef
from accelsim.chip.rows import ARGS, OP_GEMM, OP_LOADW
from accelsim.compiler import weights as W
from isa import Instruction as I
from isa import ExecError
from isa.semantics import MachineState
from isa.table import BUFFERS, DTYPES
from kernels.vnni import HAS_VNNI

from .sim_programs import SIZES, SMALL_CHIP

PACKED = 3 + ARGS["GEMM"].index("packed")
READERS = 3 + ARGS["LOADW"].index("readers")
DEFERRED = 3 + ARGS["LOADW"].index("deferred")
WEIGHTS, X_AT, WGT_AT = 2048, 6000, 300  # DRAM bytes of the weight stream and of the input; WGT word


def _stream(fmt: str, values: np.ndarray, dtype: str) -> W.WeightStream:
    if fmt == "codebook":
        return W.encode_codebook(values, dtype)
    if fmt == "rle":
        return W.encode_rle(values, dtype, run_bits=3, zero=int(values[0]))
    if fmt == "bitmask":
        return W.encode_bitmask(values, dtype, zero=int(values[0]))
    return W.encode_dense(values, dtype)


#: what the program does before its loads, between the LOADW and the GEMMs and between the GEMMs,
#: and whether the GEMMs' weights may be kept
CASES = {
    "nothing": ([], [], [], True),
    "input tensor over the stream": ([], [], [], False),  # the test moves the input onto the stream
    "store of the input over the stream first": (
        [I("LOAD", buf="OUT", dtype="u8", dram=X_AT, sram=0, x=3, y=1, y_stride=0),
         I("STORE", buf="OUT", dtype="u8", dram=WEIGHTS, sram=0, x=3, y=1, y_stride=0)], [], [], False),
    "host step first": ([I("HOST", call=1)], [], [], False),
    "load of the input over a weight word": (
        [], [I("LOAD", buf="WGT", dtype="s8", dram=X_AT, sram=WGT_AT + 1, x=1, y=1, y_stride=0)], [], False),
    "store elsewhere": ([I("STORE", buf="OUT", dtype="u8", dram=X_AT + 64, sram=0, x=3, y=1, y_stride=0)], [], [],
                        True),
    "new weight type between the GEMMs": ([], [], ["flip"], True),  # the test writes the CONFIG
}


def _golden(prog: list[I], dram: np.ndarray, host) -> MachineState:
    state = MachineState.create(dram.copy(), sizes=SIZES)
    state.host = host
    isa.run(prog, state)
    return state


@given(case=st.sampled_from(sorted(CASES)), fmt=st.sampled_from(("dense", "bitmask", "rle", "codebook")),
       wtype=st.sampled_from(("s8", "u8", "s4", "u4")), cfg_w=st.sampled_from(("same", "s8", "u4")),
       a=st.sampled_from(("u8", "s8", "u4", "s16")), m=st.integers(1, 9), n=st.integers(1, 20),
       k=st.integers(1, 13), replaced=st.booleans(), seed=st.integers(0, 2**32 - 1))
def test_every_run_on_kept_weights_equals_the_golden_semantics(case, fmt, wtype, cfg_w, a, m, n, k, replaced, seed):
    rng = np.random.default_rng(seed)
    lo, hi = (-(1 << DTYPES[wtype][0] - 1), (1 << DTYPES[wtype][0] - 1)) if wtype[0] == "s" else (0, 1 << DTYPES[wtype][0])
    values = rng.choice(rng.integers(lo, hi, 5), n * k)  # few distinct values: every format applies
    stream = _stream(fmt, values, wtype)
    image = rng.integers(0, 256, 8192).astype(np.uint8)
    image[WEIGHTS:WEIGHTS + stream.nbytes] = np.frombuffer(stream.data, np.uint8)
    before, between, gemms, kept = CASES[case]
    w = wtype if cfg_w == "same" else cfg_w

    def config(w: str) -> I:
        return I("CONFIG", a=a, w=w, o="s8", acc_bits=32, mode="fp32", a_zp=1, w_zp=int(w[0] == "u"), o_zp=0,
                 clamp_min=-128, clamp_max=127)

    flipped = [config(("u" if w[0] == "s" else "s") + w[1:])] if gemms else []
    prog = [config(w),
            *before,
            I("LOAD", buf="INP", dtype="u8", dram=X_AT, sram=0, x=m * k, y=1, y_stride=0),
            I("LOADW", sram=WGT_AT, dram=WEIGHTS, count=n * k, format=fmt, dtype=wtype, param=stream.param,
              zero=stream.zero),
            *between,
            I("GEMM", inp=0, wgt=WGT_AT, acc=0, m=m, n=n, k=k, accumulate=0),
            *flipped,
            I("GEMM", inp=0, wgt=WGT_AT, acc=m * n, m=m, n=n, k=k, accumulate=1),
            *([I("LOADW", sram=WGT_AT, dram=X_AT + 128, count=n * k, dtype="s8")] if replaced else []),
            I("HALT")]
    x_at = WEIGHTS if case == "input tensor over the stream" else X_AT
    program = Program(isa.encode_program(prog), image, {"x": TensorRef(x_at, (m * k,), "u8")})
    sim = Simulator(SMALL_CHIP)
    low = sim.lower(program)
    slots = low.rows[low.rows[:, 0] == OP_GEMM][:, PACKED]
    byte_path = a != "s16"
    if case == "load of the input over a weight word":
        kept = n * k == 1  # the load lands past a one-word operand
    assert (slots > 0).tolist() == [byte_path and (kept or case == "input tensor over the stream")] * 2
    # the second GEMM reuses the first one's packed operand, or packs its own of the other type
    assert (slots[0] == slots[1]) == (not flipped or not slots[0])
    # once the slots are filled, the first LOADW (unless deferred) is skipped when a later one replaces its words
    load = low.rows[low.rows[:, 0] == OP_LOADW][0]
    assert (load[READERS] > 0) == (replaced and slots[0] > 0 and (kept or not between) and not load[DEFERRED])
    for run in range(3):
        x = rng.integers(0, 256, m * k)
        dram = np.zeros(SMALL_CHIP.dram_bytes(), np.uint8)
        dram[:image.size] = image
        dram[x_at:x_at + m * k] = x

        def host(call: int, d: np.ndarray, run=run) -> None:
            d[WEIGHTS:WEIGHTS + 2] = 17 * run + call  # a host step that changes the stream each run

        try:
            golden = _golden(prog, dram, host)
        except ExecError as e:  # a stream the host step or the input made malformed
            with pytest.raises(SimError) as got:
                sim.run(program, {"x": x}, host=host)
            assert got.value.index == e.index
            continue
        sim.run(program, {"x": x}, host=host)
        np.testing.assert_array_equal(sim.last_dram, golden.dram)
        for b in BUFFERS:
            assert np.array_equal(sim.last_mem[low.base[b]:low.base[b] + low.sizes[b]], golden.buffers[b]), (run, b)
    state = sim._kept_store(program, low)[0][:, 4]
    assert state.tolist() == ([] if not slots[0] else [-1] if case == "input tensor over the stream"
                              else [int(HAS_VNNI)] * (1 + bool(flipped)))  # only the VNNI path packs


def test_a_writeable_image_keeps_nothing():
    """An image assigned to a program after it was made (writeable: it may change between runs)."""
    prog = [I("LOAD", buf="INP", dtype="u8", dram=0, sram=0, x=6, y=1, y_stride=0),
            I("LOADW", sram=0, dram=64, count=6, dtype="s8"), I("GEMM", inp=0, wgt=0, acc=0, m=2, n=2, k=3, accumulate=0),
            I("HALT")]
    program = Program(isa.encode_program(prog), np.zeros(128, np.uint8))
    program.dram_image = np.zeros(128, np.uint8)
    program.dram_image[:6] = 1  # activations
    sim = Simulator(SMALL_CHIP)
    for value in (1, 2):
        program.dram_image[64:70] = value
        sim.run(program)
        low = sim.lower(program)
        golden = _golden(prog, np.pad(program.dram_image, (0, SMALL_CHIP.dram_bytes() - 128)), None)
        assert np.array_equal(sim.last_mem[low.base["ACC"]:low.base["ACC"] + 4], golden.buffers["ACC"][:4])
    assert sim._kept_store(program, low)[0][:, 4].tolist() == [-1]


def test_a_new_image_packs_again():
    """The same program on another DRAM image (its weights changed) packs them again."""
    sim = Simulator(SMALL_CHIP)
    prog = [I("LOAD", buf="INP", dtype="u8", dram=0, sram=0, x=6, y=1, y_stride=0),
            I("LOADW", sram=0, dram=64, count=6, dtype="s8"),
            I("GEMM", inp=0, wgt=0, acc=0, m=2, n=2, k=3, accumulate=0), I("HALT")]
    words = isa.encode_program(prog)
    low = None
    for seed in range(3):
        image = np.random.default_rng(seed).integers(0, 256, 128).astype(np.uint8)
        program = Program(words, image)
        sim.run(program)
        low = sim.lower(program)
        golden = _golden(prog, np.pad(image, (0, SMALL_CHIP.dram_bytes() - image.size)), None)
        assert np.array_equal(sim.last_mem[low.base["ACC"]:low.base["ACC"] + 4], golden.buffers["ACC"][:4])
    assert len(low.kept) == 1


def test_batches_share_a_slot_and_stores_are_bounded():
    """GEMMs on the same words of the same LOADW arguments (a batch repeats its layers) share one
    slot; a simulator keeps the stores of at most CACHED programs."""
    one = [I("LOADW", sram=0, dram=64, count=6, dtype="s8"), I("GEMM", inp=0, wgt=0, acc=0, m=2, n=2, k=3, accumulate=0)]
    other = [I("LOADW", sram=8, dram=64, count=6, dtype="s8"), I("GEMM", inp=0, wgt=8, acc=8, m=2, n=2, k=3, accumulate=0)]
    sim = Simulator(SMALL_CHIP)
    low = sim.lower(Program(isa.encode_program(one + other + [I("HALT")]), np.zeros(128, np.uint8)))
    assert len(low.kept) == 1 and low.rows[low.rows[:, 0] == OP_GEMM][:, PACKED].tolist() == [1, 1]
    for seed in range(Simulator.CACHED + 3):
        sim.run(Program(isa.encode_program(one + [I("HALT")]), np.full(128, seed, np.uint8)))
    assert len(sim._kept) == Simulator.CACHED
