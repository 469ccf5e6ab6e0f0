"""Lookup tables over the 256 codes of an 8-bit (or 4-bit) tensor: the VLUT instruction's data."""

from __future__ import annotations

from typing import Callable

import numpy as np

from isa.quant import quantize
from isa.table import DTYPES

from .ir import QTensor


def lut_table(src: QTensor, dst: QTensor, fn: Callable[[np.ndarray], np.ndarray]) -> np.ndarray:
    """The table Q(fn(DQ(x))) over the 256 codes of an 8-bit element (ONNX Runtime's float rule:
    DQ = float32(x - z) * s; Q divides, rounds half to even and saturates).  Entry j is the
    output for the element whose low 8 bits are j (a 4-bit code repeats every 16 entries)."""
    bits, signed = DTYPES[src.dtype]
    codes = np.arange(256, dtype=np.int64)
    v = codes & ((1 << bits) - 1)
    if signed:
        v = np.where(v >= 1 << (bits - 1), v - (1 << bits), v)
    x = np.float32(src.scale) * (v - src.zero_point).astype(np.float32)
    y = np.asarray(fn(x.astype(np.float32)), np.float32)
    return quantize(y, dst.scale, dst.zero_point, dst.dtype).astype(np.int64)


def identity(x: np.ndarray) -> np.ndarray:
    """The function of a table that only requantizes."""
    return x
