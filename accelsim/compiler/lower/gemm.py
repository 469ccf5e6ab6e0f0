"""Convolutions and fully connected layers as tiled GEMMs on the MAC array (QConv), grouped
convolutions as one GEMM layer per group on channel slices.

A layer is ``out[P, N] = A[P, K] @ W[N, K].T`` with P output pixels, K = k_h*k_w*C and N output
channels, tiled by accelsim.compiler.tiling.  For every (pixel tile, channel tile):

    load:    [pop_next: a free slot]  LOADWIN A tile, LOADW W tile  push_next      (per K chunk)
    compute: pop_prev  GEMM (accumulate after the first chunk)  push_prev          (per K chunk)
             [pop_next: a free output slot]  REQUANT  push_next
    store:   pop_prev  STORE  push_prev

with initial slot credits pushed by NOPs, as VTA does.  Weights are laid out in DRAM in tile order
([n tile][c chunk][n][k_h][k_w][c]), each (n tile, c chunk) its own LOADW stream; the parameter
table holds, tile by tile at 12 * n0, bias[tn], the fp32 scale[tn] and shift[tn] with
``scale = float32(float32(s_in * s_w[n]) / s_out)`` (ONNX Runtime's order).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import numpy as np

from isa import Instruction
from isa.table import DTYPES

from ...chip import ChipConfig
from .. import weights as W
from ..ir import ModelError, QConv
from ..records import LayerRecord
from ..tiling import ConvLayer, Tiling, choose_tiling
from .builder import ProgramBuilder
from .common import acc_bits_for, bits_of, dram_types, param_table, requant_columns, slot_credits
from .registry import lowers

_SIGNED = {4: "s4", 8: "s8", 16: "s16"}
_UNSIGNED = {4: "u4", 8: "u8", 16: "u16"}


@dataclass(frozen=True)
class LayerProgram:
    instructions: list[Instruction]
    tiling: Tiling
    weight_chunks: list[tuple[int, int, int, int, int]]  # (dram addr, n0, tn, c0, tc) in stream order
    dram_bytes: int        # bytes of DRAM the layout uses
    input_addr: int
    weight_addr: int
    param_addr: int
    output_addr: int


def _default_addrs(layer: ConvLayer, w_bits: int, a_bits: int, base: int) -> dict[str, int]:
    """A layout from ``base``: input, weights (dense), parameter table, output."""
    window = layer.k_h * layer.k_w
    inp = base
    weight = inp + (layer.batch * layer.in_h * layer.in_w * layer.in_stride * a_bits + 7) // 8
    param = (weight + (layer.out_c * window * layer.in_c * w_bits + 7) // 8 + 16 + 3) & ~3
    output = param + 3 * 4 * layer.out_c
    end = output + (layer.pixels * layer.out_stride * a_bits + 7) // 8
    return {"input": inp, "weight": weight, "param": param, "output": output, "end": end}


def _chunk_streams(layer: ConvLayer, t: Tiling, weight_addr: int, w_bits: int,
                   streams: Optional[dict]) -> list[list[tuple[int, int, int]]]:
    """Per output-channel tile, its K chunks (c0, tc, DRAM address of the chunk's weight stream)."""
    window = layer.k_h * layer.k_w
    at, tiles = weight_addr, []
    for n0 in range(0, layer.out_c, t.tn):
        tn = min(t.tn, layer.out_c - n0)
        chunks = []
        for c0 in range(0, layer.in_c, t.tc):
            tc = min(t.tc, layer.in_c - c0)
            chunks.append((c0, tc, at))
            stream = streams.get((n0, c0)) if streams else None
            at += stream.nbytes if stream is not None else (tn * window * tc * w_bits + 7) // 8
        tiles.append(chunks)
    return tiles


def _setup(layer: ConvLayer, cfg: dict, pad_value: int) -> list[Instruction]:
    return [Instruction("SETWIN", in_h=layer.in_h, in_w=layer.in_w, in_c=layer.in_stride, k_h=layer.k_h,
                        k_w=layer.k_w, stride_h=layer.stride, stride_w=layer.sw, dil_h=layer.dilation,
                        dil_w=layer.dw, pad_top=layer.pad_top, pad_left=layer.pad_left, out_w=layer.out_w,
                        pad_value=pad_value, out_h=layer.window_rows),
            Instruction("CONFIG", **cfg)]


def _k_chunk(layer: ConvLayer, t: Tiling, slot: int, w_slot_no: int, fetch_w: bool, accumulate: bool, p0: int,
             tp: int, n0: int, tn: int, chunk: tuple[int, int, int], a_mem: str, w_type: str, input_addr: int,
             streams: Optional[dict]) -> list[Instruction]:
    """LOADWIN (and, when ``fetch_w``, LOADW) and GEMM of one K chunk of a (pixel tile, channel tile).
    The activation tile goes to slot ``slot``, the weights to slot ``w_slot_no``."""
    c0, tc, w_at = chunk
    k = layer.k_h * layer.k_w * tc
    a_slot, w_slot = t.tp * layer.k_h * layer.k_w * t.tc, t.tn * layer.k_h * layer.k_w * t.tc
    st = streams.get((n0, c0)) if streams else None
    fmt = dict(format=st.format, param=st.param, zero=st.zero) if st is not None else {}
    prog = [Instruction("LOADWIN", buf="INP", dtype=a_mem, dram=input_addr, sram=slot * a_slot, pix0=p0, npix=tp,
                        c0=layer.in_c0 + c0, nc=tc, pop_next=1, push_next=int(not fetch_w))]
    if fetch_w:
        prog.append(Instruction("LOADW", sram=w_slot_no * w_slot, dram=w_at, count=tn * k, dtype=w_type, push_next=1,
                                **fmt))
    prog.append(Instruction("GEMM", inp=slot * a_slot, wgt=w_slot_no * w_slot, acc=0, m=tp, n=tn, k=k,
                            accumulate=int(accumulate), pop_prev=1, push_prev=1))
    return prog


def _output_tile(layer: ConvLayer, t: Tiling, oslot: int, prm: int, p0: int, tp: int, n0: int, tn: int,
                 o_mem: str, output_addr: int) -> list[Instruction]:
    """REQUANT of a finished tile and its STORE into the output's channel slice."""
    o_slot = t.tp * t.tn
    dram = output_addr + (p0 * layer.out_stride + layer.out_c0 + n0) * bits_of(o_mem) // 8
    return [Instruction("REQUANT", src=0, dst_buf="OUT", dst=oslot * o_slot, prm=prm, m=tp, n=tn,
                        pop_next=1, push_next=1),
            Instruction("STORE", buf="OUT", dtype=o_mem, dram=dram, sram=oslot * o_slot, x=tn, y=tp,
                        y_stride=layer.out_stride, pop_prev=1, push_prev=1)]


def _check_fits(layer: ConvLayer, t: Tiling, chip: ChipConfig, o_mem: str) -> None:
    words = chip.buffer_words()
    k_max = layer.k_h * layer.k_w * t.tc
    assert t.slots * t.tp * k_max <= words["INP"] and t.slots * t.tn * k_max <= words["WGT"]
    assert t.tp * t.tn <= words["ACC"] and 2 * t.tp * t.tn <= words["OUT"] and 6 * t.tn <= words["PRM"]
    if bits_of(o_mem) == 4 and (layer.out_c % 2 or layer.out_stride % 2 or layer.out_c0 % 2):
        raise ValueError(f"layer {layer.name}: 4-bit outputs need even channel counts and offsets (byte-addressed rows)")


def conv_program(layer: ConvLayer, chip: ChipConfig, w_bits: int = 8, a_bits: int = 8,
                 tiling: Optional[Tiling] = None, base: int = 0, *, config: Optional[dict] = None,
                 pad_value: int = 0, addrs: Optional[dict] = None, credits: bool = True,
                 streams: Optional[dict] = None) -> LayerProgram:
    """Instructions computing one layer (NHWC input and output in DRAM) on the chip.

    ``config``: the CONFIG fields (types, zero points, clamp; default unsigned activations, signed
    weights, zero points 0); ``pad_value``: what padding reads (the input zero point);
    ``addrs``: DRAM byte addresses ``input``, ``weight``, ``param``, ``output`` (default: a
    layout from ``base``); ``credits``: emit the initial slot credits (once per token epoch);
    ``streams``: the encoded weight stream of each (n0, c0) chunk (default dense).
    """
    t = tiling or choose_tiling(layer, chip, w_bits, a_bits)
    pixels = layer.pixels
    default = _default_addrs(layer, w_bits, a_bits, base)
    at = {**default, **(addrs or {})}
    cfg, a_mem, o_mem = dram_types({"a": _UNSIGNED[a_bits], "w": _SIGNED[w_bits], "o": _UNSIGNED[a_bits],
                                    "acc_bits": acc_bits_for(a_bits, w_bits), "clamp_min": 0,
                                    "clamp_max": (1 << a_bits) - 1, **(config or {})})
    _check_fits(layer, t, chip, o_mem)
    prog = _setup(layer, cfg, pad_value) + (slot_credits(t.slots) if credits else [])
    tiles = _chunk_streams(layer, t, at["weight"], w_bits, streams)
    chunk_no = out_no = 0
    for n_idx, (n0, chunks) in enumerate(zip(range(0, layer.out_c, t.tn), tiles)):
        tn = min(t.tn, layer.out_c - n0)
        prm = (n_idx % 2) * 3 * t.tn  # two parameter slots: the next tile's table loads early
        prog.append(Instruction("LOAD", buf="PRM", dtype="s32", dram=at["param"] + 4 * 3 * n0, sram=prm,
                                x=3 * tn, y=1, y_stride=0))
        # one K chunk: the weight tile stays in its slot for every pixel tile (fetched once per
        # channel tile); several: each chunk's weights come with its activations
        resident = len(chunks) == 1
        for p0 in range(0, pixels, t.tp):
            tp = min(t.tp, pixels - p0)
            for ci, chunk in enumerate(chunks):
                slot = chunk_no % t.slots
                w_slot_no = n_idx % t.slots if resident else slot
                prog += _k_chunk(layer, t, slot, w_slot_no, not resident or p0 == 0, ci > 0, p0, tp, n0, tn, chunk,
                                 a_mem, cfg["w"], at["input"], streams)
                chunk_no += 1
            prog += _output_tile(layer, t, out_no % 2, prm, p0, tp, n0, tn, o_mem, at["output"])
            out_no += 1
    weight_chunks = [(w_at, n0, min(t.tn, layer.out_c - n0), c0, tc)
                     for n0, chunks in zip(range(0, layer.out_c, t.tn), tiles) for c0, tc, w_at in chunks]
    return LayerProgram(prog, t, weight_chunks, at["output"] + default["end"] - default["output"] - base,
                        at["input"], at["weight"], at["param"], at["output"])


# ------------------------------------------------------------------------------------------ a QConv
def weight_streams(w_nhwc: np.ndarray, layer: ConvLayer, tiling: Tiling, dtype: str, zero: int, fmt: str,
                   chip: ChipConfig) -> dict:
    """Encode each (n tile, c chunk) of the weights: the cheapest fetch on the chip, or ``fmt``."""
    streams = {}
    for n0 in range(0, layer.out_c, tiling.tn):
        for c0 in range(0, layer.in_c, tiling.tc):
            chunk = w_nhwc[n0:n0 + tiling.tn, :, :, c0:c0 + tiling.tc].ravel()
            streams[(n0, c0)] = W.encode_as(chunk, dtype, fmt, chip, zero)
    return streams


def layer_config(node: QConv, b: ProgramBuilder, mode: str = "fp32") -> dict:
    """The CONFIG fields of a convolution: operand types, zero points, requant mode, clamp."""
    x, y = b.tensor(node.input), b.tensor(node.output)
    return {"a": x.dtype, "w": node.w_dtype, "o": y.dtype, "a_zp": x.zero_point, "w_zp": node.w_zero_point,
            "o_zp": y.zero_point, "mode": mode, "clamp_min": node.clamp[0], "clamp_max": node.clamp[1],
            "acc_bits": acc_bits_for(DTYPES[x.dtype][0], DTYPES[node.w_dtype][0]),
            "a_mem": b.storage(x.name), "o_mem": b.storage(y.name)}


def _lower_group(node: QConv, layer: ConvLayer, w: np.ndarray, w_scale: np.ndarray, bias: np.ndarray,
                 b: ProgramBuilder, mode: str) -> LayerRecord:
    """One GEMM-shaped convolution (or one group of a grouped one): weight streams, parameter table
    and instructions.  Returns its part of the layer record."""
    x, y = b.tensor(node.input), b.tensor(node.output)
    w_bits, a_bits = DTYPES[node.w_dtype][0], DTYPES[x.dtype][0]
    tiling = choose_tiling(layer, b.chip, w_bits, a_bits)
    streams = weight_streams(w.transpose(0, 2, 3, 1), layer, tiling, node.w_dtype, node.w_zero_point, b.weights,
                             b.chip)
    weight_addr = b.alloc(sum(st.nbytes for st in streams.values()) + 64)
    param_addr = b.alloc(12 * layer.out_c)
    mult, shift = requant_columns(mode, x.scale, w_scale, y.scale)
    lp = conv_program(layer, b.chip, w_bits, a_bits, tiling, config=layer_config(node, b, mode), pad_value=x.zero_point,
                      addrs={"input": b.addr(x.name), "weight": weight_addr, "param": param_addr,
                             "output": b.addr(y.name)}, streams=streams)
    end = weight_addr
    for addr, n0, _, c0, _ in lp.weight_chunks:  # weights in tile order, each chunk its own stream
        data = np.frombuffer(streams[(n0, c0)].data, np.uint8)
        b.place(addr, data)
        end = max(end, addr + data.size)
    if end > param_addr:
        raise AssertionError("weight layout overran its region")
    b.place_words(param_addr, param_table(mult, shift, bias, lp.tiling.tn))
    record = LayerRecord(node.name, node.op_type, macs=layer.macs, tiling=lp.tiling, weight_bytes=end - weight_addr,
                         bits=f"{node.w_dtype}x{x.dtype}", weight_formats=sorted({s.format for s in streams.values()}),
                         dense_weight_bytes=sum((tn * layer.k_h * layer.k_w * tc * w_bits + 7) // 8
                                                for _, _, tn, _, tc in lp.weight_chunks))
    record.first_instruction, record.barrier = b.emit_body(lp.instructions, lp.tiling.slots)
    record.instructions = len(lp.instructions)
    return record


def _merge(record: LayerRecord, part: LayerRecord, b: ProgramBuilder) -> None:
    """Fold a later group's record into the layer's."""
    record.macs += part.macs
    record.weight_bytes += part.weight_bytes
    record.dense_weight_bytes += part.dense_weight_bytes
    record.weight_formats = sorted(set(record.weight_formats) | set(part.weight_formats))
    record.instructions = len(b.instructions) - record.first_instruction


def _nhwc_weights(node: QConv, b: ProgramBuilder) -> tuple[np.ndarray, int, int, int, int]:
    """The weights (N, C/group, kh, kw) as int64 and the input's (images, C, H, W); a fully
    connected layer reading a flattened NCHW tensor gets its columns permuted to NHWC order."""
    x = b.tensor(node.input)
    w = np.asarray(node.weight, np.int64)
    if len(x.shape) == 4:
        n, c, h, wd = x.shape
        return w, n, c, h, wd
    if node.input in b.flattened:  # columns in NCHW flatten order -> our NHWC order
        _, fc, fh, fw = b.flattened[node.input]
        w = w.reshape(w.shape[0], fc, fh, fw).transpose(0, 2, 3, 1).reshape(w.shape[0], -1, 1, 1)
    return w, x.shape[0], x.shape[1], 1, 1


def geometry(node: QConv) -> dict:
    """The ConvLayer geometry fields of a node (vertical and horizontal strides and dilations)."""
    return dict(stride=node.stride[0], stride_w=node.stride[1], pad_top=node.pads[0], pad_left=node.pads[1],
                pad_bottom=node.pads[2], pad_right=node.pads[3], dilation=node.dilation[0], dilation_w=node.dilation[1])


def _parts(node: QConv, ng: int) -> list[tuple[int, int, int, str]]:
    """(group, first output channel, end channel, requant mode) of each GEMM the layer runs as:
    one per group, split where the requant mode changes."""
    parts = []
    for g in range(node.group):
        for r0, r1, mode in node.mode_runs():
            lo, hi = max(r0, g * ng), min(r1, (g + 1) * ng)
            if lo < hi:
                parts.append((g, lo, hi, mode))
    return parts


@lowers(QConv)
def lower_conv(node: QConv, b: ProgramBuilder) -> None:
    """One GEMM layer per group (and per run of channels with one requant mode): group g reads
    input channels [g*cg, (g+1)*cg) and writes output channels [g*ng, (g+1)*ng) of the full
    NHWC tensors."""
    w, n, c, h, wd = _nhwc_weights(node, b)
    geom = geometry(node)
    cg, ng = c // node.group, w.shape[0] // node.group
    record = None
    for g, lo, hi, mode in _parts(node, ng):
        layer = ConvLayer(node.name, h, wd, cg, w.shape[2], w.shape[3], hi - lo, **geom,
                          in_pitch=c, in_c0=g * cg, out_pitch=w.shape[0], out_c0=lo, batch=n)
        sl = slice(lo, hi)
        try:
            part = _lower_group(node, layer, w[sl], node.w_scale[sl], node.bias[sl], b, mode)
        except ValueError as e:
            raise ModelError(node.name, node.op_type, str(e)) from None
        if record is None:
            record = part
        else:
            _merge(record, part, b)
    record.shape = f"{b.tensor(node.input).shape}->{b.tensor(node.output).shape}"
    b.layers.append(record)
