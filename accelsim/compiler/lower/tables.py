"""Table maps and copies on the vector unit: QLut (an elementwise map of 8-bit codes, one table or
one per channel) and QConcat (each input copied, or requantized by a table, into its channel
slice), as strided DMA through VLUT / VMAX."""

from __future__ import annotations

import numpy as np

from isa import Instruction
from isa.semantics import LUT_WORDS

from isa.quant import pack_bits

from ...chip import ChipConfig

from ..ir import ModelError, QConcat, QCopy, QLut, QTensor, memory_axis
from ..lut import identity, lut_table
from ..records import LayerRecord
from .builder import ProgramBuilder
from .common import STREAM_TOKENS, bits_of, slot_credits
from .registry import lowers

TABLE_BYTES = 4 * LUT_WORDS


def _piece(pc: dict, k: int, step: int, words: dict) -> tuple[list[Instruction], int]:
    """The instructions of one strided copy (see lut_program) and the new slot counter."""
    cols = pc["cols"]
    if cols > 16383 or 2 * cols > min(words["INP"], words["OUT"]):
        raise ValueError(f"rows of {cols} elements do not fit the chip's buffers")
    rows_per = max(1, min(pc["rows"], 4095, words["INP"] // (2 * cols), words["OUT"] // (2 * cols)))
    slot_words = rows_per * cols
    prm = (k % (words["PRM"] // LUT_WORDS)) * LUT_WORDS  # a table per piece, reused only far apart
    prog = []
    if pc["table"] is not None:
        prog.append(Instruction("LOAD", buf="PRM", dtype="s32", dram=pc["table"], sram=prm, x=LUT_WORDS, y=1,
                                y_stride=0))
    sb, db = bits_of(pc["src_type"]), bits_of(pc["dst_type"])
    for r0 in range(0, pc["rows"], rows_per):
        nr = min(rows_per, pc["rows"] - r0)
        slot = (step % 2) * slot_words
        step += 1
        prog.append(Instruction("LOAD", buf="INP", dtype=pc["src_type"], dram=pc["src"] + r0 * pc["src_pitch"] * sb // 8,
                                sram=slot, x=cols, y=nr, y_stride=pc["src_pitch"], pop_next=1, push_next=1))
        if pc["table"] is not None:
            prog.append(Instruction("VLUT", src_buf="INP", src=slot, dst_buf="OUT", dst=slot, n=nr * cols, prm=prm,
                                    **STREAM_TOKENS))
        else:
            prog.append(Instruction("VMAX", a_buf="INP", a=slot, b_buf="INP", b=slot, dst_buf="OUT", dst=slot,
                                    n=nr * cols, **STREAM_TOKENS))
        prog.append(Instruction("STORE", buf="OUT", dtype=pc["dst_type"], dram=pc["dst"] + r0 * pc["dst_pitch"] * db // 8,
                                sram=slot, x=cols, y=nr, y_stride=pc["dst_pitch"], pop_prev=1, push_prev=1))
    return prog, step


def _column_chunks(pc: dict, words: dict) -> list[dict]:
    """A piece whose rows are too long for the buffers (or a LOAD's 14-bit x) as pieces over
    column ranges: same rows and pitches, offsets moved by the columns before."""
    limit = min(16383, min(words["INP"], words["OUT"]) // 2)
    if pc["cols"] <= limit:
        return [pc]
    limit -= limit % 2  # 4-bit columns start on bytes
    out = []
    sb, db = bits_of(pc["src_type"]), bits_of(pc["dst_type"])
    for c0 in range(0, pc["cols"], limit):
        out.append({**pc, "src": pc["src"] + c0 * sb // 8, "dst": pc["dst"] + c0 * db // 8,
                    "cols": min(limit, pc["cols"] - c0)})
    return out


def lut_program(pieces: list[dict], chip: ChipConfig, *, credits: bool = True) -> list[Instruction]:
    """Strided copies through the vector unit: for each piece, ``rows`` rows of ``cols`` elements go
    from ``src`` (row pitch ``src_pitch``) to ``dst`` (row pitch ``dst_pitch``), mapped by VLUT
    through the 256-word table at DRAM ``table`` or, without a table, copied (VMAX of a row with
    itself).  Used for Concat (a channel slice per input) and elementwise 8-bit maps.

    Piece keys: src, dst (DRAM byte addresses), src_type, dst_type, rows, cols, src_pitch,
    dst_pitch, table (DRAM byte address or None).
    """
    words = chip.buffer_words()
    prog = slot_credits() if credits else []
    step = 0
    for k, pc in enumerate(pieces):
        for part in _column_chunks(pc, words):
            body, step = _piece(part, k, step, words)
            prog += body
    return prog


def _place_table(b: ProgramBuilder, table: np.ndarray) -> int:
    addr = b.alloc(TABLE_BYTES)
    b.place_words(addr, table)
    return addr


def _emit_pieces(node, b: ProgramBuilder, pieces: list[dict], srcs: list[QTensor]) -> None:
    try:
        body = lut_program(pieces, b.chip)
    except ValueError as e:
        raise ModelError(node.name, node.op_type, str(e)) from None
    y = b.tensor(node.output)
    ins = ", ".join(str(t.shape) for t in srcs)
    b.emit(body, LayerRecord(node.name, node.op_type, shape=f"{ins}->{y.shape}", bits=srcs[0].dtype))


def _per_channel(node: QLut, b: ProgramBuilder) -> None:
    """A table per channel (a BatchNormalization): one channel column at a time."""
    x, y = b.tensor(node.input), b.tensor(node.output)
    c = y.shape[1]
    xbits, ybits = bits_of(b.storage(x.name)), bits_of(b.storage(y.name))
    if min(xbits, ybits) < 8:
        raise ModelError(node.name, node.op_type, "per-channel tables need 8-bit elements")
    pieces = []
    for k in range(c):
        pieces.append({"src": b.addr(x.name) + k * xbits // 8, "dst": b.addr(y.name) + k * ybits // 8,
                       "src_type": b.storage(x.name), "dst_type": b.storage(y.name),
                       "rows": int(np.prod(y.shape)) // c, "cols": 1, "src_pitch": c, "dst_pitch": c,
                       "table": _place_table(b, node.table[k])})
    _emit_pieces(node, b, pieces, [x])


def _slices(node, srcs: list[QTensor], tables: list, b: ProgramBuilder, axis: int = 1) -> list[dict]:
    """One piece per input: its block along ``axis`` into the output's, through its table if any.
    In the DRAM order (NHWC for 4-D) a row is every dim from the axis on, the rows all before it."""
    y = b.tensor(node.output)
    rank = len(y.shape)
    k = memory_axis(axis, rank, y.rowmajor)
    dims = y.memory_dims
    rows, total = int(np.prod(dims[:k])), int(np.prod(dims[k:]))
    ybits = bits_of(b.storage(y.name))
    pieces, c0 = [], 0
    for t, table in zip(srcs, tables):
        ci = int(np.prod(t.memory_dims[k:]))
        if ybits == 4 and (c0 % 2 or total % 2):
            raise ModelError(node.name, node.op_type, "4-bit slices must start and end on bytes")
        pieces.append({"src": b.addr(t.name), "dst": b.addr(y.name) + c0 * ybits // 8, "src_type": b.storage(t.name),
                       "dst_type": b.storage(y.name), "rows": rows, "cols": ci, "src_pitch": ci, "dst_pitch": total,
                       "table": None if table is None else _place_table(b, table)})
        c0 += ci
    return pieces


@lowers(QLut)
def lower_lut(node: QLut, b: ProgramBuilder) -> None:
    if node.table.ndim == 2:
        _per_channel(node, b)
        return
    x = b.tensor(node.input)
    if node.tail is not None:
        _emit_pieces(node, b, _flat_runs(node, x, b), [x])
        return
    _emit_pieces(node, b, _slices(node, [x], [node.table], b), [x])


def _flat_runs(node: QLut, x: QTensor, b: ProgramBuilder) -> list[dict]:
    """Two runs per period of the DRAM order (one per image): the elements before the tail's first
    through ``table``, the rest through the tail's (8-bit elements)."""
    y = b.tensor(node.output)
    if min(bits_of(b.storage(x.name)), bits_of(b.storage(y.name))) < 8:
        raise ModelError(node.name, node.op_type, "a table with a tail needs 8-bit elements")
    period, k, tail = node.tail
    rows = int(np.prod(y.shape)) // period
    xb, yb = bits_of(b.storage(x.name)) // 8, bits_of(b.storage(y.name)) // 8
    runs = [(0, k, _place_table(b, node.table)), (k, period, _place_table(b, tail))]
    return [{"src": b.addr(x.name) + e0 * xb, "dst": b.addr(y.name) + e0 * yb, "src_type": b.storage(x.name),
             "dst_type": b.storage(y.name), "rows": rows, "cols": e1 - e0, "src_pitch": period,
             "dst_pitch": period, "table": table} for e0, e1, table in runs if e1 > e0]


def _concat_table(t: QTensor, y: QTensor, clamp):
    """None for an input copied as it is, else its requantizing (and clamping) table."""
    if (t.scale, t.zero_point, t.dtype) == (y.scale, y.zero_point, y.dtype) and clamp is None:
        return None
    table = lut_table(t, y, identity)
    return table if clamp is None else np.clip(table, *clamp)  # a fused Relu / Clip: clamp the table


@lowers(QConcat)
def lower_concat(node: QConcat, b: ProgramBuilder) -> None:
    srcs = [b.tensor(t) for t in node.inputs]
    y = b.tensor(node.output)
    tables = node.tables if node.tables is not None else [_concat_table(t, y, node.clamp) for t in srcs]
    _emit_pieces(node, b, _slices(node, srcs, tables, b, node.axis), srcs)


def _byte(element: int, bits: int, node) -> int:
    if element * bits % 8:
        raise ModelError(node.name, node.op_type, "a 4-bit block that does not start on a byte")
    return element * bits // 8


@lowers(QCopy)
def lower_copy(node: QCopy, b: ProgramBuilder) -> None:
    """Pad / Slice / Split: the fill code in the DRAM image, then the block copies."""
    y = b.tensor(node.output)
    ybits = bits_of(b.storage(y.name))
    if node.fill is not None:
        count = int(np.prod(y.shape))
        b.place(b.addr(y.name), pack_bits(np.full(count, node.fill, np.int64), ybits))
    pieces = []
    for p in node.pieces:
        sbits = bits_of(b.storage(p.src))
        pieces.append({"src": b.addr(p.src) + _byte(p.src_at, sbits, node), "dst": b.addr(y.name) + _byte(p.dst_at, ybits, node),
                       "src_type": b.storage(p.src), "dst_type": b.storage(y.name), "rows": p.rows, "cols": p.cols,
                       "src_pitch": p.src_pitch, "dst_pitch": p.dst_pitch, "table": None})
    _emit_pieces(node, b, pieces, [b.tensor(t) for t in node.inputs])
