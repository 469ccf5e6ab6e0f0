"""The spans of an instruction (isa.table.Span) resolved against its fields and the SETWIN
register, and the first one that does not fit a machine: the one check the golden semantics
and the chip both make before an instruction runs."""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Optional

from .encoding import Instruction
from .table import BUFFERS, Span, dram_bytes, images


@dataclass(frozen=True)
class Block:
    """A resolved span: ``buf`` (a buffer or "DRAM") words (DRAM: bytes) ``start .. start+size-1``."""

    access: str
    buf: str
    start: int
    size: int

    @property
    def end(self) -> int:
        return self.start + self.size


@functools.lru_cache(maxsize=None)
def _code(expr: str):
    return compile(expr, f"<span {expr}>", "eval")


def span_size(sp: Span, args: dict, window: Optional[dict]) -> int:
    """Words (DRAM: bytes) of a span for these fields and SETWIN register (0 when it needs a
    window and there is none: the instruction's state rule refuses it first)."""
    names = {**(window or {}), **args, "bytes": dram_bytes, "images": images}
    try:
        return int(eval(_code(sp.size), {"__builtins__": {}}, names))  # noqa: S307 - the table's own expressions
    except NameError:
        return 0


def blocks(ins: Instruction, window: Optional[dict]) -> list[Block]:
    """Every block ``ins`` reads or writes, in table order (empty ones left out)."""
    v = ins.args
    out = []
    for sp in ins.spec.spans:
        buf = sp.buf if sp.buf in BUFFERS or sp.buf == "DRAM" else v[sp.buf]
        size = span_size(sp, v, window)
        if size > 0:
            out.append(Block(sp.access, buf, v[sp.at], size))
    return out


def state_fault(ins: Instruction, window: Optional[dict]) -> Optional[str]:
    """The first rule on the machine state (e.g. a SETWIN before LOADWIN) that ``ins`` breaks."""
    for check in ins.spec.state_checks:
        msg = check(ins.args, window)
        if msg:
            return msg
    return None


def outside(ins: Instruction, window: Optional[dict], sizes: dict[str, int], dram_size: int) -> Optional[Block]:
    """The first block of ``ins`` that does not fit buffers of ``sizes`` words and ``dram_size`` bytes."""
    for b in blocks(ins, window):
        limit = dram_size if b.buf == "DRAM" else sizes[b.buf]
        if b.end > limit:
            return b
    return None
