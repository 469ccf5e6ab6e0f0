"""The chip: ``ChipConfig`` read from TOML (tomllib), with documented defaults and strict checks.

``ChipConfig.load(path)`` overlays a user file on ``configs/default.toml``; unknown sections or
keys and impossible values raise :class:`ConfigError` naming the key (and the file).
"""

from __future__ import annotations

import copy
import tomllib
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any, Optional

DATAFLOWS = ("weight_stationary", "output_stationary", "input_stationary")
FORMATS = ("dense", "bitmask", "rle", "codebook")


class ConfigError(ValueError):
    """A chip configuration is malformed; the message names the key and the file."""


def _default_text() -> str:
    return (resources.files("accelsim") / "configs" / "default.toml").read_text()


DEFAULTS: dict[str, dict[str, Any]] = tomllib.loads(_default_text())

# key -> (type, minimum) ; lists and strings are checked separately
_POSITIVE_INT = {("array", "rows"), ("array", "cols"), ("array", "max_acc_bits"), ("array", "base_bits"),
                 ("array", "min_bits"), ("buffers", "banks"), ("dram", "size_mib"), ("requant", "lanes"),
                 ("vector", "lanes")} | {("buffers", f"{b}_{s}") for b in ("inp", "wgt", "acc", "out", "prm")
                                         for s in ("kib", "word_bits")}
_NONNEG_INT = {("dram", "latency"), ("requant", "pipeline"), ("vector", "pipeline")}
_POSITIVE_NUM = {("dram", "bandwidth"), ("clock", "mhz")} | {("decompressor", f) for f in FORMATS}
_NONNEG_NUM = {("energy", k) for k in DEFAULTS["energy"]}


@dataclass(frozen=True)
class ChipConfig:
    """A validated chip description; ``raw`` holds every section and key (defaults filled in)."""

    raw: dict[str, dict[str, Any]] = field(default_factory=lambda: copy.deepcopy(DEFAULTS))
    source: str = "<defaults>"

    def __post_init__(self) -> None:
        _validate(self.raw, self.source)

    @classmethod
    def load(cls, path: str | Path) -> "ChipConfig":
        path = Path(path)
        try:
            text = path.read_text()
        except OSError as e:
            raise ConfigError(f"{path}: cannot read ({e.strerror})") from None
        return cls.from_toml(text, str(path))

    @classmethod
    def from_toml(cls, text: str, source: str = "<string>") -> "ChipConfig":
        try:
            user = tomllib.loads(text)
        except tomllib.TOMLDecodeError as e:
            raise ConfigError(f"{source}: not valid TOML: {e}") from None
        return cls.from_dict(user, source)

    @classmethod
    def from_dict(cls, user: dict, source: str = "<dict>") -> "ChipConfig":
        raw = copy.deepcopy(DEFAULTS)
        for section, values in user.items():
            if section not in raw:
                raise ConfigError(f"{source}: unknown section [{section}] (known: {', '.join(raw)})")
            if not isinstance(values, dict):
                raise ConfigError(f"{source}: [{section}] must be a table")
            for key, value in values.items():
                if key not in raw[section]:
                    raise ConfigError(f"{source}: unknown key {section}.{key}")
                raw[section][key] = value
        return cls(raw, source)

    def replace(self, **sections: dict) -> "ChipConfig":
        """A copy with some keys changed: ``chip.replace(array={"rows": 32})``."""
        merged = copy.deepcopy(self.raw)
        for section, values in sections.items():
            if section not in merged:
                raise ConfigError(f"unknown section [{section}]")
            for key, value in values.items():
                if key not in merged[section]:
                    raise ConfigError(f"unknown key {section}.{key}")
                merged[section][key] = value
        return ChipConfig(merged, self.source)

    # ---- convenient views
    def __getitem__(self, section: str) -> dict[str, Any]:
        return self.raw[section]

    @property
    def rows(self) -> int:
        return self.raw["array"]["rows"]

    @property
    def cols(self) -> int:
        return self.raw["array"]["cols"]

    def buffer_words(self) -> dict[str, int]:
        """Capacity of each buffer in words (element slots)."""
        b = self.raw["buffers"]
        return {name.upper(): b[f"{name}_kib"] * 1024 * 8 // b[f"{name}_word_bits"]
                for name in ("inp", "wgt", "acc", "out", "prm")}

    def dram_bytes(self) -> int:
        return self.raw["dram"]["size_mib"] << 20

    def products_per_cycle(self, w_bits: int, a_bits: int) -> float:
        """Products per PE per cycle for a weight/activation width pair (the precision rule)."""
        a = self.raw["array"]
        base, lo = a["base_bits"], a["min_bits"]

        def factor(bits: int) -> float:
            return base / max(bits, lo) if bits <= base else base / bits

        return factor(w_bits) * factor(a_bits)


def _validate(raw: dict, source: str) -> None:
    def fail(key: str, msg: str) -> None:
        raise ConfigError(f"{source}: {key} {msg}")

    for (sec, key) in _POSITIVE_INT | _NONNEG_INT:
        v = raw[sec][key]
        lo = 1 if (sec, key) in _POSITIVE_INT else 0
        if isinstance(v, bool) or not isinstance(v, int) or v < lo:
            fail(f"{sec}.{key}", f"must be an integer >= {lo}, got {v!r}")
    for (sec, key) in _POSITIVE_NUM | _NONNEG_NUM:
        v = raw[sec][key]
        positive = (sec, key) in _POSITIVE_NUM
        if isinstance(v, bool) or not isinstance(v, (int, float)) or v < 0 or (positive and v == 0) or v != v:
            fail(f"{sec}.{key}", f"must be a number {'> 0' if positive else '>= 0'}, got {v!r}")
    a = raw["array"]
    if a["dataflow"] not in DATAFLOWS:
        fail("array.dataflow", f"must be one of {', '.join(DATAFLOWS)}, got {a['dataflow']!r}")
    if not isinstance(a["fold_overlap"], bool):
        fail("array.fold_overlap", f"must be true or false, got {a['fold_overlap']!r}")
    bits = a["operand_bits"]
    if not isinstance(bits, list) or not bits or any(b not in (4, 8, 16) for b in bits):
        fail("array.operand_bits", f"must be a non-empty list drawn from 4, 8, 16, got {bits!r}")
    if not 8 <= a["max_acc_bits"] <= 48:
        fail("array.max_acc_bits", f"must be 8..48, got {a['max_acc_bits']}")
    if a["min_bits"] > a["base_bits"]:
        fail("array.min_bits", f"({a['min_bits']}) must not exceed array.base_bits ({a['base_bits']})")
    for name in ("inp", "wgt", "acc", "out", "prm"):
        wb = raw["buffers"][f"{name}_word_bits"]
        if wb not in (4, 8, 16, 32, 64):
            fail(f"buffers.{name}_word_bits", f"must be 4, 8, 16, 32 or 64, got {wb}")
    words = {n: raw["buffers"][f"{n}_kib"] * 1024 * 8 // raw["buffers"][f"{n}_word_bits"]
             for n in ("inp", "wgt", "acc", "out", "prm")}
    for n, w in words.items():
        if w > 1 << 20:
            fail(f"buffers.{n}_kib", f"gives {w} words; instructions address at most 2^20")
    if raw["dram"]["size_mib"] > 4096:
        fail("dram.size_mib", "must be at most 4096 (32-bit DRAM addresses)")


def load_chip(path: Optional[str | Path] = None) -> ChipConfig:
    """The default chip, or the one described by a TOML file."""
    return ChipConfig() if path is None else ChipConfig.load(path)
