"""Assembler errors carry the line number and what was wrong; syntax features work."""

from __future__ import annotations

import pytest

import isa
from isa import AssemblyError
from isa import Instruction as I


def test_labels_constants_expressions_comments():
    words = isa.assemble("""
        # header comment
        .equ BASE 0x100
        .set ROW 8            ; constants may refer to earlier ones: BASE+ROW works below
        start: loop: LOAD buf=INP, dtype=u8, dram = BASE+ROW-2, sram=start, x=ROW, y=1, y_stride=0
        next:
        NOP unit=load push_next
        HALT
        GEMM inp=next wgt=0b101 acc=0x1_0 m=1 n=1 k=1
    """)
    prog = isa.decode_program(words)
    assert prog[0] == I("LOAD", buf="INP", dtype="u8", dram=0x106, sram=0, x=8, y=1, y_stride=0)
    assert prog[1] == I("NOP", unit="load", push_next=1)
    assert prog[3].inp == 1 and prog[3].wgt == 5 and prog[3].acc == 16


@pytest.mark.parametrize("text, line, msg", [
    ("HALT\nFOO x=1", 2, "unknown instruction 'FOO'"),
    ("GEMM inp=0 wgt=0 acc=0 m=1 n=1 k=1 q=3", 1, "GEMM has no field 'q'"),
    ("\n\nGEMM inp=0 wgt=0 acc=0 m=1 n=1", 3, "missing field k"),
    ("GEMM inp=0 inp=1 wgt=0 acc=0 m=1 n=1 k=1", 1, "inp given twice"),
    ("LOAD buf=XYZ dtype=u8 dram=0 sram=0 x=1 y=1 y_stride=0", 1, "buf=XYZ is not one of INP, WGT, ACC, OUT, PRM"),
    ("GEMM inp=UNDEF wgt=0 acc=0 m=1 n=1 k=1", 1, "undefined symbol 'UNDEF'"),
    ("GEMM inp=0x wgt=0 acc=0 m=1 n=1 k=1", 1, "cannot read the value"),
    ("GEMM inp=3*4 wgt=0 acc=0 m=1 n=1 k=1", 1, "cannot read the value"),
    ("GEMM inp=0 wgt=0 acc=0 m=1 n=1 k=1 accumulate", 1, "expected name=value"),
    (".equ A 1\n.equ A 2", 2, "symbol 'A' defined twice"),
    (".bogus 1", 1, "unknown directive"),
    ("LOAD buf=INP dtype=u8 dram=0 sram=0 x=1 y=1 y_stride=0 pop_prev", 1, "load unit has no previous unit"),
    ("GEMM inp=-1 wgt=0 acc=0 m=1 n=1 k=1", 1, "inp: -1 does not fit (range 0..1048575)"),
])
def test_errors_name_line_and_reason(text, line, msg):
    with pytest.raises(AssemblyError) as e:
        isa.assemble(text)
    assert e.value.line == line
    assert msg in str(e.value)
    assert str(e.value).startswith(f"line {line}: ")


def test_empty_program():
    words = isa.assemble("; nothing\n")
    assert words.shape == (0, 2)
    assert isa.disassemble(words) == ""
