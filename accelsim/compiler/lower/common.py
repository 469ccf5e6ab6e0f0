"""What every lowering module shares: the token protocol between the load, compute and store units
(slot credits, barriers, streaming vector ops) and the CONFIG fields of a layer."""

from __future__ import annotations

import numpy as np

from isa import Instruction
from isa.requant import fp64_words, quantize_multiplier

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


def requant_scale(s_in: np.float32, w_scale: np.ndarray, s_out: np.float32) -> np.ndarray:
    """Per-channel fp32 requant scale in ONNX Runtime's order: float32(float32(s_in * s_w) / s_out)."""
    return (np.float32(s_in) * w_scale.astype(np.float32)) / np.float32(s_out)


def requant_columns(mode: str, s_in: np.float32, w_scale: np.ndarray, s_out: np.float32) -> tuple[np.ndarray, np.ndarray]:
    """The multiplier and shift words of each channel in REQUANT ``mode`` (docs/numerics.md):
    fp32, the float32 scale's bits and 0; fixed modes, TFLite's QuantizeMultiplier of
    double(s_in) * double(s_w) / double(s_out); fp64_away, that double's two words."""
    if mode == "fp32":
        scale = requant_scale(s_in, w_scale, s_out).astype(np.float32)
        return scale.view(np.int32).astype(np.int64), np.zeros(scale.size, np.int64)
    real = np.float64(s_in) * np.asarray(w_scale, np.float32).astype(np.float64) / np.float64(s_out)
    if mode == "fp64_away":
        return fp64_words(real)
    pairs = [quantize_multiplier(float(r), single_rounding=mode == "fixed_single") for r in real]
    mult = np.array([m for m, _ in pairs], np.int64)
    shift = np.array([s for _, s in pairs], np.int64)
    if (shift > 30).any():
        raise ValueError(f"a requant multiplier of {float(real.max()):g} (s_in * s_w / s_out) is too large for "
                         f"{mode} rounding (at most 2^30)")
    return mult, shift


def param_table(mult: np.ndarray, shift: np.ndarray, bias: np.ndarray, chunk: int) -> np.ndarray:
    """The REQUANT parameter table of a layer whose channels go in chunks of ``chunk``: for each
    chunk at word 3 * c0, bias[n], multiplier[n], shift[n]."""
    c = bias.size
    table = np.zeros(3 * c, np.int64)
    for c0 in range(0, c, chunk):
        n = min(chunk, c - c0)
        for row, col in enumerate((bias, mult, shift)):
            table[3 * c0 + row * n:3 * c0 + (row + 1) * n] = np.asarray(col[c0:c0 + n], np.int64)
    return table
