"""The lowered program format: one row of int64 per instruction, read by the Numba loops.

Row layout (``ROW`` columns): ``[op, tokens, unit, a0, a1, ...]``; ``op`` indexes :data:`OPS`,
``tokens`` packs pop_prev=1, pop_next=2, push_prev=4, push_next=8, ``unit`` indexes
isa.table.UNITS, and the arguments of each op are listed in :data:`ARGS`.  Addresses are
absolute word addresses into the flat buffer array (buffer base + address).

Some columns are the lowering's hints to the value loop, not instruction fields (the timing
model ignores them): GEMM's ``reuse`` (its weights are packed already) and ``packed`` (1 + its
slot of kept packed weights, or 0), GEMM's and DWCONV's
``window`` and ``weights`` (1 + the row of a deferred LOADWIN / LOADW whose words are its
activations / weights, or 0), LOADWIN's and LOADW's ``deferred`` (their consumers read those words from
DRAM themselves), LOADW's ``readers`` (1 + where the list of the kept slots of the GEMMs that
read its words starts), GEMM's and DWCONV's ``requant`` (1 + the row of the REQUANT after it that
it may requantize into that REQUANT's destination itself) and REQUANT's ``fused`` (so requantized
by the MAC before it); accelsim.chip.hints says when each is exact.
"""

from __future__ import annotations

from isa.table import BUFFERS

ROW = 16
OPS = ("NOP", "HALT", "CONFIG", "SETWIN", "LOAD", "LOADWIN", "LOADW", "STORE", "GEMM", "DWCONV",
       "REQUANT", "VADD", "VMAX", "VMIN", "MAXPOOL", "AVGPOOL", "SUMPOOL", "SHR", "VLUT", "VMUL", "HOST")
OP = {name: i for i, name in enumerate(OPS)}
ARGS = {
    "CONFIG": ("cfg",), "SETWIN": ("win",),
    "LOAD": ("dram", "dst", "x", "y", "y_stride", "bits", "signed", "word_bits", "buf"),
    "LOADWIN": ("dram", "dst", "pix0", "npix", "c0", "nc", "bits", "signed", "word_bits", "buf", "win", "deferred"),
    "LOADW": ("dst", "dram", "count", "format", "bits", "signed", "param", "zero", "deferred", "readers"),
    "STORE": ("src", "dram", "x", "y", "y_stride", "bits", "buf"),
    "GEMM": ("inp", "wgt", "acc", "m", "n", "k", "accumulate", "cfg", "reuse", "window", "weights",
             "packed", "requant"),
    "DWCONV": ("inp", "wgt", "acc", "m", "r", "c", "accumulate", "cfg", "window", "weights", "requant"),
    "REQUANT": ("src", "dst", "prm", "m", "n", "word_bits", "cfg", "buf", "fused"),
    "VADD": ("a", "b", "dst", "n", "bn", "prm", "word_bits", "cfg"),
    "VMUL": ("a", "b", "dst", "n", "bn", "prm", "word_bits", "cfg"),
    "HOST": ("call",),
    "VMAX": ("a", "b", "dst", "n", "word_bits"), "VMIN": ("a", "b", "dst", "n", "word_bits"),
    "MAXPOOL": ("src", "dst", "m", "r", "c", "word_bits"),
    "AVGPOOL": ("src", "dst", "m", "r", "c", "divisor", "word_bits", "cfg", "even"),
    "SUMPOOL": ("src", "acc", "m", "r", "c", "accumulate", "cfg"),
    "SHR": ("src", "dst", "n", "shift", "round", "word_bits"),
    "VLUT": ("src", "dst", "n", "prm", "word_bits", "dst_buf", "src_buf"),
}
BUFFER_ID = {b: i for i, b in enumerate(BUFFERS)}
WORD_BITS = {"INP": 32, "WGT": 32, "ACC": 64, "OUT": 32, "PRM": 32}

(OP_NOP, OP_HALT, OP_CONFIG, OP_SETWIN, OP_LOAD, OP_LOADWIN, OP_LOADW, OP_STORE, OP_GEMM, OP_DWCONV,
 OP_REQUANT, OP_VADD, OP_VMAX, OP_VMIN, OP_MAXPOOL, OP_AVGPOOL, OP_SUMPOOL, OP_SHR, OP_VLUT,
 OP_VMUL, OP_HOST) = (OP[n] for n in OPS)
