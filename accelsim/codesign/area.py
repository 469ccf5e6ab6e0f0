"""Chip area from public 45 nm figures (docs/codesign.md), for the chip sweep.

* **Processing elements** (Bit Fusion, Sharma et al., ISCA 2018, synthesised at 45 nm / 500 MHz):
  a fixed 8-bit PE 443 um^2, a fixed 4-bit PE 171 um^2, a fusible PE (8-bit, fusing down to 2-bit
  bricks) 1487 um^2.  A chip whose operand widths include 16 bits and whose PEs fuse (min_bits <
  base_bits) is priced at the fusible PE; a fixed PE supporting 16-bit operands by iteration (two
  passes per 16-bit operand, as the timing model charges) costs the fixed 8-bit PE.  A fixed 4-bit
  array (base_bits 4, no wider operand) costs the 4-bit PE.
* **SRAM** (CACTI 6.5 at 45 nm, one 32-bit port): 1 KiB 0.0088 mm^2, 8 KiB 0.0575 mm^2, 16 KiB
  0.109 mm^2; between those points log-log interpolation, beyond 16 KiB 16-KiB macros
  (0.109 mm^2 each, ``banks`` per buffer split the capacity).
"""

from __future__ import annotations

import numpy as np

PE_UM2 = {"fixed4": 171.0, "fixed8": 443.0, "fusible": 1487.0}
SRAM_POINTS = ((1.0, 0.0088), (8.0, 0.0575), (16.0, 0.109))  # (KiB, mm^2)


def pe_kind(array: dict) -> str:
    """Which synthesised PE a chip's array takes (see the module)."""
    base, lo = int(array.get("base_bits", 8)), int(array.get("min_bits", 4))
    widths = [int(b) for b in array.get("operand_bits", [4, 8, 16])]
    if lo < base:
        return "fusible"
    return "fixed4" if base <= 4 and max(widths) <= 4 else "fixed8"


def sram_mm2(kib: float) -> float:
    """One SRAM macro of ``kib`` KiB (CACTI points, log-log between them, 16-KiB macros above)."""
    if kib <= 0:
        return 0.0
    sizes, areas = zip(*SRAM_POINTS)
    if kib > sizes[-1]:
        return float(np.ceil(kib / sizes[-1]) * areas[-1])
    if kib <= sizes[0]:
        return areas[0] * kib / sizes[0]
    return float(np.exp(np.interp(np.log(kib), np.log(sizes), np.log(areas))))


def chip_area_mm2(raw: dict) -> dict[str, float]:
    """Area of the MAC array, of each on-chip buffer and in total (mm^2) for a chip's TOML tables."""
    array, buffers = raw.get("array", {}), raw.get("buffers", {})
    pes = int(array.get("rows", 16)) * int(array.get("cols", 16))
    out = {"array": pes * PE_UM2[pe_kind(array)] / 1e6}
    banks = max(1, int(buffers.get("banks", 1)))
    for name in ("inp", "wgt", "acc", "out", "prm"):
        kib = float(buffers.get(f"{name}_kib", 0))
        out[name] = banks * sram_mm2(kib / banks)
    out["total"] = sum(out.values())
    return out
