"""benchmarks/sim.py runs with one command and writes its JSON records."""

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_sim_benchmark_smoke(tmp_path):
    out = tmp_path / "s.json"
    r = subprocess.run([sys.executable, "benchmarks/sim.py", "--quick", "--json", str(out)], cwd=ROOT,
                       capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-2000:]
    records = json.loads(out.read_text())
    gemm = [x for x in records if x["bench"] == "gemm_tiles"]
    assert {x["bits"] for x in gemm} == {"4x4", "8x4", "8x8", "16x16"} and all(x["gmacs"] > 0 for x in gemm)
    loop = next(x for x in records if x["bench"] == "loop_overhead")
    assert loop["instructions"] > 1000 and loop["ns_per_instruction"] > 0
