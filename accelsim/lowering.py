"""Validate a program against a chip and lower it to the integer table the Numba loop runs.

The walk follows program order, tracking the CONFIG and SETWIN registers as each unit will see
them (units execute in order, so their register state is known statically).  Every buffer and
DRAM span, every operand width the chip lacks and every accumulator wider than it has is refused
here with a :class:`SimError` naming the instruction, before any kernel touches memory.

Row layout (``ROW`` columns of int64): ``[op, tokens, unit, a0, a1, ...]``; ``tokens`` packs
pop_prev=1, pop_next=2, push_prev=4, push_next=8; the arguments per op are listed in ``ARGS``.
Addresses are absolute word addresses into the flat buffer array (buffer base + address).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from isa import format_instruction
from isa.encoding import Instruction, decode_program
from isa.errors import DecodeError
from isa.semantics import ADD_RECORD_WORDS, LUT_WORDS, RESET_CONFIG
from isa.table import BUFFERS, DTYPES, UNITS, WEIGHT_FORMATS
from kernels.state import config_register, window_register

from .config import ChipConfig

ROW = 14
OPS = ("NOP", "HALT", "CONFIG", "SETWIN", "LOAD", "LOADWIN", "LOADW", "STORE", "GEMM", "DWCONV",
       "REQUANT", "VADD", "VMAX", "VMIN", "MAXPOOL", "AVGPOOL", "SUMPOOL", "SHR", "VLUT")
OP = {name: i for i, name in enumerate(OPS)}
ARGS = {
    "CONFIG": ("cfg",), "SETWIN": ("win",),
    "LOAD": ("dram", "dst", "x", "y", "y_stride", "bits", "signed", "word_bits", "buf"),
    "LOADWIN": ("dram", "dst", "pix0", "npix", "c0", "nc", "bits", "signed", "word_bits", "buf", "win"),
    "LOADW": ("dst", "dram", "count", "format", "bits", "signed", "param", "zero"),
    "STORE": ("src", "dram", "x", "y", "y_stride", "bits", "buf"),
    "GEMM": ("inp", "wgt", "acc", "m", "n", "k", "accumulate", "cfg"),
    "DWCONV": ("inp", "wgt", "acc", "m", "r", "c", "accumulate", "cfg"),
    "REQUANT": ("src", "dst", "prm", "m", "n", "word_bits", "cfg", "buf"),
    "VADD": ("a", "b", "dst", "n", "prm", "word_bits", "cfg"),
    "VMAX": ("a", "b", "dst", "n", "word_bits"), "VMIN": ("a", "b", "dst", "n", "word_bits"),
    "MAXPOOL": ("src", "dst", "m", "r", "c", "word_bits"),
    "AVGPOOL": ("src", "dst", "m", "r", "c", "divisor", "word_bits", "cfg", "even"),
    "SUMPOOL": ("src", "acc", "m", "r", "c", "accumulate", "cfg"),
    "SHR": ("src", "dst", "n", "shift", "round", "word_bits"),
    "VLUT": ("src", "dst", "n", "prm", "word_bits", "dst_buf", "src_buf"),
}
BUFFER_ID = {b: i for i, b in enumerate(BUFFERS)}
WORD_BITS = {"INP": 32, "WGT": 32, "ACC": 64, "OUT": 32, "PRM": 32}


class SimError(RuntimeError):
    """A program cannot run on the chip: names the instruction index, its text and the reason."""

    def __init__(self, index: int, insn_text: str, reason: str) -> None:
        self.index, self.insn_text, self.reason = index, insn_text, reason
        where = f"instruction {index} ({insn_text})" if index >= 0 else "program"
        super().__init__(f"{where}: {reason}")


@dataclass
class Lowered:
    """The lowered program: rows, register tables, buffer layout and the halting point."""

    rows: np.ndarray          # (n, ROW) int64, only instructions up to and including HALT
    cfgs: np.ndarray          # (k, CFG_SIZE) int64: every CONFIG (index 0 = reset values)
    wins: np.ndarray          # (j, 13) int64: every SETWIN
    base: dict[str, int]      # buffer -> first word in the flat array
    sizes: dict[str, int]     # buffer -> words
    instructions: list[Instruction]

    @property
    def total_words(self) -> int:
        return sum(self.sizes.values())


def _unit(ins: Instruction) -> int:
    return UNITS.index(ins.args["unit"] if ins.op == "NOP" else ins.spec.unit)


def lower(program_words: np.ndarray, chip: ChipConfig, dram_size: int) -> Lowered:
    """Decode, validate and lower; raises SimError (or wraps DecodeError in it)."""
    try:
        instructions = decode_program(program_words)
    except DecodeError as e:
        raise SimError(-1, "", f"cannot decode: {e}") from None
    sizes = chip.buffer_words()
    base, at = {}, 0
    for b in BUFFERS:
        base[b] = at
        at += sizes[b]
    supported = set(chip["array"]["operand_bits"])
    max_acc = chip["array"]["max_acc_bits"]
    cfg = dict(RESET_CONFIG)
    cfgs = [config_register(cfg)]
    wins: list[np.ndarray] = []
    rows = []
    for index, ins in enumerate(instructions):
        a = ins.args
        text = format_instruction(ins)

        def fail(reason: str) -> None:
            raise SimError(index, text, reason)

        def span(buf: str, addr: int, n: int) -> int:
            if addr + n > sizes[buf]:
                fail(f"{buf}[{addr}:{addr + n}] exceeds the {sizes[buf]}-word {buf} buffer of this chip")
            return base[buf] + addr

        def dram_span(addr: int, nbytes: int) -> None:
            if addr + nbytes > dram_size:
                fail(f"DRAM bytes {addr}..{addr + nbytes - 1} exceed the {dram_size}-byte DRAM")

        def mac_width(dtype: str, what: str) -> None:
            if DTYPES[dtype][0] not in supported:
                fail(f"{what} type {dtype}: this chip's MAC array supports {sorted(supported)}-bit operands")

        def elems_bytes(first_elem_max: int, bits: int) -> int:
            return (first_elem_max * bits + 7) // 8

        row = [OP[ins.op], a["pop_prev"] | a["pop_next"] << 1 | a["push_prev"] << 2 | a["push_next"] << 3,
               _unit(ins)]
        op = ins.op
        if op == "CONFIG":
            mac_width(a["a"], "activation")
            mac_width(a["w"], "weight")
            if a["acc_bits"] > max_acc:
                fail(f"acc_bits={a['acc_bits']} exceeds this chip's {max_acc}-bit accumulators")
            cfg = {k: v for k, v in a.items() if k in RESET_CONFIG}
            cfgs.append(config_register(cfg))
            row += [len(cfgs) - 1]
        elif op == "SETWIN":
            wins.append(window_register(a))
            row += [len(wins) - 1]
        elif op in ("LOAD", "STORE"):
            bits, signed = DTYPES[a["dtype"]]
            n = a["x"] * a["y"]
            sram = span(a["buf"], a["sram"], n)
            dram_span(a["dram"], elems_bytes((a["y"] - 1) * a["y_stride"] + a["x"], bits))
            if op == "LOAD":
                row += [a["dram"], sram, a["x"], a["y"], a["y_stride"], bits, signed, WORD_BITS[a["buf"]],
                        BUFFER_ID[a["buf"]]]
            else:
                row += [sram, a["dram"], a["x"], a["y"], a["y_stride"], bits, BUFFER_ID[a["buf"]]]
        elif op == "LOADWIN":
            if not wins:
                fail("LOADWIN before any SETWIN")
            w = wins[-1]
            in_h, in_w, in_c = int(w[0]), int(w[1]), int(w[2])
            if a["c0"] + a["nc"] > in_c:
                fail(f"channels {a['c0']}..{a['c0'] + a['nc'] - 1} exceed in_c={in_c}")
            bits, signed = DTYPES[a["dtype"]]
            n = a["npix"] * int(w[3]) * int(w[4]) * a["nc"]
            dst = span(a["buf"], a["sram"], n)
            dram_span(a["dram"], elems_bytes(in_h * in_w * in_c, bits))
            row += [a["dram"], dst, a["pix0"], a["npix"], a["c0"], a["nc"], bits, signed, WORD_BITS[a["buf"]],
                    BUFFER_ID[a["buf"]], len(wins) - 1]
        elif op == "LOADW":
            bits, signed = DTYPES[a["dtype"]]
            mac_width(a["dtype"], "weight")
            dst = span("WGT", a["sram"], a["count"])
            if a["format"] == "dense":
                dram_span(a["dram"], elems_bytes(a["count"], bits))
            else:
                dram_span(a["dram"], 1)  # the rest depends on the stream: the kernel checks it
            row += [dst, a["dram"], a["count"], WEIGHT_FORMATS.index(a["format"]), bits, signed, a["param"],
                    a["zero"]]
        elif op == "GEMM":
            row += [span("INP", a["inp"], a["m"] * a["k"]), span("WGT", a["wgt"], a["n"] * a["k"]),
                    span("ACC", a["acc"], a["m"] * a["n"]), a["m"], a["n"], a["k"], a["accumulate"], len(cfgs) - 1]
        elif op == "DWCONV":
            row += [span("INP", a["inp"], a["m"] * a["r"] * a["c"]), span("WGT", a["wgt"], a["r"] * a["c"]),
                    span("ACC", a["acc"], a["m"] * a["c"]), a["m"], a["r"], a["c"], a["accumulate"], len(cfgs) - 1]
        elif op == "REQUANT":
            row += [span("ACC", a["src"], a["m"] * a["n"]), span(a["dst_buf"], a["dst"], a["m"] * a["n"]),
                    span("PRM", a["prm"], 3 * a["n"]), a["m"], a["n"], WORD_BITS[a["dst_buf"]], len(cfgs) - 1,
                    BUFFER_ID[a["dst_buf"]]]
        elif op == "VADD":
            row += [span(a["a_buf"], a["a"], a["n"]), span(a["b_buf"], a["b"], a["n"]),
                    span(a["dst_buf"], a["dst"], a["n"]), a["n"], span("PRM", a["prm"], ADD_RECORD_WORDS),
                    WORD_BITS[a["dst_buf"]], len(cfgs) - 1]
        elif op in ("VMAX", "VMIN"):
            row += [span(a["a_buf"], a["a"], a["n"]), span(a["b_buf"], a["b"], a["n"]),
                    span(a["dst_buf"], a["dst"], a["n"]), a["n"], WORD_BITS[a["dst_buf"]]]
        elif op in ("MAXPOOL", "AVGPOOL"):
            row += [span(a["src_buf"], a["src"], a["m"] * a["r"] * a["c"]),
                    span(a["dst_buf"], a["dst"], a["m"] * a["c"]), a["m"], a["r"], a["c"]]
            row += [a["divisor"], WORD_BITS[a["dst_buf"]], len(cfgs) - 1, a["even"]] if op == "AVGPOOL" else \
                [WORD_BITS[a["dst_buf"]]]
        elif op == "SUMPOOL":
            row += [span(a["src_buf"], a["src"], a["m"] * a["r"] * a["c"]), span("ACC", a["acc"], a["m"] * a["c"]),
                    a["m"], a["r"], a["c"], a["accumulate"], len(cfgs) - 1]
        elif op == "SHR":
            row += [span(a["src_buf"], a["src"], a["n"]), span(a["dst_buf"], a["dst"], a["n"]), a["n"], a["shift"],
                    a["round"], WORD_BITS[a["dst_buf"]]]
        elif op == "VLUT":
            row += [span(a["src_buf"], a["src"], a["n"]), span(a["dst_buf"], a["dst"], a["n"]), a["n"],
                    span("PRM", a["prm"], LUT_WORDS), WORD_BITS[a["dst_buf"]], BUFFER_ID[a["dst_buf"]],
                    BUFFER_ID[a["src_buf"]]]
        rows.append(row + [0] * (ROW - len(row)))
        if op == "HALT":
            break
    table = np.array(rows, dtype=np.int64).reshape(-1, ROW)
    win_table = np.array(wins, dtype=np.int64).reshape(-1, 13) if wins else np.zeros((1, 13), np.int64)
    return Lowered(table, np.array(cfgs, dtype=np.int64), win_table, base, sizes, instructions[:len(rows)])
