"""The chip's error: a program it cannot run."""

from __future__ import annotations


class SimError(RuntimeError):
    """A program cannot run on the chip: names the instruction index, its text and the reason."""

    def __init__(self, index: int, insn_text: str, reason: str) -> None:
        self.index, self.insn_text, self.reason = index, insn_text, reason
        where = f"instruction {index} ({insn_text})" if index >= 0 else "program"
        super().__init__(f"{where}: {reason}")
