"""Per-layer costs of a run: one row per compiled layer (LayerCost), the total, and the table the
command line prints; rows turn into JSON and CSV through ``to_dict``."""

from __future__ import annotations

from dataclasses import asdict, dataclass

from ..chip import RunReport
from .model import CompiledModel


@dataclass
class LayerCost:
    """What one layer cost in a run: work, cycles, DRAM traffic and energy, and where it ran."""

    name: str
    op: str
    shape: str
    bits: str
    macs: int
    cycles: int
    utilization: float
    dram_weight_bytes: int
    dram_activation_bytes: int
    dram_param_bytes: int
    energy_pj: float
    where: str

    def to_dict(self) -> dict:
        return asdict(self)


def _chip_row(layer, seg: RunReport) -> LayerCost:
    return LayerCost(layer.name, layer.op, layer.shape, layer.bits, int(layer.macs), int(seg.cycles),
                     float(seg.mac_utilization), int(seg.dram_read_bytes["weight"]),
                     int(seg.dram_read_bytes["input"] + seg.dram_write_bytes["output"]),
                     int(seg.dram_read_bytes["param"]), float(seg.energy_pj["total"]), layer.where)


def layer_table(compiled: CompiledModel, report: RunReport) -> list[LayerCost]:
    """Per-layer rows of a run with segments (CompiledModel.run): chip layers take their
    segment's figures, host layers cost nothing on the chip."""
    segments = iter(report.segments)
    rows = []
    for layer in compiled.layers:
        if layer.first_instruction < 0:  # after the chip (the float tail)
            rows.append(LayerCost(layer.name, layer.op, "", "float32", 0, 0, 0.0, 0, 0, 0, 0.0, "host"))
        else:
            rows.append(_chip_row(layer, next(segments)))
    return rows


def layer_total(report: RunReport) -> dict:
    """The ``total`` object of a per-layer report: the whole batch, its latency and throughput."""
    return {"macs": report.total_macs, "cycles": report.cycles, "utilization": report.mac_utilization,
            "dram_bytes": sum(report.dram_read_bytes.values()) + sum(report.dram_write_bytes.values()),
            "energy_pj": report.energy_pj["total"], "time_us": report.time_us, "batch": report.images,
            "images_per_s": report.images_per_s}


def format_layers(rows: list[LayerCost], total: dict) -> str:
    """The per-layer table and its total line."""
    lines = [f"{'layer':14s} {'op':12s} {'bits':7s} {'MACs':>12s} {'cycles':>10s} {'util%':>6s} {'W bytes':>10s} "
             f"{'A bytes':>10s} {'energy uJ':>9s} where"]
    for r in rows:
        lines.append(f"{r.name[:14]:14s} {r.op[:12]:12s} {r.bits:7s} {r.macs:12,d} {r.cycles:10,d} "
                     f"{100 * r.utilization:6.1f} {r.dram_weight_bytes:10,d} {r.dram_activation_bytes:10,d} "
                     f"{r.energy_pj / 1e6:9.3f} {r.where}")
    batch = total.get("batch", 1)
    per = f", batch of {batch}: {total['images_per_s']:,.0f} images/s" if batch > 1 else ""
    lines.append(f"{'total':14s} {'':12s} {'':7s} {total['macs']:12,d} {total['cycles']:10,d} "
                 f"{100 * total['utilization']:6.1f}  ({total['time_us']:.1f} us{per})")
    return "\n".join(lines)
