"""Weight-stream encoders for LOADW: the inverse of isa.weights.decode_weights.

Each encoder returns the bytes of one stream (format layouts: isa/weights.py).  ``encode_best``
picks the format, and its parameter, that makes the fewest bytes; ``encode_for_chip`` the one
with the cheapest fetch on a chip; ``encode_as`` follows the compiler's ``weights`` option.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from isa.quant import pack_bits
from isa.table import DTYPES


#: How the compiler may store weight tiles: "auto" picks the cheapest fetch per tile on the chip.
WEIGHT_CHOICES = ("auto", "dense", "bitmask", "rle", "codebook")


@dataclass(frozen=True)
class WeightStream:
    """An encoded weight stream and the LOADW fields that decode it."""

    format: str
    data: bytes
    param: int = 1
    zero: int = 0

    @property
    def nbytes(self) -> int:
        return len(self.data)


def _check(values: np.ndarray, dtype: str) -> tuple[np.ndarray, int, bool]:
    bits, signed = DTYPES[dtype]
    v = np.asarray(values, dtype=np.int64).ravel()
    lo, hi = (-(1 << (bits - 1)), (1 << (bits - 1)) - 1) if signed else (0, (1 << bits) - 1)
    if v.size and (v.min() < lo or v.max() > hi):
        raise ValueError(f"weights outside the range {lo}..{hi} of {dtype}")
    return v, bits, signed


def encode_dense(values: np.ndarray, dtype: str) -> WeightStream:
    v, bits, _ = _check(values, dtype)
    return WeightStream("dense", pack_bits(v, bits).tobytes())


def encode_bitmask(values: np.ndarray, dtype: str, zero: int = 0) -> WeightStream:
    """Mask bit per weight (1 = stored), then the stored weights, byte-aligned."""
    v, bits, _ = _check(values, dtype)
    keep = v != zero
    data = pack_bits(keep.astype(np.int64), 1).tobytes() + pack_bits(v[keep], bits).tobytes()
    return WeightStream("bitmask", data, zero=zero)


def encode_rle(values: np.ndarray, dtype: str, run_bits: int = 4, zero: int = 0) -> WeightStream:
    """Entries (run of ``zero``s, value); long runs split with literal ``zero`` values.

    Vectorized: every element that is not ``zero`` (and the last element) ends an entry; a gap of
    g zeros before it becomes g // (max + 1) entries (max, zero) and one (g % (max + 1), value).
    """
    v, bits, _ = _check(values, dtype)
    if not 1 <= run_bits <= 8:
        raise ValueError("run_bits must be 1..8")
    if v.size == 0:
        return WeightStream("rle", b"", param=run_bits, zero=zero)
    max_run = (1 << run_bits) - 1
    ends = np.flatnonzero(v != zero)
    if ends.size == 0 or ends[-1] != v.size - 1:
        ends = np.append(ends, v.size - 1)
    starts = np.concatenate([[0], ends[:-1] + 1])
    gaps = ends - starts
    extra = gaps // (max_run + 1)
    runs = np.repeat(np.stack([np.full_like(gaps, max_run), gaps % (max_run + 1)], 1).ravel(),
                     np.stack([extra, np.ones_like(extra)], 1).ravel())
    vals = np.repeat(np.stack([np.full_like(gaps, zero), v[ends]], 1).ravel(),
                     np.stack([extra, np.ones_like(extra)], 1).ravel())
    entries = runs | ((vals & ((1 << bits) - 1)) << run_bits)
    return WeightStream("rle", pack_bits(entries, run_bits + bits).tobytes(), param=run_bits, zero=zero)


def encode_codebook(values: np.ndarray, dtype: str) -> WeightStream | None:
    """Palette of 2^k distinct values and k-bit indices; None if more than 256 distinct values."""
    v, bits, _ = _check(values, dtype)
    palette = np.unique(v)
    if palette.size > 256 or palette.size == 0:
        return None
    k = max(1, int(np.ceil(np.log2(palette.size))))
    if k > bits:
        return None
    full = np.concatenate([palette, np.full((1 << k) - palette.size, palette[0])])
    idx = np.searchsorted(palette, v)
    return WeightStream("codebook", pack_bits(full, bits).tobytes() + pack_bits(idx, k).tobytes(), param=k)


def encode_best(values: np.ndarray, dtype: str, zero: int = 0) -> WeightStream:
    """The smallest stream among dense, bitmask, run-length (run bits 1..8) and codebook."""
    candidates = [encode_dense(values, dtype), encode_bitmask(values, dtype, zero)]
    candidates += [encode_rle(values, dtype, rb, zero) for rb in (2, 3, 4, 5, 6, 8)]
    cb = encode_codebook(values, dtype)
    if cb is not None:
        candidates.append(cb)
    return min(candidates, key=lambda s: s.nbytes)


def fetch_cycles(stream: WeightStream, count: int, bandwidth: float, rates: dict[str, float]) -> float:
    """LOADW cost without latency: DRAM bytes / bandwidth or count / decompressor rate, the slower."""
    return _fetch(stream.format, stream.nbytes, count, bandwidth, rates)


def _fetch(fmt: str, nbytes: int, count: int, bandwidth: float, rates: dict[str, float]) -> float:
    return max(-(-nbytes // bandwidth), -(-count // rates[fmt]))


def stream_sizes(values: np.ndarray, dtype: str, zero: int = 0) -> list[tuple[str, int, int]]:
    """(format, param, bytes) of every candidate stream, computed without encoding, in the order
    encode_for_chip breaks ties: dense, bitmask, run-length with 2..8 run bits, codebook."""
    v, bits, _ = _check(values, dtype)
    n = v.size
    keep = v != zero
    nnz = int(keep.sum())
    out = [("dense", 1, -(-n * bits // 8)), ("bitmask", 1, -(-n // 8) + -(-nnz * bits // 8))]
    ends = np.flatnonzero(keep)
    if n and (ends.size == 0 or ends[-1] != n - 1):
        ends = np.append(ends, n - 1)
    gaps = ends - np.concatenate([[0], ends[:-1] + 1]) if n else ends
    for rb in (2, 3, 4, 5, 6, 8):
        entries = int(ends.size + (gaps // (1 << rb)).sum())
        out.append(("rle", rb, -(-entries * (rb + bits) // 8)))
    palette = np.unique(v).size
    if 0 < palette <= 256:
        k = max(1, int(np.ceil(np.log2(palette))))
        if k <= bits:
            out.append(("codebook", k, -(-(1 << k) * bits // 8) + -(-n * k // 8)))
    return out


def encode_for_chip(values: np.ndarray, dtype: str, chip, zero: int = 0) -> WeightStream:
    """The stream with the cheapest fetch on ``chip`` (an accelsim.chip.ChipConfig); ties go to
    the fewest bytes (less DRAM energy).  Candidates are sized without encoding; only the chosen
    one is encoded."""
    v = np.asarray(values).ravel()
    bw, rates = chip["dram"]["bandwidth"], chip["decompressor"]
    fmt, param, nbytes = min(stream_sizes(v, dtype, zero),
                             key=lambda c: (_fetch(c[0], c[2], v.size, bw, rates), c[2]))
    if fmt == "dense":
        stream = encode_dense(v, dtype)
    elif fmt == "bitmask":
        stream = encode_bitmask(v, dtype, zero)
    elif fmt == "rle":
        stream = encode_rle(v, dtype, param, zero)
    else:
        stream = encode_codebook(v, dtype)
    assert stream is not None and stream.nbytes == nbytes and stream.param == param, (fmt, param, nbytes)
    return stream


def encode_as(values: np.ndarray, dtype: str, fmt: str, chip, zero: int = 0) -> WeightStream:
    """The stream the compiler's ``weights`` option asks for: ``auto`` (the cheapest fetch on
    ``chip``), ``dense``, ``bitmask``, ``rle`` (the best run length) or ``codebook`` (dense when the
    values do not fit a palette)."""
    if fmt == "auto":
        return encode_for_chip(values, dtype, chip, zero)
    if fmt == "dense":
        return encode_dense(values, dtype)
    if fmt == "bitmask":
        return encode_bitmask(values, dtype, zero)
    if fmt == "rle":
        return min((encode_rle(values, dtype, rb, zero) for rb in range(1, 9)), key=lambda s: s.nbytes)
    if fmt == "codebook":
        return encode_codebook(values, dtype) or encode_dense(values, dtype)
    raise ValueError(f"weights={fmt!r}: expected one of {', '.join(WEIGHT_CHOICES)}")
