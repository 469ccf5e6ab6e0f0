"""The lowering's hints to the value loop (columns of accelsim.chip.rows that are not instruction
fields): work the loop may skip because no instruction could see the difference.

* ``PackedWeights``: a GEMM whose weight words, and their type, are unchanged since the GEMM before
  it packed them takes the packed copy (GEMM's ``reuse``).
* ``defer_loads``: a LOADWIN into INP or a dense LOADW whose words only byte-path GEMMs read before
  later writes replace them all is skipped; those GEMMs gather the operand from DRAM themselves
  (LOADWIN's / LOADW's ``deferred``, GEMM's ``window`` / ``weights``).

Both are static: they follow program order over the instructions' read and write spans
(isa.spans), as the lowering walk does.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from isa.encoding import Instruction
from isa.spans import Block
from kernels.state import CFG_A_BITS, CFG_W_BITS, CFG_W_SIGNED

from .rows import ARGS


@dataclass
class PackedWeights:
    """Which weight operand GEMM's byte path (operands of at most 8 bits) packed last, so that the
    next GEMM on the same words, unchanged since, takes the packed copy (its row's ``reuse``)."""

    key: tuple | None = None  # (WGT address, n, k, weight bits, signed): what the packed bytes depend on

    def gemm(self, a: dict, cfg: np.ndarray) -> int:
        """A GEMM: 1 if it reads the operand packed last, else 0 (and it packs its own)."""
        narrow = cfg[CFG_A_BITS] <= 8 and cfg[CFG_W_BITS] <= 8
        key = (a["wgt"], a["n"], a["k"], int(cfg[CFG_W_BITS]), int(cfg[CFG_W_SIGNED]))
        reuse = int(narrow and key == self.key)
        self.key = key if narrow else None
        return reuse

    def after(self, ins: Instruction, spans: list[Block]) -> None:
        """Forget the packed operand when ``ins`` may change its words (a write to them, a HOST step)."""
        if self.key is None:
            return
        packed = Block("read", "WGT", self.key[0], self.key[1] * self.key[2])
        if ins.op == "HOST" or any(b.access == "write" and _overlaps(b, packed) for b in spans):
            self.key = None


#: how far past a deferred load the walk looks for the write that replaces its words
DEFER_HORIZON = 256
_LOADWIN_DEFERRED = 3 + ARGS["LOADWIN"].index("deferred")
_LOADW_DEFERRED = 3 + ARGS["LOADW"].index("deferred")
#: the consumers' columns naming a deferred load's row (+ 1)
_WINDOW = {op: 3 + ARGS[op].index("window") for op in ("GEMM", "DWCONV")}
_WEIGHTS = {op: 3 + ARGS[op].index("weights") for op in ("GEMM", "DWCONV")}


def _overlaps(b: Block, block: Block) -> bool:
    return b.buf == block.buf and b.start < block.end and block.start < b.end


def _same(b: Block, block: Block) -> bool:
    return (b.buf, b.start, b.size) == (block.buf, block.start, block.size)


def _byte_mac_reading(ins: Instruction, spans: list[Block], block: Block, cfg: np.ndarray) -> bool:
    """A GEMM or DWCONV with operands of at most 8 bits that reads all of ``block`` as one operand
    and no other word of it."""
    reads = [b for b in spans if b.access == "read" and _overlaps(b, block)]
    return (ins.op in _WINDOW and cfg[CFG_A_BITS] <= 8 and cfg[CFG_W_BITS] <= 8
            and len(reads) == 1 and _same(reads[0], block))


def _subtract(parts: list[tuple[int, int]], b: Block) -> list[tuple[int, int]]:
    """The word ranges of ``parts`` that block ``b`` does not cover."""
    out = []
    for lo, hi in parts:
        if b.end <= lo or hi <= b.start:
            out.append((lo, hi))
            continue
        if lo < b.start:
            out.append((lo, b.start))
        if b.end < hi:
            out.append((b.end, hi))
    return out


def _unseen_until_replaced(i: int, instructions: list[Instruction], spans: list[list[Block]],
                           row_cfgs: list[np.ndarray], buf: str, consumer) -> list[int] | None:
    """The instructions that read load ``i``'s words (``buf``) before later writes have replaced all
    of them, when each is a ``consumer(ins, spans, block, cfg)`` reading them before any is
    replaced, nothing else reads any of them, nothing writes the DRAM bytes they come from, and no
    HOST or HALT comes first; None otherwise.  Then no instruction sees load i's words, and those
    consumers can read them from DRAM themselves."""
    block = next((b for b in spans[i] if b.access == "write"), None)
    source = next((b for b in spans[i] if b.access == "read"), None)
    if block is None or source is None or block.buf != buf or source.buf != "DRAM":
        return None
    consumers, left = [], [(block.start, block.end)]
    for j in range(i + 1, min(len(instructions), i + 1 + DEFER_HORIZON)):
        ins, sp = instructions[j], spans[j]
        if ins.op in ("HOST", "HALT"):
            return None
        whole = len(left) == 1 and left[0] == (block.start, block.end)
        if whole and consumer(ins, sp, block, row_cfgs[j]):
            consumers.append(j)
        elif any(b.access == "read" and b.buf == buf and b.start < hi and lo < b.end for b in sp for lo, hi in left):
            return None
        writes = [b for b in sp if b.access == "write"]
        if any(_overlaps(b, source) for b in writes):
            return None
        for b in writes:
            if b.buf == buf:
                left = _subtract(left, b)
        if not left:
            return consumers
    return None


def defer_loads(rows: np.ndarray, instructions: list[Instruction], spans: list[list[Block]],
                row_cfgs: list[np.ndarray]) -> None:
    """Mark ``deferred`` each LOADWIN into INP and each dense LOADW whose words no instruction sees
    but GEMMs and DWCONVs with operands of at most 8 bits (``_unseen_until_replaced``), and their
    ``window`` / ``weights`` (1 + the load's row): the value loop skips the load and they gather those
    operands from DRAM themselves, as bytes, with the load's own kernel.  Every buffer word after
    the program and every DRAM byte are the same as without (a dense LOADW cannot fault)."""
    for i, ins in enumerate(instructions[:len(rows)]):
        if ins.op == "LOADWIN":
            npix = ins.args["npix"]
            got = _unseen_until_replaced(i, instructions, spans, row_cfgs, "INP", lambda x, sp, blk, cfg:
                                         _byte_mac_reading(x, sp, blk, cfg) and x.args["m"] == npix)
            if got is not None:
                rows[i, _LOADWIN_DEFERRED] = 1
                for j in got:
                    rows[j, _WINDOW[instructions[j].op]] = i + 1
        elif ins.op == "LOADW" and ins.args["format"] == "dense":
            got = _unseen_until_replaced(i, instructions, spans, row_cfgs, "WGT", _byte_mac_reading)
            if got is not None:
                rows[i, _LOADW_DEFERRED] = 1
                for j in got:
                    rows[j, _WEIGHTS[instructions[j].op]] = i + 1
