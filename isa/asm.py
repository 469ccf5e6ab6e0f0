"""Assembler and disassembler, derived from :mod:`isa.table`.

Syntax, one statement per line::

    ; a comment (``#`` works too)
    .equ WBASE 0x1000            ; a named constant
    conv1:                       ; a label: the index of the next instruction
    LOADW sram=0 dram=WBASE+64 count=576 dtype=s8 push_next
    GEMM inp=0 wgt=0 acc=0 m=16 n=64 k=9 pop_prev

Fields are ``name=value`` (commas between them are allowed); a value is an integer (decimal,
``0x`` hex, ``0b`` binary, ``_`` separators), an option name for enumerated fields, or a sum of
constants, labels and integers (``WBASE+64-8``).  The token flags ``pop_prev``, ``pop_next``,
``push_prev`` and ``push_next`` stand alone.  Fields with a default may be left out.
"""

from __future__ import annotations

import re

import numpy as np

from .encoding import Instruction, decode_program, encode_program
from .errors import AssemblyError, EncodeError
from .table import BY_MNEMONIC, TOKEN_NAMES

_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_.]*\Z")
_TERM = re.compile(r"\s*([+-]?)\s*([A-Za-z_][A-Za-z0-9_.]*|0[xX][0-9a-fA-F_]+|0[bB][01_]+|[0-9][0-9_]*)\s*")
_HEX_FIELDS = {"dram"}


def _strip_comment(line: str) -> str:
    for mark in (";", "#"):
        cut = line.find(mark)
        if cut >= 0:
            line = line[:cut]
    return line.strip()


def _eval(expr: str, symbols: dict[str, int], lineno: int, text: str) -> int:
    """Evaluate ``term (+|- term)*`` where a term is an integer literal or a symbol."""
    pos, total, first = 0, 0, True
    expr = expr.strip()
    if not expr:
        raise AssemblyError(lineno, "empty value", text)
    while pos < len(expr):
        m = _TERM.match(expr, pos)
        if not m or (not first and not m.group(1)):
            raise AssemblyError(lineno, f"cannot read the value {expr!r}", text)
        sign, tok = m.groups()
        if tok[0].isdigit():
            try:
                val = int(tok.replace("_", ""), 0)
            except ValueError:
                raise AssemblyError(lineno, f"bad number {tok!r}", text) from None
        elif tok in symbols:
            val = symbols[tok]
        else:
            raise AssemblyError(lineno, f"undefined symbol {tok!r}", text)
        total += -val if sign == "-" else val
        pos, first = m.end(), False
    return total


def _tokenize(body: str) -> list[str]:
    """Split the operand part on whitespace/commas, keeping ``name = value`` together."""
    body = re.sub(r"\s*=\s*", "=", body)
    body = re.sub(r"\s*([+-])\s*", r"\1", body)
    return [t for t in re.split(r"[\s,]+", body) if t]


def assemble(text: str) -> np.ndarray:
    """Assemble program text into an (n, 2) uint64 array of 128-bit words."""
    lines = text.splitlines()
    symbols: dict[str, int] = {}
    statements: list[tuple[int, str, str]] = []
    # Pass 1: labels and constants.
    for lineno, raw in enumerate(lines, start=1):
        line = _strip_comment(raw)
        while line:
            m = re.match(r"([A-Za-z_][A-Za-z0-9_.]*)\s*:(?!=)\s*(.*)\Z", line)
            if not m:
                break
            name = m.group(1)
            if name in symbols:
                raise AssemblyError(lineno, f"symbol {name!r} defined twice", raw)
            symbols[name] = len(statements)
            line = m.group(2)
        if not line:
            continue
        if line.startswith("."):
            parts = line.split(None, 2)
            if parts[0].lower() not in (".equ", ".set"):
                raise AssemblyError(lineno, f"unknown directive {parts[0]!r}", raw)
            if len(parts) != 3 or not _NAME.match(parts[1]):
                raise AssemblyError(lineno, f"{parts[0]} needs a name and a value", raw)
            if parts[1] in symbols:
                raise AssemblyError(lineno, f"symbol {parts[1]!r} defined twice", raw)
            symbols[parts[1]] = _eval(parts[2], symbols, lineno, raw)
            continue
        mnemonic, _, body = line.partition(" ")
        statements.append((lineno, mnemonic.upper(), body))
    # Pass 2: instructions.
    out = []
    for lineno, mnemonic, body in statements:
        raw = lines[lineno - 1]
        spec = BY_MNEMONIC.get(mnemonic)
        if spec is None:
            raise AssemblyError(lineno, f"unknown instruction {mnemonic!r}", raw)
        fields = {f.name: f for f in spec.fields}
        args: dict[str, object] = {}
        for tok in _tokenize(body):
            name, eq, value = tok.partition("=")
            if name in args:
                raise AssemblyError(lineno, f"{name} given twice", raw)
            if not eq:
                if name in TOKEN_NAMES:
                    args[name] = 1
                    continue
                raise AssemblyError(lineno, f"expected name=value, got {tok!r}", raw)
            if name in TOKEN_NAMES:
                args[name] = _eval(value, symbols, lineno, raw)
            elif name not in fields:
                raise AssemblyError(lineno, f"{mnemonic} has no field {name!r}", raw)
            elif fields[name].kind == "e":
                opts = {str(o).lower(): o for o in fields[name].options if o is not None}
                if value.lower() not in opts:
                    raise AssemblyError(
                        lineno, f"{name}={value} is not one of {fields[name].describe_range()}", raw)
                args[name] = opts[value.lower()]
            else:
                args[name] = _eval(value, symbols, lineno, raw)
        try:
            out.append(Instruction(mnemonic, **args))  # type: ignore[arg-type]
        except EncodeError as e:
            raise AssemblyError(lineno, str(e), raw) from None
    return encode_program(out)


def format_instruction(ins: Instruction) -> str:
    """One instruction in canonical assembly syntax (every field written out)."""
    parts = [ins.op]
    for f in ins.spec.fields:
        v = ins.args[f.name]
        parts.append(f"{f.name}={v:#x}" if f.name in _HEX_FIELDS else f"{f.name}={v}")
    parts += [t for t in TOKEN_NAMES if ins.args[t]]
    return " ".join(parts)


def disassemble(words: np.ndarray, *, numbered: bool = False) -> str:
    """Disassemble an (n, 2) word array to text that :func:`assemble` turns back into it."""
    lines = []
    for idx, ins in enumerate(decode_program(words)):
        text = format_instruction(ins)
        lines.append(f"{text:<100s} ; {idx}" if numbered else text)
    return "\n".join(lines) + ("\n" if lines else "")
