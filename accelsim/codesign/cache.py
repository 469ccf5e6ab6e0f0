"""A SQLite store of measured layer-bit maps: a rerun reuses every finished measurement and a sweep
stopped halfway resumes where it stopped.  Keyed by the model, the map, the chip, the data and the
accelsim version, each as a SHA-256 digest."""

from __future__ import annotations

import hashlib
import json
import sqlite3
from pathlib import Path
from typing import Optional

import numpy as np
import onnx

from .tables import Metrics

VERSION = "accelsim-0.1.0/codesign-2"  # bump when a measurement's meaning changes


def digest(*parts: bytes) -> str:
    h = hashlib.sha256()
    for p in parts:
        h.update(hashlib.sha256(p).digest())
    return h.hexdigest()


def context_key(model: onnx.ModelProto, chip_raw: dict, calib: np.ndarray, data: np.ndarray,
                labels: Optional[np.ndarray], batch: int) -> str:
    """What every measurement of one run shares: model, chip, calibration and validation data, batch."""
    arrays = [np.ascontiguousarray(a).tobytes() for a in (calib, data) + ((labels,) if labels is not None else ())]
    return digest(model.SerializeToString(), json.dumps(chip_raw, sort_keys=True, default=str).encode(),
                  *arrays, str(batch).encode(), VERSION.encode())


class ResultCache:
    """Measured Metrics by (context, layer-bit map)."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with sqlite3.connect(self.path) as db:
            db.execute("CREATE TABLE IF NOT EXISTS results (context TEXT, layer_bits TEXT, metrics TEXT, "
                       "PRIMARY KEY (context, layer_bits))")

    def get(self, context: str, layer_bits: dict) -> Optional[Metrics]:
        with sqlite3.connect(self.path) as db:
            row = db.execute("SELECT metrics FROM results WHERE context = ? AND layer_bits = ?",
                             (context, _canonical(layer_bits))).fetchone()
        return None if row is None else Metrics(**json.loads(row[0]))

    def put(self, context: str, layer_bits: dict, m: Metrics) -> None:
        with sqlite3.connect(self.path) as db:
            db.execute("INSERT OR REPLACE INTO results VALUES (?, ?, ?)",
                       (context, _canonical(layer_bits), json.dumps(m.as_dict())))

    def count(self) -> int:
        with sqlite3.connect(self.path) as db:
            return int(db.execute("SELECT COUNT(*) FROM results").fetchone()[0])


def _canonical(layer_bits: dict) -> str:
    return json.dumps(layer_bits, sort_keys=True)
