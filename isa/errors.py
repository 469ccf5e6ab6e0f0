"""Typed errors of the ISA package: every failure names what was wrong and where."""

from __future__ import annotations


class IsaError(Exception):
    """Base class of every error raised by :mod:`isa`."""


class EncodeError(IsaError, ValueError):
    """An instruction or field value cannot be encoded (unknown op, value out of range, ...)."""


class DecodeError(IsaError, ValueError):
    """A 128-bit word is not a valid instruction."""


class AssemblyError(IsaError, ValueError):
    """Assembly text is malformed; carries the 1-based line number."""

    def __init__(self, line: int, message: str, text: str = "") -> None:
        self.line = line
        self.message = message
        self.text = text
        where = f"line {line}: {message}"
        if text:
            where += f"  [{text.strip()}]"
        super().__init__(where)


class ExecError(IsaError, RuntimeError):
    """An instruction cannot execute on the given machine state (e.g. out-of-bounds access).

    Carries the instruction index, its disassembly and the reason; raised before any state changes.
    """

    def __init__(self, index: int, insn_text: str, reason: str) -> None:
        self.index = index
        self.insn_text = insn_text
        self.reason = reason
        super().__init__(f"instruction {index} ({insn_text}): {reason}")
