"""The reference quantizer, in plain numpy, written for reading.

* :func:`qrange` and :func:`scale_zero_point` follow ``onnxruntime.quantization``
  (``get_qmin_qmax_for_qType`` and ``compute_scale_zp``).
* :func:`quantize` is ONNX QuantizeLinear as ONNX Runtime computes it: a float32 true division,
  round half to even, saturation; per tensor, per axis or per block.
* :func:`dequantize` is ONNX DequantizeLinear: float32((q - zp)) * scale.
* :func:`pack_bits` / :func:`unpack_bits` define the bit-level layout of every packed stream
  (DRAM tensors, int4 pairs, compressed weights): element i occupies bits [i*b, (i+1)*b) of a
  little-endian bit stream, so int4 puts the first element in the low nibble.

See docs/numerics.md for the rules and the engines each one matches.
"""

from __future__ import annotations

from typing import Optional, Sequence, Union

import numpy as np

DtypeLike = Union[str, tuple[int, bool]]

_NAMED = {"u4": (4, False), "s4": (4, True), "u8": (8, False), "s8": (8, True),
          "u16": (16, False), "s16": (16, True), "u32": (32, False), "s32": (32, True)}


def dtype_bits(dtype: DtypeLike) -> tuple[int, bool]:
    """``"s8"`` or ``(8, True)`` -> ``(bits, signed)``; any width 1..32 is accepted as a tuple."""
    if isinstance(dtype, str):
        if dtype not in _NAMED:
            raise ValueError(f"unknown integer type {dtype!r}; expected one of {', '.join(_NAMED)}")
        return _NAMED[dtype]
    bits, signed = dtype
    if not 1 <= int(bits) <= 32:
        raise ValueError(f"bit width {bits} outside 1..32")
    return int(bits), bool(signed)


def qrange(dtype: DtypeLike, *, symmetric: bool = False, reduce_range: bool = False) -> tuple[int, int]:
    """Integer range used for a quantized type, as onnxruntime.quantization chooses it.

    Full range: [-2^(b-1), 2^(b-1)-1] or [0, 2^b-1].  ``reduce_range`` takes precedence and
    drops one bit: signed [-2^(b-2), 2^(b-2)] (ORT's int8 [-64, 64], int16 [-16384, 16384],
    int4 [-4, 3]) and unsigned [0, 2^(b-1)-1].  ``symmetric`` (without reduce_range) makes
    signed 8- and 16-bit ranges narrow: [-(2^(b-1)-1), 2^(b-1)-1].  int4 keeps -8 (as ORT does).
    """
    bits, signed = dtype_bits(dtype)
    if reduce_range:
        if not signed:
            return 0, (1 << (bits - 1)) - 1
        if bits == 4:
            return -4, 3
        return -(1 << (bits - 2)), 1 << (bits - 2)
    if signed:
        lo, hi = -(1 << (bits - 1)), (1 << (bits - 1)) - 1
        if symmetric and bits in (8, 16):
            lo = -hi
        return lo, hi
    return 0, (1 << bits) - 1


def narrow_range(dtype: DtypeLike) -> tuple[int, int]:
    """Symmetric range without the most negative value, any width: [-(2^(b-1)-1), 2^(b-1)-1]."""
    bits, signed = dtype_bits(dtype)
    if not signed:
        raise ValueError("narrow range applies to signed types")
    return -((1 << (bits - 1)) - 1), (1 << (bits - 1)) - 1


def scale_zero_point(rmin: np.ndarray | float, rmax: np.ndarray | float, qmin: int, qmax: int,
                     *, symmetric: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """Scale and zero point for a real range, as ``onnxruntime.quantization.compute_scale_zp``.

    The range is widened to include 0 (and made symmetric on request), then
    ``scale = float32((rmax - rmin) / (qmax - qmin))`` computed in float64;
    ``zp = round_half_even(qmin - rmin / scale)`` (scale still in float64), or
    ``round_half_even((qmin + qmax) / 2)`` when symmetric.  A range narrower than the
    smallest normal float32 gives scale 1, zero point 0.  Works elementwise (per channel).
    """
    if qmin > 0 or qmax < 0 or qmin >= qmax:
        raise ValueError(f"need qmin <= 0 <= qmax and qmin < qmax, got {qmin}, {qmax}")
    rmin = np.minimum(np.asarray(rmin, dtype=np.float32), np.float32(0))
    rmax = np.maximum(np.asarray(rmax, dtype=np.float32), np.float32(0))
    if symmetric:
        absmax = np.maximum(np.abs(rmin), np.abs(rmax))
        rmin, rmax = -absmax, absmax
    scale64 = (rmax.astype(np.float64) - rmin.astype(np.float64)) / float(qmax - qmin)
    if symmetric:
        zp = np.full(scale64.shape, np.round((qmin + qmax) / 2.0))
    else:
        with np.errstate(divide="ignore", invalid="ignore"):
            zp = np.round(qmin - rmin.astype(np.float64) / scale64)
    tiny = scale64 < np.finfo(np.float32).tiny
    scale = np.where(tiny, 1.0, scale64).astype(np.float32)
    zp = np.where(tiny, 0, zp).astype(np.int64)
    return scale, zp


def _broadcast_params(x: np.ndarray, param: np.ndarray, axis: Optional[int],
                      block_size: Optional[int]) -> np.ndarray:
    """Expand a scale/zero-point tensor to x's shape: scalar, per axis (1-D) or per block."""
    param = np.asarray(param)
    if param.ndim == 0 or param.size == 1 and axis is None and block_size is None:
        return param.reshape(())
    if axis is None:
        raise ValueError("a non-scalar scale or zero point needs an axis")
    axis = axis % x.ndim
    if block_size is None:
        if param.ndim != 1 or param.shape[0] != x.shape[axis]:
            raise ValueError(f"per-axis parameter of shape {param.shape} does not match axis {axis} "
                             f"of length {x.shape[axis]}")
        shape = [1] * x.ndim
        shape[axis] = -1
        return param.reshape(shape)
    # Blocked: param has x's shape with axis length ceil(n / block_size).
    nblocks = -(-x.shape[axis] // block_size)
    expect = list(x.shape)
    expect[axis] = nblocks
    if list(param.shape) != expect:
        raise ValueError(f"blocked parameter must have shape {tuple(expect)}, got {param.shape}")
    rep = np.repeat(param, block_size, axis=axis)
    return np.take(rep, np.arange(x.shape[axis]), axis=axis)


def quantize(x: np.ndarray, scale: np.ndarray | float, zero_point: np.ndarray | int,
             dtype: DtypeLike, *, axis: Optional[int] = None, block_size: Optional[int] = None,
             qmin: Optional[int] = None, qmax: Optional[int] = None) -> np.ndarray:
    """ONNX QuantizeLinear: ``saturate(round_half_even(x / scale) + zero_point)``.

    ``x / scale`` is a float32 true division; the result is clamped to [qmin - zp, qmax - zp]
    in float, rounded half to even, and the zero point added (the same integers as rounding
    first).  NaN maps to qmin.  Returns int64 values; ``qmin``/``qmax`` default to the type's
    full range.
    """
    bits, signed = dtype_bits(dtype)
    lo, hi = qrange((bits, signed))
    lo = lo if qmin is None else qmin
    hi = hi if qmax is None else qmax
    x = np.asarray(x, dtype=np.float32)
    s = _broadcast_params(x, np.asarray(scale, dtype=np.float32), axis, block_size)
    zp = _broadcast_params(x, np.asarray(zero_point, dtype=np.int64), axis, block_size)
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        v = x / s
        v = np.where(np.isnan(v), np.float32(-np.inf), v)
        v = np.clip(v, (lo - zp).astype(np.float32), (hi - zp).astype(np.float32))
    return np.rint(v).astype(np.int64) + zp


def dequantize(q: np.ndarray, scale: np.ndarray | float, zero_point: np.ndarray | int = 0, *,
               axis: Optional[int] = None, block_size: Optional[int] = None) -> np.ndarray:
    """ONNX DequantizeLinear: ``float32(q - zero_point) * scale`` in float32."""
    q = np.asarray(q, dtype=np.int64)
    s = _broadcast_params(q, np.asarray(scale, dtype=np.float32), axis, block_size)
    zp = _broadcast_params(q, np.asarray(zero_point, dtype=np.int64), axis, block_size)
    return (q - zp).astype(np.float32) * s


def quantize_tensor(x: np.ndarray, dtype: DtypeLike, *, axis: Optional[int] = None,
                    symmetric: bool = False, reduce_range: bool = False,
                    narrow: bool = False) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Min-max quantization of a whole tensor (``axis=None``) or per channel along ``axis``.

    Returns ``(q, scale, zero_point)``; ``narrow`` uses :func:`narrow_range` for signed types.
    """
    x = np.asarray(x, dtype=np.float32)
    qmin, qmax = narrow_range(dtype) if narrow else qrange(dtype, symmetric=symmetric,
                                                          reduce_range=reduce_range)
    if axis is None:
        rmin, rmax = x.min(initial=0.0), x.max(initial=0.0)
    else:
        red = tuple(i for i in range(x.ndim) if i != axis % x.ndim)
        rmin, rmax = x.min(axis=red, initial=0.0), x.max(axis=red, initial=0.0)
    scale, zp = scale_zero_point(rmin, rmax, qmin, qmax, symmetric=symmetric or narrow)
    q = quantize(x, scale, zp, dtype, axis=axis, qmin=qmin, qmax=qmax)
    return q, scale, zp


# --------------------------------------------------------------------------- bit packing
def pack_bits(values: Sequence[int] | np.ndarray, bits: int) -> np.ndarray:
    """Pack integers into a little-endian bit stream, ``bits`` each; returns uint8 bytes.

    The low ``bits`` bits of each value are stored (two's complement for negatives); the
    last byte is padded with zero bits.
    """
    if not 1 <= bits <= 32:
        raise ValueError(f"bit width {bits} outside 1..32")
    v = np.asarray(values, dtype=np.int64).ravel() & ((1 << bits) - 1)
    if bits in (8, 16, 32):  # whole bytes: the same stream as the bit planes, little-endian
        return v.astype(f"<u{bits // 8}").view(np.uint8)
    bitplanes = ((v[:, None] >> np.arange(bits)) & 1).astype(np.uint8).ravel()
    return np.packbits(bitplanes, bitorder="little")


def unpack_bits(data: np.ndarray | bytes, count: int, bits: int, signed: bool,
                bit_offset: int = 0) -> np.ndarray:
    """Read ``count`` integers of ``bits`` bits from a little-endian bit stream (int64 out)."""
    if not 1 <= bits <= 32:
        raise ValueError(f"bit width {bits} outside 1..32")
    raw = np.frombuffer(bytes(data), dtype=np.uint8) if isinstance(data, (bytes, bytearray)) \
        else np.asarray(data, dtype=np.uint8)
    need = bit_offset + count * bits
    if need > raw.size * 8:
        raise ValueError(f"stream of {raw.size} bytes is too short for {count} x {bits}-bit values "
                         f"from bit {bit_offset}")
    stream = np.unpackbits(raw, bitorder="little")[bit_offset:need].astype(np.int64)
    v = (stream.reshape(count, bits) << np.arange(bits)).sum(axis=1) if count else np.zeros(0, np.int64)
    if signed:
        v = np.where(v >> (bits - 1) & 1, v - (1 << bits), v)
    return v.astype(np.int64)


def pack_int4(values: np.ndarray) -> np.ndarray:
    """ONNX int4/uint4 packing: two per byte, element 0 in the low nibble; odd length pads 0."""
    return pack_bits(np.asarray(values).ravel(), 4)


def unpack_int4(data: np.ndarray, count: int, signed: bool) -> np.ndarray:
    """Inverse of :func:`pack_int4`."""
    return unpack_bits(data, count, 4, signed)
