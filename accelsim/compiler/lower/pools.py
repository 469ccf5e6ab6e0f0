"""Pools on the vector unit: MAXPOOL over gathered windows (QMaxPool), window sums and a
requantization per divisor or the exact integer mean (QAvgPool), and SUMPOOL + REQUANT over the
whole image (QGlobalAvgPool)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import numpy as np

from isa import Instruction
from isa.quant import qrange

from ...chip import ChipConfig
from ..ir import ModelError, QAvgPool, QGlobalAvgPool, QMaxPool, QTensor
from ..records import LayerRecord
from .builder import ProgramBuilder
from .common import STREAM_TOKENS, bits_of, dram_types, slot_credits
from .registry import lowers


@dataclass(frozen=True)
class PoolLayer:
    """A pool over NHWC data (padding reads ``pad_value``: the type's minimum for max)."""

    name: str
    in_h: int
    in_w: int
    channels: int
    k_h: int
    k_w: int
    stride_h: int = 1
    stride_w: int = 1
    pad_top: int = 0
    pad_left: int = 0
    out_h: int = 1
    out_w: int = 1
    dilation: int = 1
    batch: int = 1

    @property
    def pixels(self) -> int:
        return self.batch * self.out_h * self.out_w

    def setwin(self, pad_value: int) -> Instruction:
        return Instruction("SETWIN", in_h=self.in_h, in_w=self.in_w, in_c=self.channels, k_h=self.k_h, k_w=self.k_w,
                           stride_h=self.stride_h, stride_w=self.stride_w, dil_h=self.dilation, dil_w=self.dilation,
                           pad_top=self.pad_top, pad_left=self.pad_left, out_w=self.out_w, pad_value=pad_value,
                           out_h=self.out_h if self.batch > 1 else 0)


def pool_layer(node, x: QTensor, y: QTensor) -> PoolLayer:
    """The PoolLayer of a 2-D pool node from NCHW shapes (one dilation for both axes)."""
    if node.dilation[0] != node.dilation[1]:
        raise ModelError(node.name, node.op_type, "different vertical and horizontal dilations")
    return PoolLayer(node.name, x.shape[2], x.shape[3], x.shape[1], node.kernel[0], node.kernel[1], node.stride[0],
                     node.stride[1], node.pads[0], node.pads[1], y.shape[2], y.shape[3], node.dilation[0], x.shape[0])


def _record(node, x: QTensor, y: QTensor) -> LayerRecord:
    return LayerRecord(node.name, node.op_type, shape=f"{x.shape}->{y.shape}", bits=x.dtype)


# ------------------------------------------------------------------------------------------ max pool
def pool_program(layer: PoolLayer, chip: ChipConfig, dtype: str, pad_value: int, *, input_addr: int,
                 output_addr: int, credits: bool = True) -> list[Instruction]:
    """MAXPOOL over gathered windows, pixel tiles x channel chunks, double-buffered."""
    words = chip.buffer_words()
    window, pixels, bits = layer.k_h * layer.k_w, layer.pixels, bits_of(dtype)
    nc = layer.channels
    while 2 * window * nc > words["INP"] and nc > 1:
        nc = -(-nc // 2)
    tp = max(1, min(pixels, 4096, words["INP"] // (2 * window * nc), words["OUT"] // (2 * nc)))
    prog = [layer.setwin(pad_value)] + (slot_credits() if credits else [])
    a_slot, o_slot = tp * window * nc, tp * nc
    step = 0
    for p0 in range(0, pixels, tp):
        n_pix = min(tp, pixels - p0)
        for c0 in range(0, layer.channels, nc):
            cc = min(nc, layer.channels - c0)
            slot = step % 2
            step += 1
            prog.append(Instruction("LOADWIN", buf="INP", dtype=dtype, dram=input_addr, sram=slot * a_slot, pix0=p0,
                                    npix=n_pix, c0=c0, nc=cc, pop_next=1, push_next=1))
            # the output slot is claimed (pop_next) before the MAXPOOL writes it
            prog.append(Instruction("MAXPOOL", src_buf="INP", src=slot * a_slot, dst_buf="OUT", dst=slot * o_slot,
                                    m=n_pix, r=window, c=cc, **STREAM_TOKENS))
            prog.append(Instruction("STORE", buf="OUT", dtype=dtype, dram=output_addr + (p0 * layer.channels + c0) * bits // 8,
                                    sram=slot * o_slot, x=cc, y=n_pix, y_stride=layer.channels, pop_prev=1, push_prev=1))
    return prog


@lowers(QMaxPool)
def lower_maxpool(node: QMaxPool, b: ProgramBuilder) -> None:
    x, y = b.tensor(node.input), b.tensor(node.output)
    layer = pool_layer(node, x, y)
    if b.storage(x.name) != b.storage(y.name):
        raise AssertionError("a max pool keeps its tensor's storage type")
    body = pool_program(layer, b.chip, b.storage(x.name), qrange(x.dtype)[0], input_addr=b.addr(x.name),
                        output_addr=b.addr(y.name))
    b.emit(body, _record(node, x, y))


# ------------------------------------------------------------------------------------------ global average
def global_avgpool_program(pixels: int, channels: int, chip: ChipConfig, config: dict, *, input_addr: int,
                           param_addr: int, output_addr: int, credits: bool = True, images: int = 1,
                           tail: Optional[tuple[int, str]] = None) -> list[Instruction]:
    """Per image: SUMPOOL over chunks of at most 1023 positions (accumulating), then REQUANT and
    STORE of its C outputs (``pixels`` per image; images one after another in DRAM).

    The parameter table at ``param_addr`` holds bias[C] = 0, the fp32 scale s_in / (s_out * HW)
    [C] and shift[C] = 0 (or a fixed mode's M0 and shift); CONFIG's a_zp makes SUMPOOL sum
    (x - a_zp).  ``tail`` (first channel k, mode): two REQUANTs per image, channels [0, k) in
    CONFIG's mode and [k, C) in the tail's (a CONFIG between them; the tables of the two runs lie
    one after the other).
    """
    words = chip.buffer_words()
    config, a_mem, o_mem = dram_types(config)
    a_bits, o_bits = bits_of(a_mem), bits_of(o_mem)
    chunk = max(1, min(1023, pixels, words["INP"] // (2 * channels)))
    if channels > 4096 or 2 * channels > words["INP"] or 2 * channels > words["OUT"] or 3 * channels > words["PRM"]:
        raise ValueError(f"global average pool over {channels} channels does not fit the chip's buffers")
    prog = [Instruction("CONFIG", **config)] + (slot_credits() if credits else [])
    prog.append(Instruction("LOAD", buf="PRM", dtype="s32", dram=param_addr, sram=0, x=3 * channels, y=1, y_stride=0))
    slot_words, step = chunk * channels, 0
    for n in range(images):
        for i, p0 in enumerate(range(n * pixels, (n + 1) * pixels, chunk)):
            r = min(chunk, (n + 1) * pixels - p0)
            slot = step % 2
            step += 1
            prog.append(Instruction("LOAD", buf="INP", dtype=a_mem, dram=input_addr + p0 * channels * a_bits // 8,
                                    sram=slot * slot_words, x=channels, y=r, y_stride=channels, pop_next=1, push_next=1))
            prog.append(Instruction("SUMPOOL", src_buf="INP", src=slot * slot_words, acc=0, m=1, r=r, c=channels,
                                    accumulate=int(i > 0), pop_prev=1, push_prev=1))
        out = (n % 2) * channels
        if tail is None:
            prog.append(Instruction("REQUANT", src=0, dst_buf="OUT", dst=out, prm=0, m=1, n=channels, pop_next=1,
                                    push_next=1))
        else:
            k, mode = tail
            prog += [Instruction("REQUANT", src=0, dst_buf="OUT", dst=out, prm=0, m=1, n=k, pop_next=1),
                     Instruction("CONFIG", **{**config, "mode": mode}),
                     Instruction("REQUANT", src=k, dst_buf="OUT", dst=out + k, prm=3 * k, m=1, n=channels - k,
                                 push_next=1),
                     Instruction("CONFIG", **config)]
        prog.append(Instruction("STORE", buf="OUT", dtype=o_mem, dram=output_addr + n * channels * o_bits // 8, sram=out,
                                x=channels, y=1, y_stride=0, pop_prev=1, push_prev=1))
    return prog


def _pool_config(x: QTensor, y: QTensor, b: ProgramBuilder, clamp: Optional[tuple[int, int]] = None) -> dict:
    lo, hi = clamp or qrange(y.dtype)
    return {"a": x.dtype, "w": "s8", "o": y.dtype, "a_zp": x.zero_point, "o_zp": y.zero_point, "mode": "fp32",
            "clamp_min": lo, "clamp_max": hi, "a_mem": b.storage(x.name), "o_mem": b.storage(y.name)}


def _scale_table(channels: int, scale: np.float32) -> np.ndarray:
    """bias[C] = 0, the fp32 scale bits[C], shift[C] = 0."""
    return np.concatenate([np.zeros(channels, np.int64), np.full(channels, scale, np.float32).view(np.int32),
                           np.zeros(channels, np.int64)])


def _fixed_tables(node: QGlobalAvgPool, c: int) -> np.ndarray:
    """bias 0, M0 and shift for every channel: one table, or two (before and from the tail)."""
    m0, shift = node.multiplier
    k = node.requant_tail[0] if node.requant_tail else c
    run = lambda n: np.concatenate([np.zeros(n, np.int64), np.full(n, m0, np.int64), np.full(n, shift, np.int64)])
    return np.concatenate([run(k), run(c - k)]) if k < c else run(c)


@lowers(QGlobalAvgPool)
def lower_global_avgpool(node: QGlobalAvgPool, b: ProgramBuilder) -> None:
    x, y = b.tensor(node.input), b.tensor(node.output)
    n, c, h, wd = x.shape
    param_addr = b.alloc(12 * c)
    config = _pool_config(x, y, b, node.clamp)
    if node.requant == "fp32":
        scale = np.float32(x.scale) / (np.float32(y.scale) * np.float32(h * wd))  # ONNX Runtime's order
        b.place_words(param_addr, _scale_table(c, scale))
    else:
        b.place_words(param_addr, _fixed_tables(node, c))
        config.update(mode=node.requant, a_zp=node.sum_zero_point, o_zp=node.out_offset)
    try:
        body = global_avgpool_program(h * wd, c, b.chip, config, input_addr=b.addr(x.name), param_addr=param_addr,
                                      output_addr=b.addr(y.name), images=n, tail=node.requant_tail)
    except ValueError as e:
        raise ModelError(node.name, node.op_type, str(e)) from None
    b.emit(body, _record(node, x, y))


# ------------------------------------------------------------------------------------------ average pool
def window_counts(in_size: int, out_size: int, k: int, stride: int, pad: int, dilation: int = 1) -> list[int]:
    """For each output position, how many of its window taps fall inside the input (not padding)."""
    return [sum(0 <= o * stride - pad + t * dilation < in_size for t in range(k)) for o in range(out_size)]


def _runs(counts: list[int], p0: int, m: int) -> list[list[int]]:
    """(first pixel in the tile, pixels, table) of each run of a tile's pixels with one divisor."""
    runs: list[list[int]] = []
    for q in range(m):
        if runs and runs[-1][2] == counts[p0 + q]:
            runs[-1][1] += 1
        else:
            runs.append([q, 1, counts[p0 + q]])
    return runs


def _avg_runs(runs: list[list[int]], slot: int, a_slot: int, o_slot: int, window: int, n: int, cc: int, prm: int,
              divide: Optional[tuple[list[int], int, int]]) -> list[Instruction]:
    """REQUANT (requantizing) or AVGPOOL (exact mean) per run; the first claims the tile's tokens,
    the last hands them on."""
    prog = []
    for r_no, (q0, rn, j) in enumerate(runs):
        first, last = int(r_no == 0), int(r_no == len(runs) - 1)
        if divide is None:
            prog.append(Instruction("REQUANT", src=q0 * n, dst_buf="OUT", dst=slot * o_slot + q0 * n,
                                    prm=prm + 3 * cc * j, m=rn, n=n, pop_next=first, push_next=last))
        else:
            prog.append(Instruction("AVGPOOL", src_buf="INP", src=slot * a_slot + q0 * window * n,
                                    dst_buf="OUT", dst=slot * o_slot + q0 * n, m=rn, r=window, c=n,
                                    divisor=divide[0][j], even=divide[2], pop_prev=first, pop_next=first,
                                    push_prev=last, push_next=last))
    return prog


def _avg_tile_sizes(layer: PoolLayer, chip: ChipConfig, n_tables: int, requant: bool) -> tuple[int, int]:
    words = chip.buffer_words()
    window = layer.k_h * layer.k_w
    cc = min(layer.channels, 4096, words["INP"] // (2 * window), words["PRM"] // (6 * n_tables) if requant else 4096)
    if cc < 1 or window > 1023:
        raise ValueError(f"a {layer.k_h}x{layer.k_w} average pool with {n_tables} divisors does not fit the chip")
    tp = max(1, min(layer.pixels, 4096, words["INP"] // (2 * window * cc), words["ACC"] // cc,
                    words["OUT"] // (2 * cc)))
    return cc, tp


def avgpool_program(layer: PoolLayer, chip: ChipConfig, config: dict, counts: list[int], *, input_addr: int,
                    param_addr: int, output_addr: int, credits: bool = True,
                    divide: Optional[tuple[list[int], int, int]] = None) -> tuple[list[Instruction], int]:
    """Average pooling, one instruction per run of output pixels that divide by the same count.

    Requantizing (``divide`` None): LOADWIN (padding reads the input zero point), SUMPOOL of
    (x - z_in) into ACC, REQUANT per run.  ``counts[p]`` indexes the divisor of output pixel p
    among the parameter tables at ``param_addr``: table j holds, chunk by chunk (at
    12 * c0 + 12 * C * j), bias 0, the fp32 scale s_in / (s_out * divisor_j) and shift 0.

    Same quantization in and out (``divide`` = (divisors, pad value, even)): LOADWIN, then AVGPOOL
    of the raw values per run, an exact integer division rounded half to even (``even`` 1) or
    half away from zero (0).

    Returns the instructions and the channel chunk size.
    """
    window, pixels, c = layer.k_h * layer.k_w, layer.pixels, layer.channels
    n_tables = max(counts) + 1
    config, a_mem, o_mem = dram_types(config)
    cc, tp = _avg_tile_sizes(layer, chip, n_tables, divide is None)
    prog = [layer.setwin(config["a_zp"] if divide is None else divide[1]),
            Instruction("CONFIG", **config)] + (slot_credits() if credits else [])
    a_slot, o_slot = tp * window * cc, tp * cc
    step = 0
    for ci, c0 in enumerate(range(0, c, cc)):
        n = min(cc, c - c0)
        prm = (ci % 2) * 3 * cc * n_tables
        for j in range(n_tables if divide is None else 0):
            prog.append(Instruction("LOAD", buf="PRM", dtype="s32", dram=param_addr + 12 * c * j + 12 * c0,
                                    sram=prm + 3 * cc * j, x=3 * n, y=1, y_stride=0))
        for p0 in range(0, pixels, tp):
            m = min(tp, pixels - p0)
            slot = step % 2
            step += 1
            prog.append(Instruction("LOADWIN", buf="INP", dtype=a_mem, dram=input_addr, sram=slot * a_slot,
                                    pix0=p0, npix=m, c0=c0, nc=n, pop_next=1, push_next=1))
            if divide is None:
                prog.append(Instruction("SUMPOOL", src_buf="INP", src=slot * a_slot, acc=0, m=m, r=window, c=n,
                                        pop_prev=1, push_prev=1))
            prog += _avg_runs(_runs(counts, p0, m), slot, a_slot, o_slot, window, n, cc, prm, divide)
            prog.append(Instruction("STORE", buf="OUT", dtype=o_mem, dram=output_addr + (p0 * c + c0) * bits_of(o_mem) // 8,
                                    sram=slot * o_slot, x=n, y=m, y_stride=c, pop_prev=1, push_prev=1))
    return prog, cc


def _pixel_counts(node: QAvgPool, layer: PoolLayer) -> list[int]:
    """The divisor of every output pixel: the window size, or the taps inside the input."""
    if node.count_include_pad:
        return [node.kernel[0] * node.kernel[1]] * layer.pixels
    rows = window_counts(layer.in_h, layer.out_h, node.kernel[0], node.stride[0], node.pads[0], node.dilation[0])
    cols = window_counts(layer.in_w, layer.out_w, node.kernel[1], node.stride[1], node.pads[1], node.dilation[1])
    return [r * q for r in rows for q in cols] * layer.batch


def _divisor_tables(x: QTensor, y: QTensor, divisors: list[int], cc: int) -> np.ndarray:
    """For each divisor d, chunk by chunk of ``cc`` channels: bias[n] = 0, the fp32 scale
    s_in / (s_out * d) [n] (as QLinearGlobalAveragePool), shift[n] = 0, at 3 * c0 + 3 * C * j words."""
    c = x.shape[1]
    table = np.zeros(3 * c * len(divisors), np.int64)
    for j, d in enumerate(divisors):
        scale = np.float32(x.scale) / (np.float32(y.scale) * np.float32(d))
        bits = np.full(c, scale, np.float32).view(np.int32)
        for c0 in range(0, c, cc):
            n = min(cc, c - c0)
            table[3 * c * j + 3 * c0 + n:3 * c * j + 3 * c0 + 2 * n] = bits[c0:c0 + n]
    return table


@lowers(QAvgPool)
def lower_avgpool(node: QAvgPool, b: ProgramBuilder) -> None:
    """Same quantization in and out: the mean of the integers, exactly, ties to even (padding
    counted in reads the zero point, padding left out reads 0 and is not counted).  Otherwise
    SUMPOOL + REQUANT with one fp32 scale s_in / (s_out * count) per distinct count."""
    x, y = b.tensor(node.input), b.tensor(node.output)
    layer = pool_layer(node, x, y)
    per_pixel = _pixel_counts(node, layer)
    if min(per_pixel) == 0:
        raise ModelError(node.name, node.op_type, "a pooling window lies entirely in the padding")
    divisors = sorted(set(per_pixel))
    same = (x.scale, x.zero_point, x.dtype) == (y.scale, y.zero_point, y.dtype) or node.codes
    divide = (divisors, x.zero_point if node.count_include_pad else 0, int(not node.away)) if same else None
    param_addr = b.at if divide is not None else b.alloc(12 * x.shape[1] * len(divisors))
    try:
        body, cc = avgpool_program(layer, b.chip, _pool_config(x, y, b, node.clamp),
                                   [divisors.index(d) for d in per_pixel],
                                   input_addr=b.addr(x.name), param_addr=param_addr, output_addr=b.addr(y.name),
                                   divide=divide)
    except ValueError as e:
        raise ModelError(node.name, node.op_type, str(e)) from None
    if divide is None:
        b.place_words(param_addr, _divisor_tables(x, y, divisors, cc))
    b.emit(body, _record(node, x, y))
