"""Compressed weight formats read by LOADW: the byte layout of each, and its reference decoder.

Every stream is a little-endian bit stream (:func:`isa.quant.pack_bits`) starting at a DRAM byte
address; parts that follow one another start on a byte boundary.  ``b`` is the weight width of
the LOADW ``dtype``, ``n`` its ``count``, ``zero`` the value left-out elements take (normally the
weight zero point, so that they stand for real zeros).

* ``dense``    n values of b bits.
* ``bitmask``  n mask bits (1 = stored), then, from the next byte, one b-bit value per set bit,
               in element order (zero-value compression, as NVDLA's weight mask bits).
* ``rle``      entries of (run: ``param`` bits unsigned, value: b bits): ``run`` copies of
               ``zero`` followed by ``value``; entries repeat until exactly n elements are made
               (an entry that would pass n is an error).  A run longer than 2^param - 1 is
               written as several entries whose value is ``zero`` itself.
* ``codebook`` a palette of 2^k values of b bits (k = ``param``), then, from the next byte,
               n indices of k bits; element i is palette[index i].
"""

from __future__ import annotations

import numpy as np

from .quant import unpack_bits


class WeightStreamError(ValueError):
    """A compressed stream is malformed or runs past the end of DRAM."""


def _bytes(bits: int) -> int:
    return (bits + 7) // 8


def _read(dram: np.ndarray, start: int, count: int, bits: int, signed: bool,
          bit_offset: int = 0) -> np.ndarray:
    end = start + _bytes(bit_offset + count * bits)
    if start < 0 or end > dram.size:
        raise WeightStreamError(f"stream bytes {start}..{end - 1} run past DRAM of {dram.size} bytes")
    return unpack_bits(dram[start:end], count, bits, signed, bit_offset)


def stream_bytes_bound(fmt: str, count: int, bits: int, param: int = 1) -> int:
    """The most bytes a stream of ``count`` weights of ``bits`` bits can take in format ``fmt``
    (exact for dense and codebook; bitmask: every value stored; rle: one entry per weight)."""
    if fmt == "dense":
        return _bytes(count * bits)
    if fmt == "bitmask":
        return _bytes(count) + _bytes(count * bits)
    if fmt == "codebook":
        return _bytes((1 << param) * bits) + _bytes(count * param)
    if fmt == "rle":
        return _bytes(count * (param + bits))
    raise WeightStreamError(f"unknown weight format {fmt!r}")


def decode_weights(dram: np.ndarray, addr: int, count: int, fmt: str, bits: int, signed: bool,
                   param: int = 1, zero: int = 0) -> tuple[np.ndarray, int]:
    """Decode ``count`` weights stored at ``addr``; returns (int64 values, bytes read)."""
    if fmt == "dense":
        return _read(dram, addr, count, bits, signed), stream_bytes_bound(fmt, count, bits)
    if fmt == "bitmask":
        mask = _read(dram, addr, count, 1, False).astype(bool)
        nnz = int(mask.sum())
        vals_at = addr + _bytes(count)
        out = np.full(count, zero, dtype=np.int64)
        out[mask] = _read(dram, vals_at, nnz, bits, signed)
        return out, _bytes(count) + _bytes(nnz * bits)
    if fmt == "codebook":
        k = param
        palette = _read(dram, addr, 1 << k, bits, signed)
        idx_at = addr + _bytes((1 << k) * bits)
        idx = _read(dram, idx_at, count, k, False)
        return palette[idx], stream_bytes_bound(fmt, count, bits, k)  # exact for a codebook
    if fmt == "rle":
        out = np.empty(count, dtype=np.int64)
        produced, bitpos, entry = 0, 0, param + bits
        while produced < count:
            run = int(_read(dram, addr + bitpos // 8, 1, param, False, bitpos % 8)[0])
            value = int(_read(dram, addr + (bitpos + param) // 8, 1, bits, signed,
                              (bitpos + param) % 8)[0])
            bitpos += entry
            if produced + run + 1 > count:
                raise WeightStreamError(
                    f"run-length entry at bit {bitpos - entry} makes {produced + run + 1} > {count} weights")
            out[produced:produced + run] = zero
            out[produced + run] = value
            produced += run + 1
        return out, _bytes(bitpos)
    raise WeightStreamError(f"unknown weight format {fmt!r}")
