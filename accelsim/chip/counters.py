"""Indices of the chip parameter vector (``P_*``) and of the counters (``C_*``) that the Numba
loops read and fill; :func:`chip_vector` builds the parameter vector from a ChipConfig."""

from __future__ import annotations

import numpy as np

from .config import DATAFLOWS, ChipConfig

# chip parameter vector
(P_ROWS, P_COLS, P_DATAFLOW, P_OVERLAP, P_DRAM_BW, P_DRAM_LAT, P_DEC_DENSE, P_DEC_BITMASK, P_DEC_RLE, P_DEC_CODEBOOK,
 P_RQ_LANES, P_RQ_PIPE, P_VEC_LANES, P_VEC_PIPE, P_BASE_BITS, P_MIN_BITS) = range(16)
N_PARAMS = 16

# counters (float64): per-unit busy/stall, traffic, MACs by precision, overflows
(C_CYCLES, C_BUSY_LOAD, C_BUSY_COMPUTE, C_BUSY_STORE, C_STALL_LOAD, C_STALL_COMPUTE, C_STALL_STORE,
 C_ARRAY_BUSY, C_DRAM_RD_INPUT, C_DRAM_RD_WEIGHT, C_DRAM_RD_PARAM, C_DRAM_RD_OTHER, C_DRAM_WR_OUTPUT,
 C_MAC_4x4, C_MAC_8x4, C_MAC_8x8, C_MAC_16x8, C_MAC_16x16, C_OVERFLOWS, C_INSTRUCTIONS,
 C_SRAM_RD_INP, C_SRAM_RD_WGT, C_SRAM_RD_ACC, C_SRAM_RD_OUT, C_SRAM_RD_PRM,
 C_SRAM_WR_INP, C_SRAM_WR_WGT, C_SRAM_WR_ACC, C_SRAM_WR_OUT, C_SRAM_WR_PRM, C_WEIGHT_COUNT,
 C_ARRAY_SLOTS) = range(32)
N_COUNTERS = 32


def chip_vector(chip: ChipConfig) -> np.ndarray:
    """The chip parameters the Numba timing loop reads, in ``P_*`` order."""
    a, d, dec = chip["array"], chip["dram"], chip["decompressor"]
    return np.array([a["rows"], a["cols"], DATAFLOWS.index(a["dataflow"]), int(a["fold_overlap"]),
                     d["bandwidth"], d["latency"], dec["dense"], dec["bitmask"], dec["rle"], dec["codebook"],
                     chip["requant"]["lanes"], chip["requant"]["pipeline"], chip["vector"]["lanes"],
                     chip["vector"]["pipeline"], a["base_bits"], a["min_bits"]], dtype=np.float64)
