"""``RunReport``: cycles, unit activity, MACs by precision, traffic and energy of one run."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field

import numpy as np

from . import counters as M
from .config import ChipConfig

PRECISIONS = ("4x4", "8x4", "8x8", "16x8", "16x16")
_MAC_SLOTS = (M.C_MAC_4x4, M.C_MAC_8x4, M.C_MAC_8x8, M.C_MAC_16x8, M.C_MAC_16x16)
BUFFERS = ("INP", "WGT", "ACC", "OUT", "PRM")


_CONSTANTS: dict[int, tuple] = {}


def _chip_constants(chip: ChipConfig) -> tuple:
    """What a report needs of a chip, read once per chip object: rows, cols, bytes per buffer
    word, energy per event, clock, and the summary a report carries."""
    hit = _CONSTANTS.get(id(chip))
    if hit is None or hit[0] is not chip:
        word_bytes = {b: chip["buffers"][f"{b.lower()}_word_bits"] / 8 for b in BUFFERS}
        summary = {"rows": chip.rows, "cols": chip.cols, "dataflow": chip["array"]["dataflow"],
                   "mhz": chip["clock"]["mhz"]}
        hit = (chip, (chip.rows, chip.cols, word_bytes, dict(chip["energy"]), chip["clock"]["mhz"], summary))
        if len(_CONSTANTS) > 64:
            _CONSTANTS.clear()
        _CONSTANTS[id(chip)] = hit
    return hit[1]


@dataclass
class RunReport:
    """Everything one run measured.  Bytes are counted per memory level and operand; energy in pJ."""

    cycles: int
    time_us: float
    instructions: int
    units: dict[str, dict[str, int]]
    array_busy_cycles: int          # cycles the MAC array computes (sum of GEMM/DWCONV tile cycles)
    mac_utilization: float          # useful PE-cycles / (cycles x rows x cols)
    array_busy_utilization: float   # useful PE-cycles / (array-busy cycles x rows x cols)
    macs: dict[str, int]
    dram_read_bytes: dict[str, int]
    dram_write_bytes: dict[str, int]
    sram_read_bytes: dict[str, int]
    sram_write_bytes: dict[str, int]
    weights_fetched: int
    energy_pj: dict[str, float]
    accumulator_overflows: int
    values_computed: bool = True
    chip: dict = field(default_factory=dict)
    segments: list["RunReport"] = field(default_factory=list)  # per layer, when asked for
    images: int = 1                  # images the run processed (a batch): set by whoever knows

    @property
    def images_per_s(self) -> float:
        """Throughput at the chip clock: images / latency."""
        return self.images / (self.time_us * 1e-6) if self.time_us else 0.0

    @property
    def total_macs(self) -> int:
        return sum(self.macs.values())

    @classmethod
    def from_counters(cls, c: np.ndarray, chip: ChipConfig, values: bool) -> "RunReport":
        rows, cols, word_bytes, e, mhz, summary = _chip_constants(chip)
        c = c.tolist()  # Python floats: indexing them is much cheaper than numpy scalars
        cycles = int(c[M.C_CYCLES])
        slots = c[M.C_ARRAY_SLOTS]
        macs = {p: int(c[s]) for p, s in zip(PRECISIONS, _MAC_SLOTS)}
        dram_rd = {"input": int(c[M.C_DRAM_RD_INPUT]), "weight": int(c[M.C_DRAM_RD_WEIGHT]),
                   "param": int(c[M.C_DRAM_RD_PARAM]), "other": int(c[M.C_DRAM_RD_OTHER])}
        dram_wr = {"output": int(c[M.C_DRAM_WR_OUTPUT])}
        sram_rd = {b: int(c[M.C_SRAM_RD_INP + i] * word_bytes[b]) for i, b in enumerate(BUFFERS)}
        sram_wr = {b: int(c[M.C_SRAM_WR_INP + i] * word_bytes[b]) for i, b in enumerate(BUFFERS)}
        energy = {f"mac_{p}": macs[p] * e[f"mac_{p}"] for p in PRECISIONS}
        energy["sram"] = (sum(sram_rd.values()) + sum(sram_wr.values())) * e["sram_byte"]
        energy["dram"] = (sum(dram_rd.values()) + sum(dram_wr.values())) * e["dram_byte"]
        energy["total"] = sum(energy.values())
        units = {u: {"busy": int(c[M.C_BUSY_LOAD + i]), "stall": int(c[M.C_STALL_LOAD + i])}
                 for i, u in enumerate(("load", "compute", "store"))}
        array_busy = c[M.C_ARRAY_BUSY]
        return cls(
            cycles=cycles, time_us=cycles / mhz, instructions=int(c[M.C_INSTRUCTIONS]),
            units=units, array_busy_cycles=int(array_busy), mac_utilization=float(slots / (cycles * rows * cols)) if cycles else 0.0,
            array_busy_utilization=float(slots / (array_busy * rows * cols)) if array_busy else 0.0,
            macs=macs, dram_read_bytes=dram_rd, dram_write_bytes=dram_wr, sram_read_bytes=sram_rd,
            sram_write_bytes=sram_wr, weights_fetched=int(c[M.C_WEIGHT_COUNT]), energy_pj=energy,
            accumulator_overflows=int(c[M.C_OVERFLOWS]), values_computed=values,
            chip=dict(summary))

    def to_dict(self) -> dict:
        return asdict(self)

    def to_json(self, indent: int = 1) -> str:
        return json.dumps(self.to_dict(), indent=indent)

    def table(self) -> str:
        """A readable summary."""
        lines = [f"cycles            {self.cycles:,}  ({self.time_us:,.1f} us at {self.chip.get('mhz')} MHz, "
                 f"{self.instructions:,} instructions)",
                 f"MAC utilization   {100 * self.mac_utilization:.1f} % overall, "
                 f"{100 * self.array_busy_utilization:.1f} % while the array is busy"]
        for u, v in self.units.items():
            lines.append(f"{u:8s} unit     busy {v['busy']:,}  stall {v['stall']:,}")
        lines.append("MACs              " + ", ".join(f"{p}: {n:,}" for p, n in self.macs.items() if n) or "0")
        lines.append("DRAM read bytes   " + ", ".join(f"{k} {v:,}" for k, v in self.dram_read_bytes.items()))
        lines.append("DRAM write bytes  " + ", ".join(f"{k} {v:,}" for k, v in self.dram_write_bytes.items()))
        lines.append("SRAM read bytes   " + ", ".join(f"{k} {v:,}" for k, v in self.sram_read_bytes.items()))
        lines.append("SRAM write bytes  " + ", ".join(f"{k} {v:,}" for k, v in self.sram_write_bytes.items()))
        en = self.energy_pj
        lines.append(f"energy            {en['total'] / 1e6:,.3f} uJ (MAC {sum(v for k, v in en.items() if k.startswith('mac_')) / 1e6:,.3f}, "
                     f"SRAM {en['sram'] / 1e6:,.3f}, DRAM {en['dram'] / 1e6:,.3f})")
        lines.append(f"acc overflows     {self.accumulator_overflows:,}"
                     + ("" if self.values_computed else "  (timing only: not counted)"))
        return "\n".join(lines)
