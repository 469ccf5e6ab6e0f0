"""benchmarks/models.py runs with one command and writes the documented JSON records."""

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_models_benchmark_smoke(tmp_path):
    out = tmp_path / "m.json"
    r = subprocess.run([sys.executable, "benchmarks/models.py", "--models", "resnet18", "--size", "64", "--reps", "1",
                        "--json", str(out)], cwd=ROOT, capture_output=True, text=True, timeout=900)
    assert r.returncode == 0, r.stderr[-2000:]
    (rec,) = json.loads(out.read_text())
    assert {"model", "compile_s", "simulate_s", "timing_only_s", "onnxruntime_s", "ratio", "macs", "cycles"} <= set(rec)
    assert rec["model"] == "resnet18" and rec["bit_exact"] is True
    assert rec["ratio"] == rec["simulate_s"] / rec["onnxruntime_s"] and rec["cycles"] > 0
