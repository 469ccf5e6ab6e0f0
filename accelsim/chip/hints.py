"""The lowering's hints to the value loop (columns of accelsim.chip.rows that are not instruction
fields): work the loop may skip because no instruction could see the difference.

* ``PackedWeights``: a GEMM whose weight words, and their type, are unchanged since the GEMM before
  it packed them takes the packed copy (GEMM's ``reuse``).
* ``keep_packed``: a GEMM whose weights a LOADW decoded from DRAM bytes that nothing in the
  program writes packs them once into a slot of the simulator's store, kept across runs on the same DRAM
  image (GEMM's ``packed``; ONNX Runtime's prepacked weights).
* ``kept_readers``: a LOADW whose words only GEMMs with kept slots read is skipped once those
  slots are filled (LOADW's ``readers``).
* ``defer_loads``: a LOADWIN into INP or a dense LOADW whose words only byte-path GEMMs read before
  later writes replace them all is skipped; those GEMMs gather the operand from DRAM themselves
  (LOADWIN's / LOADW's ``deferred``, GEMM's ``window`` / ``weights``).
* ``fuse_requant``: a byte-path GEMM or DWCONV whose sums the REQUANT right after it reads, when
  nothing else reads them before later writes replace them, requantizes them into that REQUANT's
  destination itself (GEMM's / DWCONV's ``requant``, REQUANT's ``fused``).

All are static: they follow program order over the instructions' read and write spans
(isa.spans), as the lowering walk does.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from isa.encoding import Instruction
from isa.spans import Block
from isa.table import DTYPES
from isa.weights import stream_bytes_bound
from kernels.mac import weight_workspace
from kernels.state import CFG_A_BITS, CFG_ACC_BITS, CFG_MODE, CFG_W_BITS, CFG_W_SIGNED, MODE_FP32

from .rows import ARGS


def _byte_path(cfg: np.ndarray) -> bool:
    """A CONFIG whose operands have at most 8 bits: GEMM's and DWCONV's byte path."""
    return cfg[CFG_A_BITS] <= 8 and cfg[CFG_W_BITS] <= 8


@dataclass
class PackedWeights:
    """Which weight operand GEMM's byte path (operands of at most 8 bits) packed last, so that the
    next GEMM on the same words, unchanged since, takes the packed copy (its row's ``reuse``)."""

    key: tuple | None = None  # (WGT address, n, k, weight bits, signed): what the packed bytes depend on

    def gemm(self, a: dict, cfg: np.ndarray) -> int:
        """A GEMM: 1 if it reads the operand packed last, else 0 (and it packs its own)."""
        narrow = _byte_path(cfg)
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


_GEMM_REUSE = 3 + ARGS["GEMM"].index("reuse")
_GEMM_PACKED = 3 + ARGS["GEMM"].index("packed")
_LOADW_READERS = 3 + ARGS["LOADW"].index("readers")
#: columns of Lowered.kept: a slot's bytes and row-sum words in the store, its DRAM source
KEPT_COLUMNS = ("byte_at", "nbytes", "sum_at", "words", "src_lo", "src_hi")


def keep_packed(rows: np.ndarray, instructions: list[Instruction], spans: list[list[Block]],
                row_cfgs: list[np.ndarray]) -> np.ndarray:
    """Give each byte-path GEMM whose weight words a LOADW wrote (every word as it wrote it) from
    DRAM bytes no instruction writes (its stream's bytes, at most isa.weights.stream_bytes_bound),
    before any HOST step, a slot (GEMM's ``packed`` = 1 + slot; a GEMM that ``reuse``s the
    packed operand takes its packer's slot).  Its packed strips
    depend only on the DRAM image then (and the simulator keeps a slot only while its source is
    not an input tensor), so they are packed on a first run and read on every later one.  GEMMs
    on the same words of the same LOADW arguments share a slot (a batch repeats its layers).
    Returns the slot table (``KEPT_COLUMNS``)."""
    dram_writes = [b for sp in spans for b in sp if b.access == "write" and b.buf == "DRAM"]
    live: dict[int, Block] = {}  # LOADW row -> its WGT block while every word holds what it wrote
    slots: dict[tuple, int] = {}
    table: list[list[int]] = []
    last = 0  # 1 + the slot of the last GEMM that packed its operand
    for i, ins in enumerate(instructions[:len(rows)]):
        if ins.op == "HOST":
            break
        if ins.op == "GEMM":
            if rows[i, _GEMM_REUSE]:
                rows[i, _GEMM_PACKED] = last
            else:
                last = _slot(i, ins, spans, row_cfgs[i], live, dram_writes, slots, table, instructions)
                rows[i, _GEMM_PACKED] = last
        writes = [b for b in spans[i] if b.access == "write"]
        for j in [j for j, blk in live.items() if any(_overlaps(b, blk) for b in writes)]:
            del live[j]
        if ins.op == "LOADW":
            live[i] = next(b for b in writes if b.buf == "WGT")
    return np.array(table, np.int64).reshape(-1, len(KEPT_COLUMNS))


def _slot(i: int, ins: Instruction, spans: list[list[Block]], cfg: np.ndarray, live: dict[int, Block],
          dram_writes: list[Block], slots: dict[tuple, int], table: list[list[int]],
          instructions: list[Instruction]) -> int:
    """1 + the slot of GEMM ``i`` (a new one unless its key has one), or 0 when it has none."""
    if not _byte_path(cfg):
        return 0
    read = next(b for b in spans[i] if b.access == "read" and b.buf == "WGT")
    load = next((j for j, blk in live.items() if blk.start <= read.start and read.end <= blk.end), None)
    if load is None:
        return 0
    la, a = instructions[load].args, ins.args
    source = Block("read", "DRAM", la["dram"], stream_bytes_bound(la["format"], la["count"], DTYPES[la["dtype"]][0],
                                                                 la["param"]))
    if any(_overlaps(b, source) for b in dram_writes):
        return 0
    key = (la["dram"], la["count"], la["dtype"], la["format"], la["param"], la["zero"],
           read.start - live[load].start, a["n"], a["k"], int(cfg[CFG_W_BITS]), int(cfg[CFG_W_SIGNED]))
    if key not in slots:
        nbytes, words = (int(x) for x in weight_workspace(a["n"], a["k"]))
        at = table[-1] if table else [0, 0, 0, 0]
        table.append([at[0] + at[1], nbytes, at[2] + at[3], words, source.start, source.end])
        slots[key] = len(slots)
    return 1 + slots[key]


def kept_readers(rows: np.ndarray, instructions: list[Instruction], spans: list[list[Block]],
                 row_cfgs: list[np.ndarray]) -> np.ndarray:
    """For each LOADW (not deferred) whose words only GEMMs with a kept slot (``keep_packed``) read
    before later writes replace them all (``_unseen_until_replaced``), the list of those slots:
    returns them as one array of [count, slot, ...] records, and sets the LOADW's ``readers`` to 1 +
    where its record starts.  Once every slot of its record is filled no instruction reads the
    words it would write: the value loop skips it (its stream decoded without fault when they were
    filled, and its DRAM bytes are unchanged since)."""
    lists: list[int] = []
    for i, ins in enumerate(instructions[:len(rows)]):
        if ins.op != "LOADW" or rows[i, _LOADW_DEFERRED]:
            continue
        got = _unseen_until_replaced(i, instructions, spans, row_cfgs, "WGT", _kept_gemm(rows))
        if got:
            rows[i, _LOADW_READERS] = 1 + len(lists)
            lists += [len(got)] + [int(rows[j, _GEMM_PACKED]) - 1 for j in got]
    return np.array(lists, np.int64)


def _kept_gemm(rows: np.ndarray):
    """A consumer for _unseen_until_replaced: GEMM j has a kept slot and reads no word of the
    block but its weights."""
    def consumer(j: int, ins: Instruction, sp: list[Block], block: Block, cfg: np.ndarray) -> bool:
        reads = [b for b in sp if b.access == "read" and _overlaps(b, block)]
        return ins.op == "GEMM" and rows[j, _GEMM_PACKED] > 0 and len(reads) == 1 and reads[0].buf == "WGT"
    return consumer


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
    return (ins.op in _WINDOW and _byte_path(cfg)
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


def _reads_any(spans: list[Block], buf: str, parts: list[tuple[int, int]]) -> bool:
    """Whether an instruction's ``spans`` read a word of ``buf`` in the ranges ``parts``."""
    return any(b.access == "read" and b.buf == buf and b.start < hi and lo < b.end for b in spans for lo, hi in parts)


def _unwritten(parts: list[tuple[int, int]], spans: list[Block], buf: str) -> list[tuple[int, int]]:
    """The ranges of ``parts`` (words of ``buf``) that an instruction's ``spans`` do not write."""
    for b in spans:
        if b.access == "write" and b.buf == buf:
            parts = _subtract(parts, b)
    return parts


def _unseen_until_replaced(i: int, instructions: list[Instruction], spans: list[list[Block]],
                           row_cfgs: list[np.ndarray], buf: str, consumer) -> list[int] | None:
    """The instructions that read load ``i``'s words (``buf``) before later writes have replaced all
    of them, when each is a ``consumer(j, ins, spans, block, cfg)`` reading them before any is
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
        if whole and consumer(j, ins, sp, block, row_cfgs[j]):
            consumers.append(j)
        elif _reads_any(sp, buf, left):
            return None
        if any(b.access == "write" and _overlaps(b, source) for b in sp):
            return None
        left = _unwritten(left, sp, buf)
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
            got = _unseen_until_replaced(i, instructions, spans, row_cfgs, "INP", lambda j, x, sp, blk, cfg:
                                         _byte_mac_reading(x, sp, blk, cfg) and x.args["m"] == npix)
            if got is not None:
                rows[i, _LOADWIN_DEFERRED] = 1
                for j in got:
                    rows[j, _WINDOW[instructions[j].op]] = i + 1
        elif ins.op == "LOADW" and ins.args["format"] == "dense":
            got = _unseen_until_replaced(i, instructions, spans, row_cfgs, "WGT",
                                         lambda j, x, sp, blk, cfg: _byte_mac_reading(x, sp, blk, cfg))
            if got is not None:
                rows[i, _LOADW_DEFERRED] = 1
                for j in got:
                    rows[j, _WEIGHTS[instructions[j].op]] = i + 1


_REQUANT = {op: 3 + ARGS[op].index("requant") for op in ("GEMM", "DWCONV")}
_FUSED = 3 + ARGS["REQUANT"].index("fused")


def _replaced_before_read(block: Block, after: int, instructions: list[Instruction],
                          spans: list[list[Block]]) -> bool:
    """Whether writes after instruction ``after`` replace every word of ``block`` before any
    instruction reads one of them, with no HOST or HALT first (within DEFER_HORIZON)."""
    left = [(block.start, block.end)]
    for j in range(after + 1, min(len(instructions), after + 1 + DEFER_HORIZON)):
        if instructions[j].op in ("HOST", "HALT"):
            return False
        if _reads_any(spans[j], block.buf, left):
            return False
        left = _unwritten(left, spans[j], block.buf)
        if not left:
            return True
    return False


def _fusable(i: int, instructions: list[Instruction], spans: list[list[Block]], row_cfgs: list[np.ndarray]) -> bool:
    """GEMM or DWCONV ``i`` (operands of at most 8 bits, not accumulating, accumulators of at least
    32 bits: its ACC words are its exact int32 sums; the fp32 requant mode) and the REQUANT right
    after it, under the same CONFIG, reading exactly those words row by row, when nothing else
    reads them before later writes replace them all."""
    ins, cfg = instructions[i], row_cfgs[i]
    if i + 1 >= len(instructions) or instructions[i + 1].op != "REQUANT" or ins.args["accumulate"]:
        return False
    if not (_byte_path(cfg) and cfg[CFG_ACC_BITS] >= 32 and cfg[CFG_MODE] == MODE_FP32):
        return False
    rq = instructions[i + 1].args
    if not np.array_equal(row_cfgs[i + 1], cfg) or rq["m"] != ins.args["m"] or \
            rq["n"] != ins.args["n" if ins.op == "GEMM" else "c"]:
        return False
    acc = next(b for b in spans[i] if b.access == "write")
    reads = [b for b in spans[i + 1] if b.access == "read" and _overlaps(b, acc)]
    if len(reads) != 1 or not _same(reads[0], acc):  # (REQUANT writes INP or OUT, never ACC)
        return False
    return _replaced_before_read(acc, i + 1, instructions, spans)


def fuse_requant(rows: np.ndarray, instructions: list[Instruction], spans: list[list[Block]],
                 row_cfgs: list[np.ndarray]) -> None:
    """Set GEMM's / DWCONV's ``requant`` (1 + the REQUANT's row) and that REQUANT's ``fused`` for each
    pair ``_fusable`` finds: the MAC requantizes its sums into the REQUANT's destination and the
    REQUANT is skipped (kernels.mac).  No instruction could see the ACC words it no longer writes,
    so every buffer word after the program and every DRAM byte are the same as without."""
    for i, ins in enumerate(instructions[:len(rows) - 1]):
        if ins.op in _REQUANT and _fusable(i, instructions, spans, row_cfgs):
            rows[i, _REQUANT[ins.op]] = i + 2
            rows[i + 1, _FUSED] = 1
