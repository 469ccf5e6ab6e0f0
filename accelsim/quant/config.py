"""How to quantize: bit widths (globally or per layer), granularity, symmetry and calibration."""

from __future__ import annotations

import json
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

from .calibrate import CALIBRATORS


@dataclass
class QuantConfig:
    """How to quantize; ``layer_bits`` maps node names to {"weight_bits", "activation_bits"}."""

    weight_bits: int = 8
    activation_bits: int = 8
    per_channel: bool = True
    symmetric_weights: bool = True
    narrow_range: bool = False          # symmetric weights in [-(2^(b-1)-1), 2^(b-1)-1]
    reduce_range: bool = False          # weights one bit narrower (ONNX Runtime's reduce_range)
    symmetric_activations: bool = False  # signed activations with zero point 0
    calibrator: str = "minmax"
    input_calibrator: str = "minmax"     # graph inputs (often few discrete values, e.g. pixels): not clipped
    percentile: float = 99.99
    momentum: float = 0.9
    batch_size: int = 16                # samples per calibration batch (moving average)
    layer_bits: dict[str, dict[str, int]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for c in (self.calibrator, self.input_calibrator):
            if c not in CALIBRATORS:
                raise ValueError(f"unknown calibrator {c!r}; choose one of {', '.join(CALIBRATORS)}")
        for b in [self.weight_bits, self.activation_bits] + [v for d in self.layer_bits.values() for v in d.values()]:
            if not 2 <= int(b) <= 16:
                raise ValueError(f"bit width {b} outside 2..16")
        if self.per_channel and not self.symmetric_weights:
            raise ValueError("asymmetric weights must be per tensor: the chip takes one weight zero point per layer")

    def weight_bits_of(self, node: str) -> int:
        return int(self.layer_bits.get(node, {}).get("weight_bits", self.weight_bits))

    def activation_bits_of(self, node: str) -> int:
        return int(self.layer_bits.get(node, {}).get("activation_bits", self.activation_bits))


def load_layer_bits(path: str | Path) -> dict[str, dict[str, int]]:
    """A JSON or TOML map from node name to {"weight_bits": w, "activation_bits": a}, or to one
    number for both."""
    p = Path(path)
    try:
        raw = tomllib.loads(p.read_text()) if p.suffix == ".toml" else json.loads(p.read_text())
    except FileNotFoundError:
        raise ValueError(f"{path}: no such file") from None
    except (json.JSONDecodeError, tomllib.TOMLDecodeError) as e:
        raise ValueError(f"{path}: {e}") from None
    out = {}
    for node, v in raw.items():
        if isinstance(v, int):
            v = {"weight_bits": v, "activation_bits": v}
        if not isinstance(v, dict) or set(v) - {"weight_bits", "activation_bits"}:
            raise ValueError(f"{path}: entry {node!r} must be a bit width or a table of weight_bits / activation_bits")
        out[str(node)] = {k: int(b) for k, b in v.items()}
    return out


def container(bits: int) -> int:
    """The chip's (and ONNX's) storage width for a bit width: 4, 8 or 16."""
    return 4 if bits <= 4 else 8 if bits <= 8 else 16


def bit_range(bits: int, signed: bool, narrow: bool = False) -> tuple[int, int]:
    """The integer range of a width: unsigned [0, 2^b - 1], signed full or narrow (no -2^(b-1))."""
    if not signed:
        return 0, (1 << bits) - 1
    hi = (1 << (bits - 1)) - 1
    return (-hi if narrow else -hi - 1), hi
