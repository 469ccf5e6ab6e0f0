"""Validate a program against a chip and lower it to the integer rows the Numba loops run.

The walk follows program order, tracking the CONFIG and SETWIN registers as each unit will see
them (units execute in order, so their register state is known statically).  Every buffer and
DRAM span an instruction reads or writes -- taken from the instruction table (isa.spans), not
written here op by op -- every operand width the chip lacks and every accumulator wider than it
has is refused with a :class:`SimError` naming the instruction, before any kernel touches
memory.  The row format is accelsim.chip.rows; one small builder per op makes its arguments.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from typing import Callable, NoReturn

import numpy as np

from isa import format_instruction
from isa.encoding import Instruction, decode_program
from isa.errors import DecodeError
from isa.semantics import RESET_CONFIG
from isa.spans import Block, blocks, outside, state_fault
from isa.table import BUFFERS, BY_MNEMONIC, DTYPES, UNITS, WEIGHT_FORMATS
from kernels.state import WIN_SIZE, config_register, window_register

from .config import ChipConfig
from .errors import SimError
from .execute import value_loop
from .hints import KEPT_COLUMNS, PackedWeights, defer_loads, fuse_requant, keep_packed, kept_readers
from .rows import BUFFER_ID, OP, ROW, WORD_BITS


@dataclass
class Lowered:
    """The lowered program: rows, register tables, buffer layout and the halting point."""

    rows: np.ndarray          # (n, ROW) int64, only instructions up to and including HALT
    cfgs: np.ndarray          # (k, CFG_SIZE) int64: every CONFIG (index 0 = reset values)
    wins: np.ndarray          # (j, WIN_SIZE) int64: every SETWIN
    base: dict[str, int]      # buffer -> first word in the flat array
    sizes: dict[str, int]     # buffer -> words
    instructions: list[Instruction]
    dram_end: int = 0         # one past the last DRAM byte the program reads or writes
    dram_writes: tuple[tuple[int, int], ...] = ()  # the DRAM byte ranges its instructions may write
    has_host: bool = False    # a HOST step may write any DRAM byte
    kept: np.ndarray = field(default_factory=lambda: np.zeros((0, len(KEPT_COLUMNS)), np.int64))
    # the slots of packed weights kept across runs (accelsim.chip.hints.keep_packed)
    readers: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))  # hints.kept_readers

    @property
    def total_words(self) -> int:
        return sum(self.sizes.values())

    @cached_property
    def loop(self):
        """The smallest value loop that runs every instruction type and CONFIG of the program (chosen once)."""
        return value_loop(self.rows, self.cfgs)


_WIN_FIELDS = tuple(f.name for f in BY_MNEMONIC["SETWIN"].fields)  # window_register's order


@dataclass
class _Walk:
    """What the walk knows: the chip's limits, the buffer layout and the registers so far."""

    sizes: dict[str, int]
    base: dict[str, int]
    supported: set[int]
    max_acc: int
    dram_size: int
    cfgs: list = field(default_factory=list)
    wins: list = field(default_factory=list)
    index: int = 0
    text: str = ""
    dram_end: int = 0  # one past the last DRAM byte any instruction reads or writes
    packed: PackedWeights = field(default_factory=PackedWeights)

    def fail(self, reason: str) -> NoReturn:
        raise SimError(self.index, self.text, reason)

    def check_spans(self, ins: Instruction) -> list[Block]:
        """Every block the instruction reads or writes (isa.spans) lies inside this chip; returns them."""
        window = dict(zip(_WIN_FIELDS, (int(x) for x in self.wins[-1]))) if self.wins else None
        msg = state_fault(ins, window)
        if msg:
            self.fail(msg)
        for blk in blocks(ins, window):
            if blk.buf == "DRAM" and blk.end > self.dram_end:
                self.dram_end = blk.end
        b = outside(ins, window, self.sizes, self.dram_size)
        if b is None:
            return blocks(ins, window)
        if b.buf == "DRAM":
            self.fail(f"DRAM bytes {b.start}..{b.end - 1} exceed the {self.dram_size}-byte DRAM")
        self.fail(f"{b.buf}[{b.start}:{b.end}] exceeds the {self.sizes[b.buf]}-word {b.buf} buffer of this chip")

    def span(self, buf: str, addr: int) -> int:
        """The absolute word address of ``buf[addr]`` in the flat buffer array (spans checked)."""
        return self.base[buf] + addr

    def mac_width(self, dtype: str, what: str) -> None:
        if DTYPES[dtype][0] not in self.supported:
            self.fail(f"{what} type {dtype}: this chip's MAC array supports {sorted(self.supported)}-bit operands")

    @property
    def cfg(self) -> int:
        return len(self.cfgs) - 1


def _config(w: _Walk, a: dict) -> list[int]:
    w.mac_width(a["a"], "activation")
    w.mac_width(a["w"], "weight")
    if a["acc_bits"] > w.max_acc:
        w.fail(f"acc_bits={a['acc_bits']} exceeds this chip's {w.max_acc}-bit accumulators")
    w.cfgs.append(config_register({k: v for k, v in a.items() if k in RESET_CONFIG}))
    return [w.cfg]


def _setwin(w: _Walk, a: dict) -> list[int]:
    w.wins.append(window_register(a))
    return [len(w.wins) - 1]


def _load(w: _Walk, a: dict) -> list[int]:
    bits, signed = DTYPES[a["dtype"]]
    return [a["dram"], w.span(a["buf"], a["sram"]), a["x"], a["y"], a["y_stride"], bits, signed, WORD_BITS[a["buf"]],
            BUFFER_ID[a["buf"]]]


def _store(w: _Walk, a: dict) -> list[int]:
    return [w.span(a["buf"], a["sram"]), a["dram"], a["x"], a["y"], a["y_stride"], DTYPES[a["dtype"]][0],
            BUFFER_ID[a["buf"]]]


def _loadwin(w: _Walk, a: dict) -> list[int]:
    bits, signed = DTYPES[a["dtype"]]
    return [a["dram"], w.span(a["buf"], a["sram"]), a["pix0"], a["npix"], a["c0"], a["nc"], bits, signed,
            WORD_BITS[a["buf"]], BUFFER_ID[a["buf"]], len(w.wins) - 1]


def _loadw(w: _Walk, a: dict) -> list[int]:
    bits, signed = DTYPES[a["dtype"]]
    w.mac_width(a["dtype"], "weight")
    return [w.span("WGT", a["sram"]), a["dram"], a["count"], WEIGHT_FORMATS.index(a["format"]), bits, signed,
            a["param"], a["zero"]]


def _gemm(w: _Walk, a: dict) -> list[int]:
    m, n, k = a["m"], a["n"], a["k"]
    return [w.span("INP", a["inp"]), w.span("WGT", a["wgt"]), w.span("ACC", a["acc"]),
            m, n, k, a["accumulate"], w.cfg, w.packed.gemm(a, w.cfgs[-1])]


def _dwconv(w: _Walk, a: dict) -> list[int]:
    m, r, c = a["m"], a["r"], a["c"]
    return [w.span("INP", a["inp"]), w.span("WGT", a["wgt"]), w.span("ACC", a["acc"]),
            m, r, c, a["accumulate"], w.cfg]


def _requant(w: _Walk, a: dict) -> list[int]:
    return [w.span("ACC", a["src"]), w.span(a["dst_buf"], a["dst"]), w.span("PRM", a["prm"]),
            a["m"], a["n"], WORD_BITS[a["dst_buf"]], w.cfg, BUFFER_ID[a["dst_buf"]]]


def _two_inputs(w: _Walk, a: dict) -> list[int]:
    """The a, b and destination spans of an elementwise vector op."""
    return [w.span(a["a_buf"], a["a"]), w.span(a["b_buf"], a["b"]),
            w.span(a["dst_buf"], a["dst"]), a["n"]]


def _rescaled(w: _Walk, a: dict) -> list[int]:
    """VADD and VMUL: the operands, b's broadcast period, the parameter record, the CONFIG."""
    return _two_inputs(w, a) + [a["bn"], w.span("PRM", a["prm"]), WORD_BITS[a["dst_buf"]], w.cfg]


def _vminmax(w: _Walk, a: dict) -> list[int]:
    return _two_inputs(w, a) + [WORD_BITS[a["dst_buf"]]]


def _windows(w: _Walk, a: dict, dst_buf: str, dst: int) -> list[int]:
    """The gathered-window source and the m x c destination of a pool."""
    m, r, c = a["m"], a["r"], a["c"]
    return [w.span(a["src_buf"], a["src"]), w.span(dst_buf, dst), m, r, c]


def _maxpool(w: _Walk, a: dict) -> list[int]:
    return _windows(w, a, a["dst_buf"], a["dst"]) + [WORD_BITS[a["dst_buf"]]]


def _avgpool(w: _Walk, a: dict) -> list[int]:
    return _windows(w, a, a["dst_buf"], a["dst"]) + [a["divisor"], WORD_BITS[a["dst_buf"]], w.cfg, a["even"]]


def _sumpool(w: _Walk, a: dict) -> list[int]:
    return _windows(w, a, "ACC", a["acc"]) + [a["accumulate"], w.cfg]


def _shr(w: _Walk, a: dict) -> list[int]:
    return [w.span(a["src_buf"], a["src"]), w.span(a["dst_buf"], a["dst"]), a["n"], a["shift"],
            a["round"], WORD_BITS[a["dst_buf"]]]


def _vlut(w: _Walk, a: dict) -> list[int]:
    return [w.span(a["src_buf"], a["src"]), w.span(a["dst_buf"], a["dst"]), a["n"],
            w.span("PRM", a["prm"]), WORD_BITS[a["dst_buf"]], BUFFER_ID[a["dst_buf"]],
            BUFFER_ID[a["src_buf"]]]


def _host(w: _Walk, a: dict) -> list[int]:
    return [a["call"]]


def _no_args(w: _Walk, a: dict) -> list[int]:
    return []


_BUILDERS: dict[str, Callable[[_Walk, dict], list[int]]] = {
    "NOP": _no_args, "HALT": _no_args, "CONFIG": _config, "SETWIN": _setwin, "LOAD": _load, "STORE": _store,
    "LOADWIN": _loadwin, "LOADW": _loadw, "GEMM": _gemm, "DWCONV": _dwconv, "REQUANT": _requant, "VADD": _rescaled,
    "VMAX": _vminmax, "VMIN": _vminmax, "MAXPOOL": _maxpool, "AVGPOOL": _avgpool, "SUMPOOL": _sumpool,
    "SHR": _shr, "VLUT": _vlut, "VMUL": _rescaled, "HOST": _host,
}


def _header(ins: Instruction) -> list[int]:
    """op, packed tokens and unit: the first three columns of a row."""
    a = ins.args
    unit = UNITS.index(a["unit"] if ins.op == "NOP" else ins.spec.unit)
    return [OP[ins.op], a["pop_prev"] | a["pop_next"] << 1 | a["push_prev"] << 2 | a["push_next"] << 3, unit]


def _buffer_layout(sizes: dict[str, int]) -> dict[str, int]:
    """Each buffer's first word in the flat array: the buffers one after another."""
    base, at = {}, 0
    for b in BUFFERS:
        base[b] = at
        at += sizes[b]
    return base


def lower(program_words: np.ndarray, chip: ChipConfig, dram_size: int) -> Lowered:
    """Decode, validate and lower; raises SimError (or wraps DecodeError in it)."""
    try:
        instructions = decode_program(program_words)
    except DecodeError as e:
        raise SimError(-1, "", f"cannot decode: {e}") from None
    sizes = chip.buffer_words()
    walk = _Walk(sizes, _buffer_layout(sizes), set(chip["array"]["operand_bits"]), chip["array"]["max_acc_bits"],
                 dram_size, cfgs=[config_register(dict(RESET_CONFIG))])
    rows, spans, row_cfgs = [], [], []
    for index, ins in enumerate(instructions):
        walk.index, walk.text = index, format_instruction(ins)
        spans.append(walk.check_spans(ins))
        row = _header(ins) + _BUILDERS[ins.op](walk, ins.args)
        walk.packed.after(ins, spans[-1])
        rows.append(row + [0] * (ROW - len(row)))
        row_cfgs.append(walk.cfgs[-1])
        if ins.op == "HALT":
            break
    table = np.array(rows, dtype=np.int64).reshape(-1, ROW)
    defer_loads(table, instructions, spans, row_cfgs)
    kept = keep_packed(table, instructions, spans, row_cfgs)
    readers = kept_readers(table, instructions, spans, row_cfgs)
    fuse_requant(table, instructions, spans, row_cfgs)
    win_table = np.array(walk.wins, dtype=np.int64).reshape(-1, WIN_SIZE) if walk.wins else \
        np.zeros((1, WIN_SIZE), np.int64)
    return Lowered(table, np.array(walk.cfgs, dtype=np.int64), win_table, walk.base, sizes, instructions[:len(rows)],
                   min(walk.dram_end, dram_size), merged_ranges([(b.start, b.end) for sp in spans for b in sp
                                                                 if b.access == "write" and b.buf == "DRAM"]),
                   any(ins.op == "HOST" for ins in instructions[:len(rows)]), kept, readers)


def merged_ranges(ranges: list[tuple[int, int]]) -> tuple[tuple[int, int], ...]:
    """Sorted, disjoint [start, end) ranges covering the same bytes as ``ranges``."""
    out: list[tuple[int, int]] = []
    for lo, hi in sorted(r for r in ranges if r[1] > r[0]):
        if out and lo <= out[-1][1]:
            out[-1] = (out[-1][0], max(out[-1][1], hi))
        else:
            out.append((lo, hi))
    return tuple(out)
