"""SCALE-Sim topology files and the per-layer timing estimate (``accelsim estimate``).

Two CSV forms are read, as SCALE-Sim writes them (a trailing comma is allowed):

* convolution: ``Layer name, IFMAP Height, IFMAP Width, Filter Height, Filter Width, Channels,
  Num Filter, Strides``.  SCALE-Sim pads nothing on the top and left and counts
  ``ceil((H - R + S) / S)`` output rows (a last, partial window when the stride does not divide);
  that is the convolution with ``(E - 1) * S + R - H`` rows of padding at the bottom (and the
  same for columns), which is what the layers read here describe;
* GEMM: ``Layer, M, N, K`` -- an M x K by K x N product, lowered as M pixels of a 1x1 convolution.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from isa import Instruction, encode_program

from ..chip import ChipConfig, Program, Simulator
from .lower.gemm import conv_program
from .tiling import ConvLayer


_HALT = Instruction("HALT")


class TopologyError(ValueError):
    """A topology file is malformed: names the file and line."""


def read_topology(path: str | Path) -> list[ConvLayer]:
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as e:
        raise TopologyError(f"{path}: cannot read ({e.strerror})") from None
    return parse_topology(text, str(path))


def parse_topology(text: str, source: str = "<topology>") -> list[ConvLayer]:
    rows = [(i, [c.strip() for c in row]) for i, row in enumerate(csv.reader(io.StringIO(text)), start=1)]
    rows = [(i, [c for c in row if c != ""]) for i, row in rows]
    rows = [(i, row) for i, row in rows if row]
    if not rows:
        raise TopologyError(f"{source}: empty topology file")
    header_line, header = rows[0]
    names = [h.lower() for h in header]
    gemm = len(names) == 4 and names[1:] == ["m", "n", "k"]
    if not gemm and (len(names) < 8 or "ifmap height" not in names[1]):
        raise TopologyError(f"{source}:{header_line}: expected a SCALE-Sim header (Layer name, IFMAP Height, ...) "
                            f"or (Layer, M, N, K), got {', '.join(header)}")
    layers = []
    for line, row in rows[1:]:
        want = 4 if gemm else 8
        if len(row) < want:
            raise TopologyError(f"{source}:{line}: expected {want} fields, got {len(row)}")
        try:
            vals = [int(v) for v in row[1:want]]
        except ValueError:
            raise TopologyError(f"{source}:{line}: fields must be integers: {', '.join(row[1:want])}") from None
        if any(v <= 0 for v in vals):
            raise TopologyError(f"{source}:{line}: sizes must be positive")
        name = row[0]
        if gemm:
            m, n, k = vals
            layers.append(ConvLayer(name, 1, m, k, 1, 1, n))
        else:
            h, w, fh, fw, c, nf, stride = vals
            if fh > h or fw > w:
                raise TopologyError(f"{source}:{line}: filter {fh}x{fw} larger than the {h}x{w} input")
            out_h, out_w = -(-(h - fh + stride) // stride), -(-(w - fw + stride) // stride)
            layers.append(ConvLayer(name, h, w, c, fh, fw, nf, stride, pad_bottom=(out_h - 1) * stride + fh - h,
                                    pad_right=(out_w - 1) * stride + fw - w))
    if not layers:
        raise TopologyError(f"{source}: no layers after the header")
    return layers


@dataclass
class LayerEstimate:
    name: str
    macs: int
    cycles: int
    compute_cycles: int      # compute-unit busy cycles (GEMM, REQUANT, ...)
    array_cycles: int        # MAC-array cycles (GEMM tiles): what SCALE-Sim's compute report counts
    utilization: float
    dram_bytes: int
    weight_bytes: int
    energy_pj: float
    tiling: dict


def estimate(layers: list[ConvLayer], chip: ChipConfig, w_bits: int = 8, a_bits: int = 8) -> list[LayerEstimate]:
    """Tile each layer, run it timing-only on the chip, and collect its figures."""
    sim = Simulator(chip)
    out = []
    for layer in layers:
        lp = conv_program(layer, chip, w_bits, a_bits)
        program = Program(encode_program(lp.instructions + [_HALT]), np.zeros(0, np.uint8))
        _, rep = sim.run(program, values=False)
        out.append(LayerEstimate(
            name=layer.name, macs=layer.macs, cycles=rep.cycles, compute_cycles=rep.units["compute"]["busy"],
            array_cycles=rep.array_busy_cycles,
            utilization=rep.mac_utilization,
            dram_bytes=sum(rep.dram_read_bytes.values()) + sum(rep.dram_write_bytes.values()),
            weight_bytes=rep.dram_read_bytes["weight"], energy_pj=rep.energy_pj["total"],
            tiling={"tp": lp.tiling.tp, "tc": lp.tiling.tc, "tn": lp.tiling.tn}))
    return out
