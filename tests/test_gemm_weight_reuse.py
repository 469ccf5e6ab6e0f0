"""GEMM's byte path takes the packed weights of the GEMM before it when its row says ``reuse``
(accelsim.chip.hints.PackedWeights): the flag is set exactly when the weight words and their
type are unchanged since, and the values equal the golden semantics whatever happens between."""

from __future__ import annotations

import numpy as np
from hypothesis import given
from hypothesis import strategies as st

import isa
from accelsim.chip import Program, Simulator
from accelsim.chip.rows import ARGS, OP_GEMM
from isa import Instruction as I
from isa.table import BUFFERS

from .sim_programs import SIZES, SMALL_CHIP
from .test_simulator import golden_run

SIM = Simulator(SMALL_CHIP)
REUSE = 3 + ARGS["GEMM"].index("reuse")
TYPES = ("u8", "s8", "u4", "s4")


def _config(a: str, w: str, a_zp: int, w_zp: int) -> I:
    return I("CONFIG", a=a, w=w, o="s8", acc_bits=32, mode="fp32", a_zp=a_zp, w_zp=w_zp, o_zp=0,
             clamp_min=-128, clamp_max=127)


#: what runs between the two GEMMs on the weight words WGT[30 : 30 + size], and whether the second may reuse
BETWEEN = {
    "nothing": lambda size: ([], 1),
    "new activation zero point": lambda size: ([_config("u8", "s8", 7, 0)], None),
    "new weight zero point": lambda size: ([_config("u8", "s8", 0, -3)], None),
    "new weight type": lambda size: ([_config("u8", "u8", 0, 0)], None),
    "load over the last weight": lambda size: (
        [I("LOAD", buf="WGT", dtype="s8", dram=900, sram=29 + size, x=1, y=1, y_stride=0)], 0),
    "load just before the weights": lambda size: (
        [I("LOAD", buf="WGT", dtype="s8", dram=900, sram=22, x=8, y=1, y_stride=0)], 1),
    "load just after the weights": lambda size: (
        [I("LOAD", buf="WGT", dtype="s8", dram=900, sram=30 + size, x=8, y=1, y_stride=0)], 1),
    "vector op into the weights": lambda size: (
        [I("VMAX", a_buf="INP", a=0, b_buf="INP", b=0, dst_buf="WGT", dst=30 + size // 2, n=1)], 0),
    "gemm on other weights": lambda size: ([I("GEMM", inp=0, wgt=300, acc=200, m=3, n=4, k=5, accumulate=0)], 0),
}


@given(between=st.sampled_from(sorted(BETWEEN)), m=st.integers(1, 20), n=st.integers(1, 20), k=st.integers(1, 13),
       first=st.sampled_from([("u8", "s8", 0, 0), ("s8", "s8", -128, 0), ("u8", "u8", 3, 5), ("s4", "u4", 2, 1)]),
       seed=st.integers(0, 2**32 - 1))
def test_second_gemm_reuses_packed_weights_only_when_they_are_unchanged(between, m, n, k, first, seed):
    rng = np.random.default_rng(seed)
    image = rng.integers(0, 256, 2048).astype(np.uint8)
    extra, want = BETWEEN[between](n * k)
    if extra and extra[0].op == "CONFIG":  # packed bytes depend on the weight type alone
        want = int(extra[0].args["w"] == first[1])
    prog = [_config(*first),
            I("LOAD", buf="INP", dtype="u8", dram=0, sram=0, x=m * k, y=1, y_stride=0),
            I("LOAD", buf="WGT", dtype="u8", dram=512, sram=30, x=n * k, y=1, y_stride=0),
            I("GEMM", inp=0, wgt=30, acc=0, m=m, n=n, k=k, accumulate=0),
            *extra,
            I("LOAD", buf="INP", dtype="u8", dram=1024, sram=0, x=m * k, y=1, y_stride=0),
            I("GEMM", inp=0, wgt=30, acc=400, m=m, n=n, k=k, accumulate=1),
            I("HALT")]
    program = Program(isa.encode_program(prog), image)
    rows = SIM.lower(program).rows
    gemms = rows[rows[:, 0] == OP_GEMM]
    assert gemms[0, REUSE] == 0 and gemms[-1, REUSE] == want
    golden = golden_run(prog, image)
    SIM.run(program)
    low = SIM.lower(program)
    for b in BUFFERS:
        assert np.array_equal(SIM.last_mem[low.base[b]:low.base[b] + low.sizes[b]], golden.buffers[b]), b


def test_a_host_step_forgets_the_packed_weights():
    prog = [I("GEMM", inp=0, wgt=0, acc=0, m=2, n=2, k=2, accumulate=0), I("HOST", call=1),
            I("GEMM", inp=0, wgt=0, acc=0, m=2, n=2, k=2, accumulate=0), I("HALT")]
    rows = SIM.lower(Program(isa.encode_program(prog), np.zeros(16, np.uint8))).rows
    assert rows[rows[:, 0] == OP_GEMM][:, REUSE].tolist() == [0, 0]


def test_sizes_fit_the_small_chip():
    assert SIZES["WGT"] >= 430 and SIZES["ACC"] >= 800
