"""Instruction objects and their 128-bit encoding, derived from :mod:`isa.table`."""

from __future__ import annotations

from typing import Iterable

import numpy as np

from .errors import DecodeError, EncodeError
from .table import BY_MNEMONIC, BY_OPCODE, HEADER_BITS, OPCODE_BITS, TOKEN_NAMES, WORD_BITS, Field, Op, Value

WORD_DTYPE = np.dtype("<u8")  # a program is an (n, 2) array: [low 64 bits, high 64 bits]


def _check_value(f: Field, v: Value) -> Value:
    if f.kind == "e":
        if v not in f.options or v is None:
            raise EncodeError(f"field {f.name}: {v!r} is not one of {f.describe_range()}")
        return v
    if isinstance(v, (bool, np.bool_)) or not isinstance(v, (int, np.integer)):
        raise EncodeError(f"field {f.name}: expected an integer, got {v!r}")
    v = int(v)
    if not f.min <= v <= f.max:
        raise EncodeError(f"field {f.name}: {v} does not fit (range {f.min}..{f.max})")
    return v


class Instruction:
    """A valid instruction: its mnemonic, every field value and the four token bits.

    ``Instruction("GEMM", inp=0, wgt=0, acc=0, m=4, n=4, k=8, push_next=1)``; fields with a
    default may be left out.  Construction validates everything the encoder would.
    """

    __slots__ = ("op", "args")

    def __init__(self, op: str, **args: Value) -> None:
        spec = BY_MNEMONIC.get(op)
        if spec is None:
            raise EncodeError(f"unknown instruction {op!r}")
        known = {f.name for f in spec.fields} | set(TOKEN_NAMES)
        extra = sorted(set(args) - known)
        if extra:
            raise EncodeError(f"{op}: unknown field(s) {', '.join(extra)}")
        values: dict[str, Value] = {}
        for t in TOKEN_NAMES:
            v = args.get(t, 0)
            if v not in (0, 1) or isinstance(v, str):
                raise EncodeError(f"{op}: token {t} must be 0 or 1, got {v!r}")
            values[t] = int(v)
        for f in spec.fields:
            if f.name in args:
                v = args[f.name]
            elif f.default is not None:
                v = f.default
            else:
                raise EncodeError(f"{op}: missing field {f.name}")
            try:
                values[f.name] = _check_value(f, v)
            except EncodeError as e:
                raise EncodeError(f"{op}: {e}") from None
        for check in spec.checks:
            msg = check(values)
            if msg:
                raise EncodeError(f"{op}: {msg}")
        object.__setattr__(self, "op", op)
        object.__setattr__(self, "args", values)

    def __getattr__(self, name: str) -> Value:
        try:
            return self.args[name]  # type: ignore[index]
        except KeyError:
            raise AttributeError(name) from None

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError("Instruction is immutable; use replace()")

    def replace(self, **changes: Value) -> "Instruction":
        return Instruction(self.op, **{**self.args, **changes})

    @property
    def spec(self) -> Op:
        return BY_MNEMONIC[self.op]

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Instruction) and self.op == other.op and self.args == other.args

    def __hash__(self) -> int:
        return hash((self.op, tuple(sorted(self.args.items()))))

    def __repr__(self) -> str:
        body = ", ".join(f"{k}={v!r}" for k, v in self.args.items())
        return f"Instruction({self.op!r}, {body})"


def encode(ins: Instruction) -> int:
    """Encode a valid instruction as a 128-bit integer."""
    spec = ins.spec
    word = spec.opcode
    for i, t in enumerate(TOKEN_NAMES):
        word |= ins.args[t] << (OPCODE_BITS + i)
    pos = HEADER_BITS
    for f in spec.fields:
        v = ins.args[f.name]
        if f.kind == "e":
            code = f.options.index(v)
        elif f.kind == "s":
            code = v & ((1 << f.bits) - 1)
        else:
            code = v - f.lo
        word |= code << pos
        pos += f.bits
    return word


def decode(word: int) -> Instruction:
    """Decode a 128-bit integer; raises :class:`DecodeError` unless it is a valid instruction."""
    word = int(word)
    if not 0 <= word < (1 << WORD_BITS):
        raise DecodeError(f"word {word:#x} is not a 128-bit value")
    opcode = word & ((1 << OPCODE_BITS) - 1)
    spec = BY_OPCODE.get(opcode)
    if spec is None:
        raise DecodeError(f"opcode {opcode:#04x} is not assigned (word {word:#034x})")
    args: dict[str, Value] = {t: (word >> (OPCODE_BITS + i)) & 1 for i, t in enumerate(TOKEN_NAMES)}
    pos = HEADER_BITS
    for f in spec.fields:
        code = (word >> pos) & ((1 << f.bits) - 1)
        pos += f.bits
        if f.kind == "e":
            if code >= len(f.options) or f.options[code] is None:
                raise DecodeError(f"{spec.mnemonic}: field {f.name} has invalid code {code}")
            args[f.name] = f.options[code]
        elif f.kind == "s":
            args[f.name] = code - (1 << f.bits) if code >> (f.bits - 1) else code
        else:
            args[f.name] = code + f.lo
            if args[f.name] > f.max:
                raise DecodeError(f"{spec.mnemonic}: field {f.name}={args[f.name]} exceeds {f.max}")
    if word >> pos:
        raise DecodeError(f"{spec.mnemonic}: reserved bits {pos}..127 are not zero (word {word:#034x})")
    try:
        return Instruction(spec.mnemonic, **args)
    except EncodeError as e:
        raise DecodeError(str(e)) from None


def words_to_ints(words: np.ndarray) -> list[int]:
    """(n, 2) uint64 array -> list of 128-bit Python ints."""
    w = np.asarray(words)
    if w.ndim != 2 or w.shape[1] != 2:
        raise DecodeError(f"program words must have shape (n, 2), got {w.shape}")
    w = w.astype(WORD_DTYPE, copy=False)
    return [int(lo) | (int(hi) << 64) for lo, hi in w]


def ints_to_words(ints: Iterable[int]) -> np.ndarray:
    """List of 128-bit ints -> (n, 2) little-endian uint64 array."""
    rows = [(i & 0xFFFF_FFFF_FFFF_FFFF, i >> 64) for i in ints]
    return np.array(rows, dtype=WORD_DTYPE).reshape(-1, 2)


def encode_program(instructions: Iterable[Instruction]) -> np.ndarray:
    """Encode instructions to the (n, 2) uint64 word array the simulator runs."""
    return ints_to_words(encode(i) for i in instructions)


def decode_program(words: np.ndarray) -> list[Instruction]:
    """Decode a word array; a bad word raises :class:`DecodeError` naming its index."""
    out = []
    for idx, w in enumerate(words_to_ints(words)):
        try:
            out.append(decode(w))
        except DecodeError as e:
            raise DecodeError(f"word {idx}: {e}") from None
    return out
