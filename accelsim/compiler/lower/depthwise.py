"""Depthwise convolutions (QDepthwiseConv, one filter per channel) on the DWCONV instruction:
LOADWIN, LOADW, DWCONV, REQUANT, STORE per (pixel tile, channel chunk), double-buffered."""

from __future__ import annotations

import numpy as np

from isa import Instruction
from isa.quant import pack_bits
from isa.table import DTYPES

from ...chip import ChipConfig
from ..ir import ModelError, QDepthwiseConv
from ..records import LayerRecord
from ..tiling import ConvLayer
from .builder import ProgramBuilder
from .common import bits_of, dram_types, param_table, requant_columns, slot_credits
from .gemm import geometry, layer_config
from .registry import lowers


def _tile_sizes(layer: ConvLayer, chip: ChipConfig) -> tuple[int, int]:
    """Channels per chunk and output pixels per tile that fit the buffers twice (double buffering)."""
    words = chip.buffer_words()
    window = layer.k_h * layer.k_w
    cc = min(layer.in_c, 4096, words["WGT"] // (2 * window), words["PRM"] // 6, words["INP"] // (2 * window))
    if cc < 1 or window > 1023:
        raise ValueError(f"layer {layer.name}: a {layer.k_h}x{layer.k_w} depthwise window does not fit the chip")
    pixels = layer.pixels
    tp = max(1, min(pixels, 4096, words["INP"] // (2 * window * cc), words["ACC"] // cc, words["OUT"] // (2 * cc)))
    if tp > chip.rows:
        tp -= tp % chip.rows
    return cc, tp


def _tile(layer: ConvLayer, slot: int, oslot: int, p0: int, m: int, c0: int, n: int, cc: int, tp: int, prm: int,
          w_at: int, config: dict, a_mem: str, o_mem: str, input_addr: int, output_addr: int) -> list[Instruction]:
    window = layer.k_h * layer.k_w
    a_slot, w_slot, o_slot = tp * window * cc, window * cc, tp * cc
    c = layer.in_c
    return [Instruction("LOADWIN", buf="INP", dtype=a_mem, dram=input_addr, sram=slot * a_slot, pix0=p0, npix=m,
                        c0=c0, nc=n, pop_next=1),
            Instruction("LOADW", sram=slot * w_slot, dram=w_at, count=window * n, dtype=config["w"], push_next=1),
            Instruction("DWCONV", inp=slot * a_slot, wgt=slot * w_slot, acc=0, m=m, r=window, c=n,
                        pop_prev=1, push_prev=1),
            Instruction("REQUANT", src=0, dst_buf="OUT", dst=oslot * o_slot, prm=prm, m=m, n=n, pop_next=1, push_next=1),
            Instruction("STORE", buf="OUT", dtype=o_mem, dram=output_addr + (p0 * c + c0) * bits_of(o_mem) // 8,
                        sram=oslot * o_slot, x=n, y=m, y_stride=c, pop_prev=1, push_prev=1)]


def dwconv_program(layer: ConvLayer, chip: ChipConfig, config: dict, pad_value: int, *, input_addr: int,
                   weight_addr: int, param_addr: int, output_addr: int, credits: bool = True,
                   channels: tuple[int, int] | None = None) -> tuple[list[Instruction], list[tuple[int, int, int]], int]:
    """The instructions of a depthwise layer (of its ``channels`` [start, end) only, when given).

    Returns them, the weight chunks (dram addr, c0, cc) in stream order from ``weight_addr``, each
    laid out [k_h][k_w][cc], and the channel chunk size (parameter tables go tile by tile at
    ``param_addr`` + 12 * c0).
    """
    window = layer.k_h * layer.k_w
    pixels = layer.pixels
    config, a_mem, o_mem = dram_types(config)
    w_bits = bits_of(config["w"])
    cc, tp = _tile_sizes(layer, chip)
    prog = [Instruction("SETWIN", in_h=layer.in_h, in_w=layer.in_w, in_c=layer.in_c, k_h=layer.k_h, k_w=layer.k_w,
                        stride_h=layer.stride, stride_w=layer.sw, dil_h=layer.dilation, dil_w=layer.dw,
                        pad_top=layer.pad_top, pad_left=layer.pad_left, out_w=layer.out_w, pad_value=pad_value,
                        out_h=layer.window_rows),
            Instruction("CONFIG", **config)] + (slot_credits() if credits else [])
    start, end = channels or (0, layer.in_c)
    chunks, at, step = [], weight_addr, 0
    for ci, c0 in enumerate(range(start, end, cc)):
        n = min(cc, end - c0)
        chunks.append((at, c0, n))
        prm = (ci % 2) * 3 * cc
        prog.append(Instruction("LOAD", buf="PRM", dtype="s32", dram=param_addr + 12 * c0, sram=prm, x=3 * n, y=1,
                                y_stride=0))
        for p0 in range(0, pixels, tp):
            prog += _tile(layer, step % 2, step % 2, p0, min(tp, pixels - p0), c0, n, cc, tp, prm, at, config,
                          a_mem, o_mem, input_addr, output_addr)
            step += 1
        at += (window * n * w_bits + 7) // 8
    return prog, chunks, cc


@lowers(QDepthwiseConv)
def lower_depthwise(node: QDepthwiseConv, b: ProgramBuilder) -> None:
    x, y = b.tensor(node.input), b.tensor(node.output)
    w = np.asarray(node.weight, np.int64)
    n, c, h, wd = x.shape
    layer = ConvLayer(node.name, h, wd, c, w.shape[2], w.shape[3], w.shape[0], **geometry(node), batch=n)
    w_bits, window = DTYPES[node.w_dtype][0], layer.k_h * layer.k_w
    weight_addr = b.alloc((c * window * w_bits + 7) // 8 + 64)
    param_addr = b.alloc(12 * c)
    w_rc = w[:, 0].transpose(1, 2, 0).reshape(window, c)  # (C, 1, kh, kw) -> [kh*kw][C]
    record = LayerRecord(node.name, node.op_type, macs=layer.pixels * c * window, shape=f"{x.shape}->{y.shape}",
                         bits=f"{node.w_dtype}x{x.dtype}", weight_formats=["dense"])
    at = weight_addr
    for start, end, mode in node.mode_runs():  # one program per requant mode (CONFIG holds it)
        try:
            body, chunks, cc = dwconv_program(layer, b.chip, layer_config(node, b, mode), x.zero_point,
                                              input_addr=b.addr(x.name), weight_addr=at, param_addr=param_addr,
                                              output_addr=b.addr(y.name), channels=(start, end))
            mult, shift = requant_columns(mode, x.scale, node.w_scale[start:end], y.scale)
        except ValueError as e:
            raise ModelError(node.name, node.op_type, str(e)) from None
        for addr, c0, n in chunks:
            b.place(addr, pack_bits(w_rc[:, c0:c0 + n].ravel(), w_bits))
            at = addr + (window * n * w_bits + 7) // 8
        b.place_words(param_addr + 12 * start, param_table(mult, shift, node.bias[start:end], cc))
        first, fence = b.emit_body(body, 2)
        if start == 0:
            record.first_instruction, record.barrier = first, fence
    record.weight_bytes = record.dense_weight_bytes = at - weight_addr
    record.instructions = len(b.instructions) - record.first_instruction
    b.layers.append(record)
