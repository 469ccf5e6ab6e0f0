"""Elementwise ops of two tensors on the vector unit: the residual add (QAdd) as VADD with ONNX
Runtime's QLinearAdd rounding."""

from __future__ import annotations

import numpy as np

from isa import Instruction
from isa.semantics import ADD_RECORD_WORDS

from ...chip import ChipConfig
from ..ir import QAdd
from ..records import LayerRecord
from .builder import ProgramBuilder
from .common import STREAM_TOKENS, bits_of, dram_types, slot_credits
from .registry import lowers


def add_program(count: int, chip: ChipConfig, config: dict, *, a_addr: int, b_addr: int, param_addr: int,
                output_addr: int, credits: bool = True) -> list[Instruction]:
    """VADD of two packed tensors of ``count`` elements, in chunks, double-buffered.

    The 9-word add record is at ``param_addr``; a goes to INP, b to WGT, the sum to OUT.
    """
    words = chip.buffer_words()
    config, a_mem, o_mem = dram_types(config)
    bits = bits_of(a_mem)
    chunk = max(1, min(count, 16384, words["INP"] // 2, words["WGT"] // 2, words["OUT"] // 2))  # LOAD x: 14 bits
    if bits == 4 and chunk % 2:
        chunk -= 1
    prog = [Instruction("CONFIG", **config)] + (slot_credits() if credits else [])
    prog.append(Instruction("LOAD", buf="PRM", dtype="s32", dram=param_addr, sram=0, x=ADD_RECORD_WORDS, y=1,
                            y_stride=0))
    for i, e0 in enumerate(range(0, count, chunk)):
        n = min(chunk, count - e0)
        slot = (i % 2) * chunk
        off = e0 * bits // 8
        prog.append(Instruction("LOAD", buf="INP", dtype=a_mem, dram=a_addr + off, sram=slot, x=n, y=1,
                                y_stride=0, pop_next=1))
        prog.append(Instruction("LOAD", buf="WGT", dtype=a_mem, dram=b_addr + off, sram=slot, x=n, y=1,
                                y_stride=0, push_next=1))
        prog.append(Instruction("VADD", a_buf="INP", a=slot, b_buf="WGT", b=slot, dst_buf="OUT", dst=slot, n=n, prm=0,
                                **STREAM_TOKENS))
        prog.append(Instruction("STORE", buf="OUT", dtype=o_mem, dram=output_addr + off, sram=slot, x=n, y=1,
                                y_stride=0, pop_prev=1, push_prev=1))
    return prog


def add_record(a_zp: int, b_zp: int, ratio_a: np.float32, ratio_b: np.float32) -> np.ndarray:
    """The 9-word VADD record in fp32 mode: zero points and the float32 ratios s_a/s_y, s_b/s_y."""
    return np.array([a_zp, b_zp, int(np.float32(ratio_a).view(np.int32)), 0, int(np.float32(ratio_b).view(np.int32)),
                     0, 0, 0, 0], np.int64)


@lowers(QAdd)
def lower_add(node: QAdd, b: ProgramBuilder) -> None:
    a, c, y = b.tensor(node.a), b.tensor(node.b), b.tensor(node.output)
    ra, rb = np.float32(a.scale) / np.float32(y.scale), np.float32(c.scale) / np.float32(y.scale)
    param_addr = b.alloc(4 * ADD_RECORD_WORDS)
    b.place_words(param_addr, add_record(a.zero_point, c.zero_point, ra, rb))
    config = {"a": a.dtype, "w": "s8", "o": y.dtype, "o_zp": y.zero_point, "mode": "fp32",
              "a_mem": b.storage(a.name), "o_mem": b.storage(y.name),
              "clamp_min": node.clamp[0], "clamp_max": node.clamp[1]}
    body = add_program(int(np.prod(a.shape)), b.chip, config, a_addr=b.addr(a.name), b_addr=b.addr(c.name),
                       param_addr=param_addr, output_addr=b.addr(y.name))
    b.emit(body, LayerRecord(node.name, node.op_type, shape=f"{a.shape}+{c.shape}->{y.shape}", bits=a.dtype))
