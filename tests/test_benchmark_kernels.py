"""benchmarks/kernels.py runs with one command and writes the documented JSON records."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_kernel_benchmark_smoke(tmp_path):
    out = tmp_path / "k.json"
    r = subprocess.run([sys.executable, "benchmarks/kernels.py", "--sizes", "48", "--quick", "--json", str(out)],
                       cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-2000:]
    assert "ratio accelsim 8x8 / this" in r.stdout and "first call, warm cache" in r.stdout
    records = json.loads(out.read_text())
    gemm = [x for x in records if x["op"] == "gemm"]
    keys = {"impl", "op", "bits", "m", "n", "k", "threads", "gmacs"}
    assert all(keys <= set(x) for x in records)
    assert {x["impl"] for x in gemm} == {"accelsim", "numpy", "onnxruntime"}
    assert {x["bits"] for x in gemm if x["impl"] == "accelsim"} == {"8x8", "4x4", "8x4", "16x16"}
    assert all(x["gmacs"] > 0 and x["threads"] == 1 and x["m"] == 48 for x in gemm)
    cold, warm = (next(x for x in records if x["op"] == f"first_call_{t}") for t in ("cold", "warm"))
    assert warm["seconds"] < cold["seconds"]  # the second process does not recompile
