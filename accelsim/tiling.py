"""Tiling of one convolution or GEMM layer onto the chip, with double buffering through tokens.

A layer is the GEMM ``out[P, N] = A[P, K] @ W[N, K].T`` with P output pixels, K = k_h*k_w*C and N
output channels.  The tiler searches pixel tiles ``tp``, input-channel chunks ``tc`` (K chunk
``k_h*k_w*tc``), output-channel tiles ``tn`` and single or double buffering for the cheapest
tiling (array cycles from the chip's own tile formula against DMA time) whose A/W tiles, the
accumulators and two output tiles fit the buffers, then emits for every (pixel tile, channel tile):

    load:    [pop_next: a free slot]  LOADWIN A tile, LOADW W tile  push_next      (per K chunk)
    compute: pop_prev  GEMM (accumulate after the first chunk)  push_prev          (per K chunk)
             [pop_next: a free output slot]  REQUANT  push_next
    store:   pop_prev  STORE  push_prev

with two initial slot credits pushed by NOPs, as VTA does.  Weights are laid out in DRAM in tile
order ([n tile][c chunk][n][k_h][k_w][c]), so every LOADW reads one contiguous stream.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

from isa import Instruction

from .config import ChipConfig


@dataclass(frozen=True)
class ConvLayer:
    """A convolution (or, with 1x1 input and kernel, a fully connected layer)."""

    name: str
    in_h: int
    in_w: int
    in_c: int
    k_h: int
    k_w: int
    out_c: int
    stride: int = 1
    pad_top: int = 0
    pad_left: int = 0
    pad_bottom: int = 0
    pad_right: int = 0
    dilation: int = 1
    in_pitch: int = 0    # channels per input pixel in DRAM (0: in_c); with in_c0, reads a channel slice
    in_c0: int = 0
    out_pitch: int = 0   # channels per output pixel in DRAM (0: out_c); with out_c0, writes a slice
    out_c0: int = 0

    @property
    def in_stride(self) -> int:
        return self.in_pitch or self.in_c

    @property
    def out_stride(self) -> int:
        return self.out_pitch or self.out_c

    @property
    def out_h(self) -> int:
        return (self.in_h + self.pad_top + self.pad_bottom - self.dilation * (self.k_h - 1) - 1) // self.stride + 1

    @property
    def out_w(self) -> int:
        return (self.in_w + self.pad_left + self.pad_right - self.dilation * (self.k_w - 1) - 1) // self.stride + 1

    @property
    def macs(self) -> int:
        return self.out_h * self.out_w * self.out_c * self.k_h * self.k_w * self.in_c


@dataclass(frozen=True)
class Tiling:
    tp: int           # output pixels per tile
    tc: int           # input channels per K chunk
    tn: int           # output channels per tile
    slots: int = 2    # 2: double-buffered A/W tiles (loads overlap compute), 1: single


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


DTYPE = {4: "s4", 8: "s8", 16: "s16"}
#: tokens of a streaming vector instruction: takes its loaded input (pop_prev) and a free output
#: slot (pop_next) before it runs, then frees the input slot and hands the output to the store
STREAM_TOKENS = dict(pop_prev=1, pop_next=1, push_prev=1, push_next=1)


def dram_types(config: dict) -> tuple[dict, str, str]:
    """CONFIG fields without the DRAM element types ``a_mem`` / ``o_mem`` of the input and output
    tensors, and those types (by default the operand types ``a`` / ``o``: a 4-bit tensor whose rows
    would not end on a byte is stored in 8 bits, and the MAC array still reads 4-bit operands)."""
    cfg = dict(config)
    return cfg, cfg.pop("a_mem", cfg.get("a")), cfg.pop("o_mem", cfg.get("o"))


def o_bits_of(config: Optional[dict], a_bits: int) -> int:
    return int(config["o"][1:]) if config and "o" in config else a_bits
UDTYPE = {4: "u4", 8: "u8", 16: "u16"}


def _candidates(total: int, unit: int, limit: int) -> list[int]:
    """Tile sizes worth trying: the largest that fits, the largest multiple of the array size
    ``unit``, and even splits of ``total`` into the fewest tiles that fit (and one or two more)."""
    limit = min(total, limit)
    if limit < 1:
        return []
    out = {limit}
    if limit >= unit:
        out.add(limit - limit % unit)
    fewest = -(-total // limit)
    for d in range(fewest, fewest + 3):
        size = -(-total // d)
        out.add(size)
        if size > unit:
            out.add(-(-size // unit) * unit if -(-size // unit) * unit <= limit else size - size % unit)
    return sorted(x for x in out if 1 <= x <= limit)


def _splits(total: int, tile: int) -> list[tuple[int, int]]:
    """(size, how many) of the tiles that cover ``total``: full tiles and the last one."""
    full, last = divmod(total, tile)
    return [(tile, full)] * (full > 0) + [(last, 1)] * (last > 0)


def tiling_cost(layer: ConvLayer, chip: ChipConfig, t: Tiling, w_bits: int, a_bits: int, _p=None) -> float:
    """Estimated cycles of a tiling: MAC-array cycles (the chip's tile formula) and DMA cycles,
    overlapped when double-buffered and serial when single-buffered."""
    from .machine import gemm_cycles, precision_rate
    from .simulator import chip_vector

    p = chip_vector(chip) if _p is None else _p
    num, den = precision_rate(w_bits, a_bits, chip["array"]["base_bits"], chip["array"]["min_bits"])
    pixels, window = layer.out_h * layer.out_w, layer.k_h * layer.k_w
    array = 0.0
    for tp, np_ in _splits(pixels, t.tp):
        for tn, nn in _splits(layer.out_c, t.tn):
            for tc, nc in _splits(layer.in_c, t.tc):
                array += np_ * nn * nc * gemm_cycles(tp, tn, window * tc, num, den, p)
    n_p, n_n, n_c = -(-pixels // t.tp), -(-layer.out_c // t.tn), -(-layer.in_c // t.tc)
    bw, lat = chip["dram"]["bandwidth"], chip["dram"]["latency"]
    a_bytes = n_n * layer.in_h * layer.in_w * layer.in_c * a_bits / 8  # the input, once per channel tile
    w_bytes = n_p * layer.out_c * window * layer.in_c * w_bits / 8     # the weights, once per pixel tile
    dma = (a_bytes + w_bytes) / bw + 2 * n_p * n_n * n_c * lat
    return max(array, dma) if t.slots == 2 else array + dma


def choose_tiling(layer: ConvLayer, chip: ChipConfig, w_bits: int = 8, a_bits: int = 8) -> Tiling:
    """The cheapest tiling (tiling_cost) whose tiles fit the buffers; double buffering preferred."""
    words = chip.buffer_words()
    window = layer.k_h * layer.k_w
    pixels = layer.out_h * layer.out_w
    tn_limit = min(layer.out_c, words["PRM"] // 6, 4096)
    from .simulator import chip_vector

    p = chip_vector(chip)
    best, best_key = None, None
    tcs = sorted({max(1, -(-layer.in_c // d)) for d in (1, 2, 3, 4, 6, 8, 12, 16, 24, 32, 48, 64)}, reverse=True)
    for slots in (2, 1):
        for tc in tcs:
            k = window * tc
            if k > 16384 or slots * k > words["INP"] or slots * k > words["WGT"]:
                continue
            for tn in _candidates(layer.out_c, chip.cols, min(tn_limit, words["WGT"] // (slots * k))):
                tp_limit = min(pixels, 4096, words["INP"] // (slots * k), words["ACC"] // tn, words["OUT"] // (2 * tn))
                if tp_limit < 1:
                    continue
                for tp in _candidates(pixels, chip.rows, tp_limit):
                    t = Tiling(tp=tp, tc=tc, tn=tn, slots=slots)
                    key = (tiling_cost(layer, chip, t, w_bits, a_bits, p), -slots, -tp * tn * tc)
                    if best_key is None or key < best_key:
                        best, best_key = t, key
    if best is None:
        raise ValueError(f"layer {layer.name}: no tiling fits the buffers (one window is {window} x channels)")
    return best


def conv_program(layer: ConvLayer, chip: ChipConfig, w_bits: int = 8, a_bits: int = 8,
                 tiling: Optional[Tiling] = None, base: int = 0, *, config: Optional[dict] = None,
                 pad_value: int = 0, addrs: Optional[dict] = None, credits: bool = True,
                 streams: Optional[dict] = None) -> LayerProgram:
    """Instructions computing one layer (NHWC input and output in DRAM) on the chip.

    ``config``: the CONFIG fields (types, zero points, clamp; default unsigned activations, signed
    weights, zero points 0); ``pad_value``: what padding reads (the input zero point);
    ``addrs``: DRAM byte addresses ``input``, ``weight``, ``param``, ``output`` (default: a
    layout from ``base``); ``credits``: emit the initial slot credits (once per token epoch).
    """
    t = tiling or choose_tiling(layer, chip, w_bits, a_bits)
    words = chip.buffer_words()
    window = layer.k_h * layer.k_w
    pixels = layer.out_h * layer.out_w
    a_type, w_type, o_type = UDTYPE[a_bits], DTYPE[w_bits], UDTYPE[a_bits]
    # DRAM layout
    input_addr = base
    input_bytes = (layer.in_h * layer.in_w * layer.in_stride * a_bits + 7) // 8
    weight_addr = input_addr + input_bytes
    weight_bytes = (layer.out_c * window * layer.in_c * w_bits + 7) // 8 + 16
    param_addr = (weight_addr + weight_bytes + 3) & ~3
    param_bytes = 3 * 4 * layer.out_c
    output_addr = param_addr + param_bytes
    output_bytes = (pixels * layer.out_stride * a_bits + 7) // 8
    if addrs:
        input_addr, weight_addr = addrs["input"], addrs["weight"]
        param_addr, output_addr = addrs["param"], addrs["output"]
    # buffer slots
    k_max = window * t.tc
    a_slot, w_slot, o_slot = t.tp * k_max, t.tn * k_max, t.tp * t.tn
    assert t.slots * a_slot <= words["INP"] and t.slots * w_slot <= words["WGT"] and o_slot <= words["ACC"]
    assert 2 * o_slot <= words["OUT"] and 6 * t.tn <= words["PRM"]
    cfg, a_mem, o_mem = dram_types({"a": a_type, "w": w_type, "o": o_type,
                                    "acc_bits": 32 if max(a_bits, w_bits) <= 8 else 48,
                                    "clamp_min": 0, "clamp_max": (1 << a_bits) - 1, **(config or {})})
    a_type, w_type, o_type = cfg["a"], cfg["w"], cfg["o"]
    o_bits = int(o_mem[1:])
    if o_bits == 4 and (layer.out_c % 2 or layer.out_stride % 2 or layer.out_c0 % 2):
        raise ValueError(f"layer {layer.name}: 4-bit outputs need even channel counts and offsets (byte-addressed rows)")
    prog = [
        Instruction("SETWIN", in_h=layer.in_h, in_w=layer.in_w, in_c=layer.in_stride, k_h=layer.k_h, k_w=layer.k_w,
                    stride_h=layer.stride, stride_w=layer.stride, dil_h=layer.dilation, dil_w=layer.dilation,
                    pad_top=layer.pad_top, pad_left=layer.pad_left, out_w=layer.out_w, pad_value=pad_value),
        Instruction("CONFIG", **cfg),
    ]
    if credits:
        prog += [Instruction("NOP", unit="compute", push_prev=1)] * t.slots  # free A/W slots
        prog += [Instruction("NOP", unit="store", push_prev=1)] * 2           # free output slots
    chunk_no = out_no = 0
    w_stream = weight_addr
    weight_chunks = []
    for n_idx, n0 in enumerate(range(0, layer.out_c, t.tn)):
        tn = min(t.tn, layer.out_c - n0)
        prm = (n_idx % 2) * 3 * t.tn  # two parameter slots: the next tile's table loads early
        prog.append(Instruction("LOAD", buf="PRM", dtype="s32", dram=param_addr + 4 * 3 * n0, sram=prm,
                                x=3 * tn, y=1, y_stride=0))
        chunks = []
        for c0 in range(0, layer.in_c, t.tc):
            tc = min(t.tc, layer.in_c - c0)
            chunks.append((c0, tc, w_stream))
            weight_chunks.append((w_stream, n0, tn, c0, tc))
            stream = streams.get((n0, c0)) if streams else None
            w_stream += stream.nbytes if stream is not None else (tn * window * tc * w_bits + 7) // 8
        for p0 in range(0, pixels, t.tp):
            tp = min(t.tp, pixels - p0)
            for ci, (c0, tc, w_at) in enumerate(chunks):
                slot = chunk_no % t.slots
                chunk_no += 1
                k = window * tc
                prog.append(Instruction("LOADWIN", buf="INP", dtype=a_mem, dram=input_addr, sram=slot * a_slot,
                                        pix0=p0, npix=tp, c0=layer.in_c0 + c0, nc=tc, pop_next=1))
                st = streams.get((n0, c0)) if streams else None
                fmt = dict(format=st.format, param=st.param, zero=st.zero) if st is not None else {}
                prog.append(Instruction("LOADW", sram=slot * w_slot, dram=w_at, count=tn * k, dtype=w_type,
                                        push_next=1, **fmt))
                prog.append(Instruction("GEMM", inp=slot * a_slot, wgt=slot * w_slot, acc=0, m=tp, n=tn, k=k,
                                        accumulate=int(ci > 0), pop_prev=1, push_prev=1))
            oslot = out_no % 2
            out_no += 1
            prog.append(Instruction("REQUANT", src=0, dst_buf="OUT", dst=oslot * o_slot, prm=prm, m=tp, n=tn,
                                    pop_next=1, push_next=1))
            prog.append(Instruction("STORE", buf="OUT", dtype=o_mem,
                                    dram=output_addr + (p0 * layer.out_stride + layer.out_c0 + n0) * o_bits // 8,
                                    sram=oslot * o_slot, x=tn, y=tp, y_stride=layer.out_stride, pop_prev=1,
                                    push_prev=1))
    return LayerProgram(prog, t, weight_chunks, output_addr + output_bytes - base, input_addr, weight_addr,
                        param_addr, output_addr)


@dataclass(frozen=True)
class PoolLayer:
    """Max pooling over NHWC data (padding reads ``pad_value``: the type's minimum for max)."""

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


def pool_program(layer: PoolLayer, chip: ChipConfig, dtype: str, pad_value: int, *, input_addr: int,
                 output_addr: int, credits: bool = True) -> list[Instruction]:
    """MAXPOOL over gathered windows, pixel tiles x channel chunks, double-buffered like conv_program."""
    words = chip.buffer_words()
    window = layer.k_h * layer.k_w
    pixels = layer.out_h * layer.out_w
    bits = int(dtype[1:])
    nc = layer.channels
    while 2 * window * nc > words["INP"] and nc > 1:
        nc = -(-nc // 2)
    tp = max(1, min(pixels, 4096, words["INP"] // (2 * window * nc), words["OUT"] // (2 * nc)))
    prog = [Instruction("SETWIN", in_h=layer.in_h, in_w=layer.in_w, in_c=layer.channels, k_h=layer.k_h,
                        k_w=layer.k_w, stride_h=layer.stride_h, stride_w=layer.stride_w, dil_h=layer.dilation,
                        dil_w=layer.dilation, pad_top=layer.pad_top, pad_left=layer.pad_left, out_w=layer.out_w,
                        pad_value=pad_value)]
    if credits:
        prog += [Instruction("NOP", unit="compute", push_prev=1)] * 2 + [Instruction("NOP", unit="store", push_prev=1)] * 2
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


def global_avgpool_program(pixels: int, channels: int, chip: ChipConfig, config: dict, *, input_addr: int,
                           param_addr: int, output_addr: int, credits: bool = True) -> list[Instruction]:
    """SUMPOOL over chunks of at most 1023 positions (accumulating), then REQUANT and STORE.

    The parameter table at ``param_addr`` holds bias[C] = 0, the fp32 scale s_in / (s_out * HW)
    [C] and shift[C] = 0; CONFIG's a_zp makes SUMPOOL sum (x - z_in).
    """
    words = chip.buffer_words()
    config, a_mem, o_mem = dram_types(config)
    a_bits = int(a_mem[1:])

    chunk = max(1, min(1023, pixels, words["INP"] // (2 * channels)))
    if channels > 4096 or 2 * channels > words["INP"] or 3 * channels > words["PRM"]:
        raise ValueError(f"global average pool over {channels} channels does not fit the chip's buffers")
    prog = [Instruction("CONFIG", **config)]
    if credits:
        prog += [Instruction("NOP", unit="compute", push_prev=1)] * 2 + [Instruction("NOP", unit="store", push_prev=1)] * 2
    prog.append(Instruction("LOAD", buf="PRM", dtype="s32", dram=param_addr, sram=0, x=3 * channels, y=1, y_stride=0))
    slot_words = chunk * channels
    for i, p0 in enumerate(range(0, pixels, chunk)):
        r = min(chunk, pixels - p0)
        slot = i % 2
        prog.append(Instruction("LOAD", buf="INP", dtype=a_mem, dram=input_addr + p0 * channels * a_bits // 8,
                                sram=slot * slot_words, x=channels, y=r, y_stride=channels, pop_next=1, push_next=1))
        prog.append(Instruction("SUMPOOL", src_buf="INP", src=slot * slot_words, acc=0, m=1, r=r, c=channels,
                                accumulate=int(i > 0), pop_prev=1, push_prev=1))
    prog.append(Instruction("REQUANT", src=0, dst_buf="OUT", dst=0, prm=0, m=1, n=channels, pop_next=1, push_next=1))
    prog.append(Instruction("STORE", buf="OUT", dtype=o_mem, dram=output_addr, sram=0, x=channels, y=1,
                            y_stride=0, pop_prev=1, push_prev=1))

    return prog


def add_program(count: int, chip: ChipConfig, config: dict, *, a_addr: int, b_addr: int, param_addr: int,
                output_addr: int, credits: bool = True) -> list[Instruction]:
    """VADD of two packed tensors of ``count`` elements, in chunks, double-buffered.

    The 9-word add record is at ``param_addr``; a goes to INP, b to WGT, the sum to OUT.
    """
    words = chip.buffer_words()
    config, a_mem, o_mem = dram_types(config)
    bits = int(a_mem[1:])
    chunk = max(1, min(count, 16384, words["INP"] // 2, words["WGT"] // 2, words["OUT"] // 2))  # LOAD x: 14 bits
    if bits == 4 and chunk % 2:
        chunk -= 1
    prog = [Instruction("CONFIG", **config)]
    if credits:
        prog += [Instruction("NOP", unit="compute", push_prev=1)] * 2 + [Instruction("NOP", unit="store", push_prev=1)] * 2
    prog.append(Instruction("LOAD", buf="PRM", dtype="s32", dram=param_addr, sram=0, x=9, y=1, y_stride=0))
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


def dwconv_program(layer: ConvLayer, chip: ChipConfig, config: dict, pad_value: int, *, input_addr: int,
                   weight_addr: int, param_addr: int, output_addr: int,
                   credits: bool = True) -> tuple[list[Instruction], list[tuple[int, int, int]], int]:
    """Depthwise convolution (one filter per channel): LOADWIN, LOADW, DWCONV, REQUANT, STORE per
    (pixel tile, channel chunk), double-buffered like conv_program.

    Returns the instructions, the weight chunks (dram addr, c0, cc) in stream order, each laid out
    [k_h][k_w][cc], and the channel chunk size (parameter tables go tile by tile at 12 * c0).
    """
    words = chip.buffer_words()
    window = layer.k_h * layer.k_w
    pixels = layer.out_h * layer.out_w
    c = layer.in_c
    config, a_mem, o_mem = dram_types(config)
    w_bits, o_bits = int(config["w"][1:]), int(o_mem[1:])
    cc = min(c, 4096, words["WGT"] // (2 * window), words["PRM"] // 6, words["INP"] // (2 * window))
    if cc < 1 or window > 1023:
        raise ValueError(f"layer {layer.name}: a {layer.k_h}x{layer.k_w} depthwise window does not fit the chip")
    tp = max(1, min(pixels, 4096, words["INP"] // (2 * window * cc), words["ACC"] // cc, words["OUT"] // (2 * cc)))
    if tp > chip.rows:
        tp -= tp % chip.rows
    prog = [Instruction("SETWIN", in_h=layer.in_h, in_w=layer.in_w, in_c=c, k_h=layer.k_h, k_w=layer.k_w,
                        stride_h=layer.stride, stride_w=layer.stride, dil_h=layer.dilation, dil_w=layer.dilation,
                        pad_top=layer.pad_top, pad_left=layer.pad_left, out_w=layer.out_w, pad_value=pad_value),
            Instruction("CONFIG", **config)]
    if credits:
        prog += [Instruction("NOP", unit="compute", push_prev=1)] * 2 + [Instruction("NOP", unit="store", push_prev=1)] * 2
    chunks, at, step, out_no = [], weight_addr, 0, 0
    a_slot, w_slot, o_slot = tp * window * cc, window * cc, tp * cc
    for ci, c0 in enumerate(range(0, c, cc)):
        n = min(cc, c - c0)
        chunks.append((at, c0, n))
        w_at = at
        at += (window * n * w_bits + 7) // 8
        prm = (ci % 2) * 3 * cc
        prog.append(Instruction("LOAD", buf="PRM", dtype="s32", dram=param_addr + 12 * c0, sram=prm, x=3 * n, y=1,
                                y_stride=0))
        for p0 in range(0, pixels, tp):
            m = min(tp, pixels - p0)
            slot = step % 2
            step += 1
            prog.append(Instruction("LOADWIN", buf="INP", dtype=a_mem, dram=input_addr, sram=slot * a_slot,
                                    pix0=p0, npix=m, c0=c0, nc=n, pop_next=1))
            prog.append(Instruction("LOADW", sram=slot * w_slot, dram=w_at, count=window * n, dtype=config["w"],
                                    push_next=1))
            prog.append(Instruction("DWCONV", inp=slot * a_slot, wgt=slot * w_slot, acc=0, m=m, r=window, c=n,
                                    pop_prev=1, push_prev=1))
            oslot = out_no % 2
            out_no += 1
            prog.append(Instruction("REQUANT", src=0, dst_buf="OUT", dst=oslot * o_slot, prm=prm, m=m, n=n,
                                    pop_next=1, push_next=1))
            prog.append(Instruction("STORE", buf="OUT", dtype=o_mem,
                                    dram=output_addr + (p0 * c + c0) * o_bits // 8, sram=oslot * o_slot, x=n, y=m,
                                    y_stride=c, pop_prev=1, push_prev=1))

    return prog, chunks, cc


def window_counts(in_size: int, out_size: int, k: int, stride: int, pad: int, dilation: int = 1) -> list[int]:
    """For each output position, how many of its window taps fall inside the input (not padding)."""
    return [sum(0 <= o * stride - pad + t * dilation < in_size for t in range(k)) for o in range(out_size)]


def avgpool_program(layer: PoolLayer, chip: ChipConfig, config: dict, counts: list[int], *, input_addr: int,
                    param_addr: int, output_addr: int, credits: bool = True,
                    divide: Optional[tuple[list[int], int]] = None) -> tuple[list[Instruction], int]:
    """Average pooling, one instruction per run of output pixels that divide by the same count.

    Requantizing (``divide`` None): LOADWIN (padding reads the input zero point), SUMPOOL of
    (x - z_in) into ACC, REQUANT per run.  ``counts[p]`` indexes the divisor of output pixel p
    among the parameter tables at ``param_addr``: table j holds, chunk by chunk (at
    12 * c0 + 12 * C * j), bias 0, the fp32 scale s_in / (s_out * divisor_j) and shift 0.

    Same quantization in and out (``divide`` = (divisors, pad value)): LOADWIN, then AVGPOOL of
    the raw values per run, an exact integer division rounded half to even.

    Returns the instructions and the channel chunk size.
    """
    words = chip.buffer_words()
    window = layer.k_h * layer.k_w
    pixels = layer.out_h * layer.out_w
    n_tables = max(counts) + 1
    config, a_mem, o_mem = dram_types(config)
    o_bits = int(o_mem[1:])
    cc = min(layer.channels, 4096, words["INP"] // (2 * window),
             words["PRM"] // (6 * n_tables) if divide is None else 4096)
    if cc < 1 or window > 1023:
        raise ValueError(f"a {layer.k_h}x{layer.k_w} average pool with {n_tables} divisors does not fit the chip")
    tp = max(1, min(pixels, 4096, words["INP"] // (2 * window * cc), words["ACC"] // cc, words["OUT"] // (2 * cc)))
    prog = [Instruction("SETWIN", in_h=layer.in_h, in_w=layer.in_w, in_c=layer.channels, k_h=layer.k_h,
                        k_w=layer.k_w, stride_h=layer.stride_h, stride_w=layer.stride_w, dil_h=layer.dilation,
                        dil_w=layer.dilation, pad_top=layer.pad_top, pad_left=layer.pad_left, out_w=layer.out_w,
                        pad_value=config["a_zp"] if divide is None else divide[1]),
            Instruction("CONFIG", **config)]
    if credits:
        prog += [Instruction("NOP", unit="compute", push_prev=1)] * 2 + [Instruction("NOP", unit="store", push_prev=1)] * 2
    a_slot, o_slot = tp * window * cc, tp * cc
    step = 0
    c = layer.channels
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
            runs = []  # (first pixel in the tile, pixels, table)
            for q in range(m):
                if runs and runs[-1][2] == counts[p0 + q]:
                    runs[-1][1] += 1
                else:
                    runs.append([q, 1, counts[p0 + q]])
            for r_no, (q0, rn, j) in enumerate(runs):
                first, last = int(r_no == 0), int(r_no == len(runs) - 1)
                if divide is None:
                    prog.append(Instruction("REQUANT", src=q0 * n, dst_buf="OUT", dst=slot * o_slot + q0 * n,
                                            prm=prm + 3 * cc * j, m=rn, n=n, pop_next=first, push_next=last))
                else:
                    prog.append(Instruction("AVGPOOL", src_buf="INP", src=slot * a_slot + q0 * window * n,
                                            dst_buf="OUT", dst=slot * o_slot + q0 * n, m=rn, r=window, c=n,
                                            divisor=divide[0][j], even=1, pop_prev=first, pop_next=first,
                                            push_prev=last, push_next=last))
            prog.append(Instruction("STORE", buf="OUT", dtype=o_mem, dram=output_addr + (p0 * c + c0) * o_bits // 8,
                                    sram=slot * o_slot, x=n, y=m, y_stride=c, pop_prev=1, push_prev=1))
    return prog, cc


def lut_program(pieces: list[dict], chip: ChipConfig, *, credits: bool = True) -> list[Instruction]:
    """Strided copies through the vector unit: for each piece, ``rows`` rows of ``cols`` elements go
    from ``src`` (row pitch ``src_pitch``) to ``dst`` (row pitch ``dst_pitch``), mapped by VLUT
    through the 256-word table at DRAM ``table`` or, without a table, copied (VMAX of a row with
    itself).  Used for Concat (a channel slice per input) and elementwise 8-bit maps.

    Piece keys: src, dst (DRAM byte addresses), src_type, dst_type, rows, cols, src_pitch,
    dst_pitch, table (DRAM byte address or None).
    """
    words = chip.buffer_words()
    prog = [Instruction("NOP", unit="compute", push_prev=1)] * 2 + [Instruction("NOP", unit="store", push_prev=1)] * 2 \
        if credits else []
    step = 0
    for k, pc in enumerate(pieces):
        cols = pc["cols"]
        if cols > 16383 or 2 * cols > min(words["INP"], words["OUT"]):
            raise ValueError(f"rows of {cols} elements do not fit the chip's buffers")
        rows_per = max(1, min(pc["rows"], 4095, words["INP"] // (2 * cols), words["OUT"] // (2 * cols)))
        slot_words = rows_per * cols
        prm = (k % (words["PRM"] // 256)) * 256  # a table per piece, reused only far apart
        if pc["table"] is not None:
            prog.append(Instruction("LOAD", buf="PRM", dtype="s32", dram=pc["table"], sram=prm, x=256, y=1, y_stride=0))
        sb, db = int(pc["src_type"][1:]), int(pc["dst_type"][1:])
        for r0 in range(0, pc["rows"], rows_per):
            nr = min(rows_per, pc["rows"] - r0)
            slot = (step % 2) * slot_words
            step += 1
            prog.append(Instruction("LOAD", buf="INP", dtype=pc["src_type"], dram=pc["src"] + r0 * pc["src_pitch"] * sb // 8,
                                    sram=slot, x=cols, y=nr, y_stride=pc["src_pitch"], pop_next=1, push_next=1))
            if pc["table"] is not None:
                prog.append(Instruction("VLUT", src_buf="INP", src=slot, dst_buf="OUT", dst=slot, n=nr * cols, prm=prm,
                                        **STREAM_TOKENS))
            else:
                prog.append(Instruction("VMAX", a_buf="INP", a=slot, b_buf="INP", b=slot, dst_buf="OUT", dst=slot,
                                        n=nr * cols, **STREAM_TOKENS))
            prog.append(Instruction("STORE", buf="OUT", dtype=pc["dst_type"], dram=pc["dst"] + r0 * pc["dst_pitch"] * db // 8,
                                    sram=slot, x=cols, y=nr, y_stride=pc["dst_pitch"], pop_prev=1, push_prev=1))
    return prog
