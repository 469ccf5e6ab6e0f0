"""The timing model, instruction by instruction, with cycle counts worked by hand from
docs/chip.md (nothing here calls the cost code to get an expected value).

The chip below has small, distinct parameters so that every term shows: a 4 x 3 array, DRAM
latency 7 and 5 bytes per cycle, decompressors of 11 / 6 / 3 / 9 weights per cycle (dense,
bitmask, rle, codebook), requant 4 lanes + 3 pipeline cycles, vector unit 5 lanes + 2.
"""

from __future__ import annotations

import numpy as np
import pytest

import isa
from accelsim.chip import ChipConfig, Program, Simulator
from isa import Instruction as I
from isa.quant import pack_bits

T = ChipConfig().replace(array={"rows": 4, "cols": 3}, dram={"size_mib": 1, "latency": 7, "bandwidth": 5},
                         decompressor={"dense": 11, "bitmask": 6, "rle": 3, "codebook": 9},
                         requant={"lanes": 4, "pipeline": 3}, vector={"lanes": 5, "pipeline": 2})


def run(prog, chip=T, image=None, values=True):
    program = Program(isa.encode_program(prog + [I("HALT")]), np.zeros(0, np.uint8) if image is None else image)
    return Simulator(chip).run(program, values=values)[1]


def cfg(w_bits=8, a_bits=8):
    acc = 48 if max(w_bits, a_bits) > 8 else 32
    return I("CONFIG", a=f"u{a_bits}", w=f"s{w_bits}", o="u8", acc_bits=acc, clamp_min=0, clamp_max=255)


def compute_cost(ins, chip=T, w_bits=8, a_bits=8) -> int:
    """Busy cycles of one compute-unit instruction (CONFIG and HALT take one cycle each)."""
    return run([cfg(w_bits, a_bits), ins], chip, values=False).units["compute"]["busy"] - 2


# ------------------------------------------------------------------------------------------ DMA
@pytest.mark.parametrize("ins, cycles, nbytes", [
    (I("LOAD", buf="INP", dtype="u8", dram=0, sram=0, x=10, y=3, y_stride=10), 7 + 6, 30),   # 30 B / 5 = 6
    (I("LOAD", buf="INP", dtype="s4", dram=0, sram=0, x=9, y=1, y_stride=0), 7 + 1, 5),      # 4.5 B -> 5
    (I("LOAD", buf="WGT", dtype="s16", dram=0, sram=0, x=5, y=2, y_stride=5), 7 + 4, 20),
    (I("LOAD", buf="INP", dtype="u8", dram=0, sram=0, x=4, y=3, y_stride=10), 7 + 3, 12),   # only the rows move
])
def test_load_latency_plus_bytes_over_bandwidth(ins, cycles, nbytes):
    rep = run([ins])
    assert rep.units["load"]["busy"] == cycles and rep.cycles == cycles
    assert sum(rep.dram_read_bytes.values()) == nbytes


def test_store():
    rep = run([I("STORE", buf="OUT", dtype="u8", dram=0, sram=0, x=7, y=2, y_stride=7)])  # 14 B: 7 + 3
    assert rep.units["store"]["busy"] == 10 and rep.dram_write_bytes["output"] == 14


def _rle_stream() -> tuple[bytes, int]:
    """20 zeros, 5, 3 zeros, -1 as (run: 4 bits, value: s8) entries: (15, 0) (4, 5) (3, -1)."""
    entries = [15 | (0 << 4), 4 | (5 << 4), 3 | ((-1 & 0xFF) << 4)]
    return pack_bits(entries, 12).tobytes(), 25  # 36 bits -> 5 bytes


def _bitmask_stream() -> tuple[bytes, int]:
    mask = np.zeros(64, np.int64)
    mask[[0, 9, 30, 63]] = 1
    return pack_bits(mask, 1).tobytes() + pack_bits([3, -4, 5, -6], 8).tobytes(), 64  # 8 + 4 bytes


def _codebook_stream() -> tuple[bytes, int]:
    idx = np.arange(30) % 4
    return pack_bits([-3, 0, 2, 7], 8).tobytes() + pack_bits(idx, 2).tobytes(), 30  # 4 + 8 bytes


@pytest.mark.parametrize("fmt, dtype, param, stream, cycles, nbytes", [
    ("dense", "s8", 1, (bytes(40), 40), 7 + 8, 40),                    # 40 B / 5 = 8 > 40 / 11
    ("dense", "s4", 1, (bytes(60), 120), 7 + 12, 60),                  # 60 B / 5 = 12 > 120 / 11
    ("bitmask", "s8", 1, _bitmask_stream(), 7 + 11, 12),               # 64 / 6 = 11 > 12 B / 5
    ("rle", "s8", 4, _rle_stream(), 7 + 9, 5),                         # 25 / 3 = 9 > 5 B / 5
    ("codebook", "s8", 2, _codebook_stream(), 7 + 4, 12),              # 30 / 9 = 4 > 12 B / 5
])
def test_loadw_bytes_or_decompressor_whichever_is_slower(fmt, dtype, param, stream, cycles, nbytes):
    data, count = stream
    image = np.frombuffer(data, np.uint8)
    rep = run([I("LOADW", sram=0, dram=0, count=count, format=fmt, dtype=dtype, param=param)], image=image)
    assert rep.units["load"]["busy"] == cycles
    assert rep.dram_read_bytes["weight"] == nbytes and rep.weights_fetched == count


@pytest.mark.parametrize("setwin, loadwin, cycles, nbytes", [
    # 3x3 pad 1 over 5 x 6 x 4 u8, first output row: box rows 0..1 x cols 0..5 = 12 px x 4 = 48 B;
    # gathered 6 px x 9 x 4 = 216 elements: 7 + max(48/5 = 10, 216/5 = 44)
    (dict(k_h=3, k_w=3, pad_top=1, pad_left=1), dict(dtype="u8", pix0=0, npix=6), 7 + 44, 48),
    # output rows 0..1 (pixels 4..7): box rows 0..2 x all 6 columns = 18 px x 4 = 72 B; 144 elements
    (dict(k_h=3, k_w=3, pad_top=1, pad_left=1), dict(dtype="u8", pix0=4, npix=4), 7 + 29, 72),
    # 1x1 windows of u16: box 6 px x 4 x 2 B = 48 B (10 cycles) > 24 elements (5)
    (dict(k_h=1, k_w=1), dict(dtype="u16", pix0=0, npix=6), 7 + 10, 48),
])
def test_loadwin_bounding_box_once(setwin, loadwin, cycles, nbytes):
    rep = run([I("SETWIN", in_h=5, in_w=6, in_c=4, out_w=6, **setwin),
               I("LOADWIN", buf="INP", dram=0, sram=0, c0=0, nc=4, **loadwin)])
    assert rep.units["load"]["busy"] == 1 + cycles  # SETWIN is a load-unit instruction of 1 cycle
    assert rep.dram_read_bytes["input"] == nbytes


# ------------------------------------------------------------------------------------------ MAC array
# m = 5, n = 4, k = 20 on 4 rows x 3 columns.  WS: folds ceil(k / 4 num) ceil(n / 3), stream m den,
# fill 2*4 + 3 - 2 = 9; OS: folds ceil(m / 4) ceil(n / 3) = 4, stream ceil(k den / num), fill 5;
# IS: folds ceil(k / 4 num) ceil(m / 3), stream n den, fill 9.  overlap: folds x stream + fill;
# without: folds x (stream + fill).  (w, a) bits -> products per PE per cycle num / den.
GEMM_CASES = [
    ("weight_stationary", (8, 8), 10 * 5 + 9, 10 * 14),
    ("weight_stationary", (4, 4), 4 * 5 + 9, 4 * 14),      # num 4: ceil(20 / 16) = 2 K folds
    ("weight_stationary", (8, 4), 6 * 5 + 9, 6 * 14),      # num 2: ceil(20 / 8) = 3
    ("weight_stationary", (4, 8), 6 * 5 + 9, 6 * 14),
    ("weight_stationary", (16, 8), 10 * 10 + 9, 10 * 19),  # den 2: stream 10
    ("weight_stationary", (8, 16), 10 * 10 + 9, 10 * 19),
    ("weight_stationary", (16, 16), 10 * 20 + 9, 10 * 29),  # den 4
    ("weight_stationary", (16, 4), 10 * 5 + 9, 10 * 14),   # 2 x 1/2 = one product per cycle, as 8x8
    ("output_stationary", (8, 8), 4 * 20 + 5, 4 * 25),
    ("output_stationary", (4, 4), 4 * 5 + 5, 4 * 10),
    ("output_stationary", (8, 4), 4 * 10 + 5, 4 * 15),
    ("output_stationary", (16, 8), 4 * 40 + 5, 4 * 45),
    ("output_stationary", (16, 16), 4 * 80 + 5, 4 * 85),
    ("input_stationary", (8, 8), 10 * 4 + 9, 10 * 13),
    ("input_stationary", (4, 4), 4 * 4 + 9, 4 * 13),
    ("input_stationary", (16, 16), 10 * 16 + 9, 10 * 25),
]


@pytest.mark.parametrize("dataflow, bits, overlapped, serial", GEMM_CASES)
def test_gemm_folds_by_dataflow_precision_and_overlap(dataflow, bits, overlapped, serial):
    gemm = I("GEMM", inp=0, wgt=0, acc=0, m=5, n=4, k=20)
    for overlap, cycles in ((True, overlapped), (False, serial)):
        chip = T.replace(array={"dataflow": dataflow, "fold_overlap": overlap})
        assert compute_cost(gemm, chip, *bits) == cycles, (overlap, cycles)


@pytest.mark.parametrize("bits, cycles", [
    ((8, 8), 3 * (5 * 3) + 7),     # ceil(7 / 3) column groups x (m x ceil(9 / 4)) + R + C
    ((4, 4), 3 * (5 * 1) + 7),     # num 4: ceil(9 / 16) = 1
    ((16, 8), 3 * (5 * 5) + 7),    # den 2: ceil(18 / 4) = 5
    ((16, 16), 3 * (5 * 9) + 7),   # den 4: ceil(36 / 4) = 9
])
def test_dwconv(bits, cycles):
    assert compute_cost(I("DWCONV", inp=0, wgt=0, acc=0, m=5, r=9, c=7), T, *bits) == cycles


def test_macs_and_array_busy():
    rep = run([cfg(4, 4), I("GEMM", inp=0, wgt=0, acc=0, m=5, n=4, k=20)], values=False)
    assert rep.macs["4x4"] == 400 and rep.array_busy_cycles == 29


# ------------------------------------------------------------------------------------------ requant, vector
@pytest.mark.parametrize("ins, cycles", [
    (I("REQUANT", src=0, dst_buf="OUT", dst=0, prm=0, m=5, n=7), 9 + 3),  # 35 outputs / 4 lanes + 3
    (I("VADD", a_buf="INP", a=0, b_buf="WGT", b=0, dst_buf="OUT", dst=0, n=23, prm=0), 5 + 2),
    (I("VADD", a_buf="INP", a=0, b_buf="WGT", b=0, dst_buf="OUT", dst=0, n=23, bn=4, prm=0), 5 + 2),
    (I("VMUL", a_buf="INP", a=0, b_buf="WGT", b=0, dst_buf="OUT", dst=0, n=23, prm=0), 5 + 2),    # like VADD
    (I("VMUL", a_buf="INP", a=0, b_buf="WGT", b=0, dst_buf="OUT", dst=0, n=23, bn=1, prm=0), 5 + 2),
    (I("VMAX", a_buf="INP", a=0, b_buf="WGT", b=0, dst_buf="OUT", dst=0, n=23), 5 + 2),
    (I("VMIN", a_buf="INP", a=0, b_buf="WGT", b=0, dst_buf="OUT", dst=0, n=23), 5 + 2),
    (I("SHR", src_buf="ACC", src=0, dst_buf="OUT", dst=0, n=23, shift=3), 5 + 2),
    (I("VLUT", src_buf="INP", src=0, dst_buf="OUT", dst=0, n=23, prm=0), 5 + 2),
    (I("MAXPOOL", src_buf="INP", src=0, dst_buf="OUT", dst=0, m=3, r=4, c=5), 12 + 2),  # 60 elements / 5
    (I("AVGPOOL", src_buf="INP", src=0, dst_buf="OUT", dst=0, m=3, r=4, c=5, divisor=4), 12 + 2),
    (I("SUMPOOL", src_buf="INP", src=0, acc=0, m=3, r=4, c=5), 12 + 2),
    (I("NOP"), 1),
])
def test_requant_and_vector_unit(ins, cycles):
    assert compute_cost(ins) == cycles


# ------------------------------------------------------------------------------------------ tokens
LOAD = dict(buf="INP", dtype="u8", dram=0, sram=0, x=30, y=1, y_stride=0)  # 7 + 6 = 13 cycles
GEMM = dict(inp=0, wgt=0, acc=0, m=5, n=4, k=20)                           # 59 cycles (WS, overlap)


def _pipeline(slots: int):
    return ([cfg()] + [I("NOP", unit="compute", push_prev=1)] * slots
            + [x for _ in range(3) for x in (I("LOAD", **LOAD, pop_next=1, push_next=1),
                                                 I("GEMM", **GEMM, pop_prev=1, push_prev=1))])


def test_double_buffering_overlaps_loads_with_compute():
    # compute: CONFIG 0-1, credit NOPs 1-2, 2-3.  load: LOAD1 takes credit 1 (at 2): 2-15; LOAD2
    # credit 2 (at 3): 15-28; LOAD3 waits for GEMM1's credit.  GEMM1 waits for LOAD1: 15-74 (pushes
    # a credit at 74); GEMM2 74-133; LOAD3 74-87; GEMM3 133-192; HALT 192-193.
    rep = run(_pipeline(2), values=False)
    assert rep.cycles == 193
    assert rep.units["load"]["busy"] == 39 and rep.units["load"]["stall"] == 2 + 0 + (74 - 28)
    assert rep.units["compute"]["busy"] == 3 + 3 * 59 + 1 and rep.units["compute"]["stall"] == 15 - 3


def test_single_buffering_serializes():
    # one credit: LOAD1 2-15, GEMM1 15-74, LOAD2 74-87, GEMM2 87-146, LOAD3 146-159, GEMM3 159-218, HALT
    rep = run(_pipeline(1), values=False)
    assert rep.cycles == 219


def test_segments_add_up_to_the_makespan():
    """Per-layer segments: the cycles from the end of the previous segment to the end of this one."""
    prog = _pipeline(2) + [I("HALT")]
    program = Program(isa.encode_program(prog))
    seg = np.array([0] * 4 + [1] + [2] * 4 + [3], np.int64)  # CONFIG..LOAD1 | GEMM1 | LOAD2..GEMM3 | HALT
    _, rep = Simulator(T).run(program, values=False, segments=seg)
    assert [s.cycles for s in rep.segments] == [15, 74 - 15, 192 - 74, 1] and rep.cycles == 193
