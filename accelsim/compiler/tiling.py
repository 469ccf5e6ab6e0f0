"""Tiling of one convolution or GEMM layer onto the chip.

A layer is the GEMM ``out[P, N] = A[P, K] @ W[N, K].T`` with P output pixels, K = k_h*k_w*C and N
output channels.  The tiler searches pixel tiles ``tp``, input-channel chunks ``tc`` (K chunk
``k_h*k_w*tc``), output-channel tiles ``tn`` and single or double buffering for the cheapest
tiling (array cycles from the chip's own tile formula against DMA time) whose A/W tiles, the
accumulators and two output tiles fit the buffers.  accelsim.compiler.lower.gemm emits it.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..chip import ChipConfig
from ..chip.counters import chip_vector
from ..chip.timing import gemm_cycles, precision_rate


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
    batch: int = 1       # images, one after another in DRAM: their output pixels are one GEMM's rows
    stride_w: int = 0    # horizontal stride and dilation (0: as vertical, ``stride`` / ``dilation``)
    dilation_w: int = 0

    @property
    def sw(self) -> int:
        return self.stride_w or self.stride

    @property
    def dw(self) -> int:
        return self.dilation_w or self.dilation

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
        return (self.in_w + self.pad_left + self.pad_right - self.dw * (self.k_w - 1) - 1) // self.sw + 1

    @property
    def pixels(self) -> int:
        """Output pixels of all images: the rows of the layer's GEMM."""
        return self.batch * self.out_h * self.out_w

    @property
    def window_rows(self) -> int:
        """SETWIN.out_h: output rows per image when a batch shares the GEMM (0: one image)."""
        return self.out_h if self.batch > 1 else 0

    @property
    def macs(self) -> int:
        return self.pixels * self.out_c * self.k_h * self.k_w * self.in_c


@dataclass(frozen=True)
class Tiling:
    tp: int           # output pixels per tile
    tc: int           # input channels per K chunk
    tn: int           # output channels per tile
    slots: int = 2    # 2: double-buffered A/W tiles (loads overlap compute), 1: single


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
    p = chip_vector(chip) if _p is None else _p
    num, den = precision_rate(w_bits, a_bits, chip["array"]["base_bits"], chip["array"]["min_bits"])
    pixels, window = layer.pixels, layer.k_h * layer.k_w
    array = 0.0
    for tp, np_ in _splits(pixels, t.tp):
        for tn, nn in _splits(layer.out_c, t.tn):
            for tc, nc in _splits(layer.in_c, t.tc):
                array += np_ * nn * nc * gemm_cycles(tp, tn, window * tc, num, den, p)
    n_p, n_n, n_c = -(-pixels // t.tp), -(-layer.out_c // t.tn), -(-layer.in_c // t.tc)
    bw, lat = chip["dram"]["bandwidth"], chip["dram"]["latency"]
    a_bytes = n_n * layer.batch * layer.in_h * layer.in_w * layer.in_c * a_bits / 8  # once per channel tile
    w_fetches = 1 if n_c == 1 else n_p  # one K chunk: the weights stay for every pixel tile
    w_bytes = w_fetches * layer.out_c * window * layer.in_c * w_bits / 8
    dma = (a_bytes + w_bytes) / bw + 2 * n_p * n_n * n_c * lat
    return max(array, dma) if t.slots == 2 else array + dma


def choose_tiling(layer: ConvLayer, chip: ChipConfig, w_bits: int = 8, a_bits: int = 8) -> Tiling:
    """The cheapest tiling (tiling_cost) whose tiles fit the buffers; double buffering preferred."""
    words = chip.buffer_words()
    window = layer.k_h * layer.k_w
    pixels = layer.pixels
    tn_limit = min(layer.out_c, words["PRM"] // 6, 4096)
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
