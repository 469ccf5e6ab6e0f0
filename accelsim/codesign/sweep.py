"""The chip too: an outer sweep over chip parameters (a space file), the bit-width search run on
each chip, and the Pareto set over accuracy, latency, energy and area across chips and maps.

Space file (TOML)::

    [bits]
    weight = [2, 4, 8]
    activation = [4, 8]

    [chip]                      # "section.key" = values; every combination is one chip
    "array.rows" = [8, 16]
    "array.cols" = [8, 16]
    "array.min_bits" = [4, 8]   # 4: fusible Bit Fusion PEs; 8: fixed 8-bit PEs
    "buffers.wgt_kib" = [64, 256]
    "dram.bandwidth" = [8, 16]
"""

from __future__ import annotations

import itertools
import json
import tomllib
from pathlib import Path
from typing import Optional

import numpy as np
import onnx

from ..chip import ChipConfig
from .run import codesign

OBJECTIVES = (("noise", 1), ("cycles", 1), ("energy_pj", 1), ("area_mm2", 1))  # all minimised


def load_space(path: str | Path) -> dict:
    """The space file as {"bits": {...}, "chip": {"section.key": [values]}}; a clear error per key."""
    p = Path(path)
    try:
        raw = tomllib.loads(p.read_text())
    except (OSError, tomllib.TOMLDecodeError) as e:
        raise ValueError(f"{p}: cannot read the space file ({e})") from None
    unknown = set(raw) - {"bits", "chip"}
    if unknown:
        raise ValueError(f"{p}: unknown section(s) {', '.join(sorted(unknown))} (expected [bits], [chip])")
    for key, values in raw.get("chip", {}).items():
        if "." not in key or not isinstance(values, list) or not values:
            raise ValueError(f"{p}: [chip] {key!r} must be \"section.key\" = [values]")
    return raw


def chips(base: ChipConfig, space: dict) -> list[ChipConfig]:
    """Every combination of the space's chip values over ``base`` (ConfigError on unknown keys)."""
    keys = sorted(space.get("chip", {}))
    out = []
    for values in itertools.product(*(space["chip"][k] for k in keys)):
        sections: dict[str, dict] = {}
        for key, v in zip(keys, values):
            section, name = key.split(".", 1)
            sections.setdefault(section, {})[name] = v
        out.append(base.replace(**sections) if sections else base)
    return out


def pareto(points: list[dict], field: str = "measured") -> list[int]:
    """Indices of the points no other point dominates on (output noise, cycles, energy, area), all
    minimised."""
    vals = np.array([[p[field][k] for k, _ in OBJECTIVES] for p in points], np.float64)
    keep = []
    for i, v in enumerate(vals):
        dominated = np.any(np.all(vals <= v, axis=1) & np.any(vals < v, axis=1))
        if not dominated:
            keep.append(i)
    return keep


def sweep(model: onnx.ModelProto, calib: np.ndarray, data: np.ndarray, labels: Optional[np.ndarray], space: dict,
          *, chip: Optional[ChipConfig] = None, out: str | Path, **kwargs) -> dict:
    """codesign on every chip of the space (each in out/chip_NN, sharing nothing but the model and
    data); returns all points, the chips and the Pareto set across them."""
    bits = space.get("bits", {})
    if "weight" in bits:
        kwargs["weight_bits"] = tuple(int(b) for b in bits["weight"])
    if "activation" in bits:
        kwargs["activation_bits"] = tuple(int(b) for b in bits["activation"])
    runs = []
    for k, c in enumerate(chips(chip or ChipConfig(), space)):
        r = codesign(model, calib, data, labels, chip=c, out=Path(out) / f"chip_{k:02d}", **kwargs)
        runs.append(r)
    points = [dict(p, chip_index=k) for k, r in enumerate(runs) for p in r["points"]]
    result = dict(points=points, pareto=pareto(points) if points else [],
                  chips=[r["points"][0]["chip"] if r["points"] else None for r in runs],
                  baselines=[r["baselines"] for r in runs], rank_correlation=[r["rank_correlation"] for r in runs])
    Path(out).mkdir(parents=True, exist_ok=True)
    (Path(out) / "sweep.json").write_text(json.dumps(result, indent=1, default=float))
    return result
