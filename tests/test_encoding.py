"""Acceptance 1: encode/decode and assemble/disassemble round trips; random words decode or
raise a typed error; values that do not fit are refused."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import isa
from isa import DecodeError, EncodeError, Instruction, decode, encode
from isa.table import HEADER_BITS, OPCODE_BITS, OPS, TOKEN_NAMES

from .strategies import instructions


@given(instructions())
def test_decode_encode_roundtrip(ins):
    word = encode(ins)
    assert 0 <= word < 1 << 128
    assert decode(word) == ins


@given(st.lists(instructions(), min_size=1, max_size=6))
def test_assemble_disassemble_roundtrip(prog):
    words = isa.encode_program(prog)
    text = isa.disassemble(words)
    assert np.array_equal(isa.assemble(text), words)
    numbered = isa.disassemble(words, numbered=True)
    assert np.array_equal(isa.assemble(numbered), words)
    assert isa.decode_program(words) == prog


@pytest.mark.parametrize("op", OPS, ids=lambda o: o.mnemonic)
def test_every_instruction_roundtrips_at_field_extremes(op):
    """Each field at its minimum and maximum survives encode -> decode for every instruction."""
    for pick in ("min", "max"):
        args = {}
        for f in op.fields:
            if f.kind == "e":
                opts = [o for o in f.options if o is not None]
                args[f.name] = opts[0] if pick == "min" else opts[-1]
            else:
                args[f.name] = getattr(f, pick)
        if op.mnemonic == "CONFIG":
            args.update(a_zp=0, w_zp=0, o_zp=0, clamp_min=-5, clamp_max=5)
        if op.mnemonic == "LOADW":
            args["param"] = 1
        ins = Instruction(op.mnemonic, **args)
        assert decode(encode(ins)) == ins


@given(st.integers(0, (1 << 128) - 1))
def test_random_words_decode_or_raise_typed_error(word):
    try:
        ins = decode(word)
    except DecodeError:
        return
    assert encode(ins) == word  # a word that decodes is the canonical encoding of its instruction


@given(st.sampled_from(OPS), st.integers(0, (1 << 128) - 1), st.integers(HEADER_BITS, 128))
def test_random_words_behind_assigned_opcodes(op, bits, width):
    """Random field bits (reserved bits sometimes clear) behind every assigned opcode: a valid
    instruction of that opcode or a DecodeError, never anything else."""
    word = ((bits >> OPCODE_BITS << OPCODE_BITS) | op.opcode) & ((1 << width) - 1)
    try:
        ins = decode(word)
    except DecodeError:
        return
    assert ins.op == op.mnemonic and encode(ins) == word


def test_unassigned_opcode_and_reserved_bits_are_refused():
    with pytest.raises(DecodeError, match="opcode"):
        decode(0x3F)
    halt = encode(Instruction("HALT"))
    assert decode(halt).op == "HALT"
    with pytest.raises(DecodeError, match="reserved"):
        decode(halt | 1 << 100)
    with pytest.raises(DecodeError, match="reserved"):
        decode(halt | 1 << HEADER_BITS)


def test_invalid_enum_code_is_refused():
    word = encode(Instruction("CONFIG", a="u8", w="s8", o="u8", clamp_min=0, clamp_max=255))
    # field 'a' sits right after the header: code 7 would be 's32', not a MAC type.
    bad = (word & ~(0b111 << HEADER_BITS)) | (7 << HEADER_BITS)
    with pytest.raises(DecodeError, match="field a has invalid code 7"):
        decode(bad)


def test_values_that_do_not_fit_are_refused_not_truncated():
    with pytest.raises(EncodeError, match="m: 4097 does not fit"):
        Instruction("GEMM", inp=0, wgt=0, acc=0, m=4097, n=1, k=1)
    with pytest.raises(EncodeError, match="m: 0 does not fit"):
        Instruction("GEMM", inp=0, wgt=0, acc=0, m=0, n=1, k=1)
    with pytest.raises(EncodeError, match="dram: 4294967296 does not fit"):
        Instruction("LOAD", buf="INP", dtype="u8", dram=1 << 32, sram=0, x=1, y=1, y_stride=0)
    with pytest.raises(EncodeError, match="pad_value: -65537"):
        Instruction("SETWIN", in_h=1, in_w=1, in_c=1, k_h=1, k_w=1, out_w=1, pad_value=-65537)
    with pytest.raises(EncodeError, match="missing field k"):
        Instruction("GEMM", inp=0, wgt=0, acc=0, m=1, n=1)
    with pytest.raises(EncodeError, match="unknown field"):
        Instruction("HALT", m=1)
    with pytest.raises(EncodeError, match="expected an integer"):
        Instruction("GEMM", inp=0, wgt=0, acc=0, m=1.5, n=1, k=1)


def test_cross_field_rules():
    with pytest.raises(EncodeError, match="a_zp=300 outside the range 0..255"):
        Instruction("CONFIG", a="u8", w="s8", o="u8", a_zp=300, clamp_min=0, clamp_max=255)
    with pytest.raises(EncodeError, match="w_zp=-9 outside the range -8..7"):
        Instruction("CONFIG", a="u8", w="s4", o="u8", w_zp=-9, clamp_min=0, clamp_max=255)
    with pytest.raises(EncodeError, match="clamp_min=5 > clamp_max=4"):
        Instruction("CONFIG", a="u8", w="s8", o="u8", clamp_min=5, clamp_max=4)
    with pytest.raises(EncodeError, match="load unit has no previous unit"):
        Instruction("LOAD", buf="INP", dtype="u8", dram=0, sram=0, x=1, y=1, y_stride=0, pop_prev=1)
    with pytest.raises(EncodeError, match="store unit has no next unit"):
        Instruction("STORE", buf="OUT", dtype="u8", dram=0, sram=0, x=1, y=1, y_stride=0, push_next=1)
    with pytest.raises(EncodeError, match="codebook index bits"):
        Instruction("LOADW", sram=0, dram=0, count=4, format="codebook", dtype="s4", param=5)
    # The decoder enforces the same rules: a LOAD word with pop_prev set does not decode.
    word = encode(Instruction("LOAD", buf="INP", dtype="u8", dram=0, sram=0, x=1, y=1, y_stride=0))
    with pytest.raises(DecodeError, match="load unit"):
        decode(word | 1 << OPCODE_BITS + TOKEN_NAMES.index("pop_prev"))


def test_golden_encoding_of_one_word():
    """Bit positions worked by hand: GEMM opcode 0x08, push_next (bit 9), inp=1 at bit 10,
    wgt=2 at bit 30, acc=3 at bit 50, m=4 stored as 3 at bit 70, n=5 -> 4 at bit 82,
    k=6 -> 5 at bit 94, accumulate=1 at bit 108."""
    ins = Instruction("GEMM", inp=1, wgt=2, acc=3, m=4, n=5, k=6, accumulate=1, push_next=1)
    expect = 0x08 | 1 << 9 | 1 << 10 | 2 << 30 | 3 << 50 | 3 << 70 | 4 << 82 | 5 << 94 | 1 << 108
    assert encode(ins) == expect
    words = isa.encode_program([ins])
    assert words.dtype == np.dtype("<u8") and words.shape == (1, 2)
    assert int(words[0, 0]) == expect & (2**64 - 1) and int(words[0, 1]) == expect >> 64
