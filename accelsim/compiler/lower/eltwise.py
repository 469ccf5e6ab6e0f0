"""Elementwise ops of two tensors on the vector unit: Add (QAdd) as VADD with ONNX Runtime's
QLinearAdd rounding, Mul (QMul) as VMUL with its QLinearMul rounding; the second operand may
broadcast (accelsim.compiler.broadcast).

Operand a streams through INP in double-buffered chunks.  A b of a's shape (or one image's worth,
shared by the images) streams through WGT beside it; a b that repeats with a short period (a
channel vector, a scalar) is loaded once per image (once for all when shared) and read with the
instruction's broadcast period ``bn``.
"""

from __future__ import annotations

import numpy as np

from isa import Instruction
from isa.requant import quantize_multiplier
from isa.table import ADD_RECORD_WORDS, BY_MNEMONIC

from ...chip import ChipConfig
from ..broadcast import Broadcast, broadcast_of
from ..ir import ModelError, QAdd, QBinary, QMul
from ..records import LayerRecord
from .builder import ProgramBuilder
from .common import STREAM_TOKENS, bits_of, dram_types, slot_credits
from .registry import lowers

MAX_PERIOD = BY_MNEMONIC["VADD"].field("bn").max
MAX_CHUNK = min(16384, BY_MNEMONIC["VADD"].field("n").max, BY_MNEMONIC["LOAD"].field("x").max)


def _chunk_limit(chip: ChipConfig, bits: int, b_words: int) -> int:
    words = chip.buffer_words()
    limit = max(1, min(MAX_CHUNK, words["INP"] // 2, (words["WGT"] - b_words) // 2, words["OUT"] // 2))
    return limit - (limit % 2) if bits == 4 and limit > 1 else limit


def _pieces(count: int, bc: Broadcast, limit: int) -> list[tuple[int, int]]:
    """(first element, elements) of each chunk: within an image when b differs per image or is
    one image shared, within one period when b streams with a long period, multiples of a short
    period otherwise."""
    if bc.same:
        return [(e0, min(limit, count - e0)) for e0 in range(0, count, limit)]
    span = bc.image if bc.period <= MAX_PERIOD else bc.period
    step = limit if bc.period > MAX_PERIOD else max(bc.period, limit - limit % bc.period)
    return [(s0 + e0, min(step, span - e0)) for s0 in range(0, count, span) for e0 in range(0, span, step)]


def binary_program(op: str, count: int, bc: Broadcast, chip: ChipConfig, config: dict, *, a_addr: int,
                   b_addr: int, b_mem: str, param_addr: int, record_words: int, output_addr: int,
                   credits: bool = True) -> list[Instruction]:
    """VADD / VMUL of a (``count`` elements) and b broadcast by ``bc``, in chunks, double-buffered.

    The op's parameter record (``record_words`` words) is at ``param_addr``; a goes to INP, b to
    WGT, the result to OUT.
    """
    config, a_mem, o_mem = dram_types(config)
    bits, b_bits = bits_of(a_mem), bits_of(b_mem)
    short = not bc.same and bc.period <= MAX_PERIOD
    b_words = 2 * bc.period if short else 0
    limit = _chunk_limit(chip, bits, b_words)
    prog = [Instruction("CONFIG", **config)] + (slot_credits() if credits else [])
    prog.append(Instruction("LOAD", buf="PRM", dtype="s32", dram=param_addr, sram=0, x=record_words, y=1,
                            y_stride=0))
    if (bits == 4 or b_bits == 4) and not bc.same and (bc.period % 2 or bc.image % 2):
        raise ValueError("a broadcast 4-bit operand of an odd length per period or image does not start on a byte")
    vectors, last_vec = 0, -1
    for i, (e0, n) in enumerate(_pieces(count, bc, limit)):
        slot = (i % 2) * limit
        loads = [Instruction("LOAD", buf="INP", dtype=a_mem, dram=a_addr + e0 * bits // 8, sram=slot, x=n, y=1,
                             y_stride=0, pop_next=1)]
        if short:
            vec = bc.b_index(e0) // bc.period
            if vec != last_vec:  # a new image's vector (or the one shared vector, once)
                vectors, last_vec = vectors + 1, vec
                loads.append(Instruction("LOAD", buf="WGT", dtype=b_mem, dram=b_addr + vec * bc.period * b_bits // 8,
                                         sram=2 * limit + (vectors % 2) * (b_words // 2), x=bc.period, y=1,
                                         y_stride=0))
            b_at, bn = 2 * limit + (vectors % 2) * (b_words // 2), bc.period
        else:
            loads.append(Instruction("LOAD", buf="WGT", dtype=b_mem, dram=b_addr + bc.b_index(e0) * b_bits // 8,
                                     sram=slot, x=n, y=1, y_stride=0))
            b_at, bn = slot, 0
        last = loads[-1]
        loads[-1] = Instruction("LOAD", **{**last.args, "push_next": 1})
        prog += loads
        prog.append(Instruction(op, a_buf="INP", a=slot, b_buf="WGT", b=b_at, bn=bn, dst_buf="OUT", dst=slot, n=n,
                                prm=0, **STREAM_TOKENS))
        prog.append(Instruction("STORE", buf="OUT", dtype=o_mem, dram=output_addr + e0 * bits // 8, sram=slot, x=n,
                                y=1, y_stride=0, pop_prev=1, push_prev=1))
    return prog


def add_program(count: int, chip: ChipConfig, config: dict, *, a_addr: int, b_addr: int, param_addr: int,
                output_addr: int, credits: bool = True) -> list[Instruction]:
    """VADD of two packed tensors of ``count`` elements (the 9-word add record at ``param_addr``)."""
    same = Broadcast(count, count, True)
    mem = dram_types(config)[1]
    return binary_program("VADD", count, same, chip, config, a_addr=a_addr, b_addr=b_addr, b_mem=mem,
                          param_addr=param_addr, record_words=ADD_RECORD_WORDS, output_addr=output_addr,
                          credits=credits)


def _f32_bits(v) -> int:
    return int(np.float32(v).view(np.int32))


def add_record(a_zp: int, b_zp: int, ratio_a: np.float32, ratio_b: np.float32) -> np.ndarray:
    """The 9-word VADD record in fp32 mode: zero points and the float32 ratios s_a/s_y, s_b/s_y."""
    return np.array([a_zp, b_zp, _f32_bits(ratio_a), 0, _f32_bits(ratio_b), 0, 0, 0, 0], np.int64)


def mul_record(a_zp: int, b_zp: int, ratio: np.float32) -> np.ndarray:
    """The 4-word VMUL record in fp32 mode: zero points and float32(float32(s_a * s_b) / s_y)."""
    return np.array([a_zp, b_zp, _f32_bits(ratio), 0], np.int64)


#: TFLite's add: inputs shifted left by 20 bits before their rescale (8-bit operands)
ADD_LEFT_SHIFT = 20


def _multiplier(real: float, mode: str) -> tuple[int, int]:
    return quantize_multiplier(real, single_rounding=mode == "fixed_single")


def fixed_add_record(a_zp: int, b_zp: int, s_a: float, s_b: float, s_y: float, mode: str) -> np.ndarray:
    """The 9-word VADD record in a fixed mode, as TFLite's add prepares it (doubles): each input
    rescaled by s_in / (2 max(s_a, s_b)), the sum by 2 max(s_a, s_b) / (2^20 s_y)."""
    twice_max = 2.0 * max(float(s_a), float(s_b))
    am, ash = _multiplier(float(s_a) / twice_max, mode)
    bm, bsh = _multiplier(float(s_b) / twice_max, mode)
    om, osh = _multiplier(twice_max / ((1 << ADD_LEFT_SHIFT) * float(s_y)), mode)
    return np.array([a_zp, b_zp, am, ash, bm, bsh, om, osh, ADD_LEFT_SHIFT], np.int64)


def fixed_mul_record(a_zp: int, b_zp: int, s_a: float, s_b: float, s_y: float, mode: str) -> np.ndarray:
    """The 4-word VMUL record in a fixed mode: QuantizeMultiplier of s_a * s_b / s_y, a float32
    expression as TFLite's mul evaluates it."""
    real = np.float32(np.float32(s_a) * np.float32(s_b)) / np.float32(s_y)
    m, shift = _multiplier(float(real), mode)
    return np.array([a_zp, b_zp, m, shift], np.int64)


def shared_add_record(a_zp: int, b_zp: int, s_a: float, s_b: float, s_y: float) -> np.ndarray:
    """The 9-word VADD record in fixed_shared mode, as XNNPACK prepares its qs8 add: float32
    ratios r = s_in / s_y, shift = 20 - exponent(max r), multipliers lrintf(r * 2^shift)."""
    ra, rb = np.float32(s_a) / np.float32(s_y), np.float32(s_b) / np.float32(s_y)
    exponent = int(np.array(max(ra, rb), np.float32).view(np.uint32) >> 23) - 127
    shift = 20 - exponent
    if not 1 <= shift <= 31:
        raise ValueError(f"input / output scale ratios {float(ra):g}, {float(rb):g} are outside XNNPACK's add range")
    am, bm = (int(np.rint(np.float32(np.ldexp(r, shift)))) for r in (ra, rb))
    return np.array([a_zp, b_zp, am, 0, bm, 0, 0, shift, 0], np.int64)


def _record(node: QBinary, a, c, y) -> tuple[str, np.ndarray]:
    if node.requant == "fixed_shared":
        return "VADD", shared_add_record(a.zero_point, c.zero_point, float(a.scale), float(c.scale), float(y.scale))
    if node.requant != "fp32":
        scales = (float(a.scale), float(c.scale), float(y.scale), node.requant)
        if isinstance(node, QMul):
            return "VMUL", fixed_mul_record(a.zero_point, c.zero_point, *scales)
        return "VADD", fixed_add_record(a.zero_point, c.zero_point, *scales)
    if isinstance(node, QMul):
        ratio = np.float32(np.float32(a.scale) * np.float32(c.scale)) / np.float32(y.scale)
        return "VMUL", mul_record(a.zero_point, c.zero_point, ratio)
    ra, rb = np.float32(a.scale) / np.float32(y.scale), np.float32(c.scale) / np.float32(y.scale)
    return "VADD", add_record(a.zero_point, c.zero_point, ra, rb)


@lowers(QAdd, QMul)
def lower_binary(node: QBinary, b: ProgramBuilder) -> None:
    a, c, y = b.tensor(node.a), b.tensor(node.b), b.tensor(node.output)
    try:
        op, record = _record(node, a, c, y)
    except ValueError as e:
        raise ModelError(node.name, node.op_type, str(e)) from None
    param_addr = b.alloc(4 * record.size)
    b.place_words(param_addr, record)
    config = {"a": a.dtype, "w": "s8", "o": y.dtype, "o_zp": y.zero_point, "mode": node.requant,
              "a_mem": b.storage(a.name), "o_mem": b.storage(y.name),
              "clamp_min": node.clamp[0], "clamp_max": node.clamp[1]}
    bc = broadcast_of(a.shape, c.shape, a.rowmajor)
    body = binary_program(op, int(np.prod(a.shape)), bc, b.chip, config, a_addr=b.addr(a.name),
                          b_addr=b.addr(c.name), b_mem=b.storage(c.name), param_addr=param_addr,
                          record_words=record.size, output_addr=b.addr(y.name))
    b.emit(body, LayerRecord(node.name, node.op_type, shape=f"{a.shape}{'+' if op == 'VADD' else '*'}{c.shape}"
                             f"->{y.shape}", bits=a.dtype))
