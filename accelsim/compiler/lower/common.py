"""What every lowering module shares: the token protocol between the load, compute and store units
(slot credits, barriers, streaming vector ops) and the CONFIG fields of a layer."""

from __future__ import annotations

import numpy as np

from isa import Instruction

#: tokens of a streaming vector instruction: takes its loaded input (pop_prev) and a free output
#: slot (pop_next) before it runs, then frees the input slot and hands the output to the store
STREAM_TOKENS = dict(pop_prev=1, pop_next=1, push_prev=1, push_next=1)


def slot_credits(input_slots: int = 2) -> list[Instruction]:
    """The initial credits of a layer (as VTA does): ``input_slots`` free input slots for the load
    unit, two free output slots for the compute unit."""
    return ([Instruction("NOP", unit="compute", push_prev=1)] * input_slots
            + [Instruction("NOP", unit="store", push_prev=1)] * 2)


def barrier(slots: int) -> list[Instruction]:
    """Drain the token queues between layers: compute waits for the last stores (the two
    output-slot credits still queued), then hands the load unit one token; the load unit drains
    the ``slots`` input-slot credits the last layer pushed and takes that token."""
    return ([Instruction("NOP", unit="compute", pop_next=1)] * 2
            + [Instruction("NOP", unit="compute", push_prev=1)]
            + [Instruction("NOP", unit="load", pop_next=1)] * (slots + 1))


def dram_types(config: dict) -> tuple[dict, str, str]:
    """CONFIG fields without the DRAM element types ``a_mem`` / ``o_mem`` of the input and output
    tensors, and those types (by default the operand types ``a`` / ``o``: a 4-bit tensor whose rows
    would not end on a byte is stored in 8 bits, and the MAC array still reads 4-bit operands)."""
    cfg = dict(config)
    return cfg, cfg.pop("a_mem", cfg.get("a")), cfg.pop("o_mem", cfg.get("o"))


def bits_of(dtype: str) -> int:
    """The width of an element type name ("u8" -> 8)."""
    return int(dtype[1:])


def acc_bits_for(a_bits: int, w_bits: int) -> int:
    """Accumulator width: 32 bits for operands of at most 8 bits, 48 with a 16-bit operand."""
    return 32 if max(a_bits, w_bits) <= 8 else 48


def param_table(scale: np.ndarray, bias: np.ndarray, chunk: int) -> np.ndarray:
    """The REQUANT parameter table of a layer whose channels go in chunks of ``chunk``: for each
    chunk at word 3 * c0, bias[n], the fp32 scale bits[n] and shift[n] = 0."""
    c = bias.size
    table = np.zeros(3 * c, np.int64)
    for c0 in range(0, c, chunk):
        n = min(chunk, c - c0)
        table[3 * c0:3 * c0 + n] = bias[c0:c0 + n]
        table[3 * c0 + n:3 * c0 + 2 * n] = scale[c0:c0 + n].astype(np.float32).view(np.int32)
    return table
