"""accelsim's MAC-array cycles against SCALE-Sim itself, layer by layer (run by hand, not in CI).

    python -m venv /tmp/ss && /tmp/ss/bin/pip install scalesim==3.0.0 "numpy<2"   # 3.0.0 fails on numpy 2
    python benchmarks/scalesim_check.py --scalesim-python /tmp/ss/bin/python [--json out.json]

For small convolution and GEMM layers on arrays of several shapes, in each dataflow, it runs
SCALE-Sim v3 (stall-free "CALC" bandwidth, no traces) and accelsim's estimate on a chip configured
as accelsim/configs/scalesim_*32.toml with the same array, and prints both compute cycle counts.
SCALE-Sim's COMPUTE_REPORT "Total Cycles" is the 0-based index of the last cycle: it should
equal accelsim's array cycles - 1.  The results are recorded in docs/chip.md.
"""

from __future__ import annotations

import argparse
import csv
import json
import subprocess
import sys
import tempfile
from importlib import resources
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from accelsim.chip import ChipConfig  # noqa: E402
from accelsim.compiler.topology import estimate, parse_topology  # noqa: E402

HEADER = "Layer name, IFMAP Height, IFMAP Width, Filter Height, Filter Width, Channels, Num Filter, Strides,\n"
LAYERS = ["c3x3, 10, 10, 3, 3, 5, 7, 1,", "c1x1s2, 12, 12, 1, 1, 9, 13, 2,", "c5x5, 9, 11, 5, 5, 3, 6, 1,",
          "c3x3s2, 13, 9, 3, 3, 4, 11, 2,", "fc, 1, 1, 1, 1, 37, 19, 1,"]
ARRAYS = [(4, 4), (8, 4), (4, 8), (8, 8)]
DATAFLOWS = {"os": "output_stationary", "ws": "weight_stationary", "is": "input_stationary"}
CONFIG = """[general]
run_name = check

[architecture_presets]
ArrayHeight:    {rows}
ArrayWidth:     {cols}
IfmapSramSzkB:    4096
FilterSramSzkB:   4096
OfmapSramSzkB:    4096
IfmapOffset:    0
FilterOffset:   10000000
OfmapOffset:    20000000
Bandwidth : 10
Dataflow : {df}
ReadRequestBuffer: 32
WriteRequestBuffer: 32

[layout]
IfmapCustomLayout: False
IfmapSRAMBankBandwidth: 10
IfmapSRAMBankNum: 10
IfmapSRAMBankPort: 2
FilterCustomLayout: False
FilterSRAMBankBandwidth: 10
FilterSRAMBankNum: 10
FilterSRAMBankPort: 2

[sparsity]
SparsitySupport : false
SparseRep : ellpack_block
OptimizedMapping : false
BlockSize : 8
RandomNumberGeneratorSeed : 40

[run_presets]
InterfaceBandwidth: CALC
UseRamulatorTrace: False
"""


def accelsim_cycles(layer: str, rows: int, cols: int, df: str) -> int:
    base = ChipConfig.load(resources.files("accelsim") / "configs" / "scalesim_os32.toml")
    chip = base.replace(array={"rows": rows, "cols": cols, "dataflow": DATAFLOWS[df]})
    return estimate(parse_topology(HEADER + layer), chip)[0].array_cycles


def scalesim_cycles(python: str, layer: str, rows: int, cols: int, df: str) -> int:
    with tempfile.TemporaryDirectory() as d:
        d = Path(d)
        (d / "c.cfg").write_text(CONFIG.format(rows=rows, cols=cols, df=df))
        (d / "t.csv").write_text(HEADER + layer + "\n")
        # SCALE-Sim reads a layout file even with custom layouts off: one row of unit factors
        (d / "l.csv").write_text("Layer name, factors\n" + layer.split(",")[0] + ", " + "1, " * 24 + "\n")
        r = subprocess.run([python, "-m", "scalesim.scale", "-c", str(d / "c.cfg"), "-t", str(d / "t.csv"),
                            "-l", str(d / "l.csv"), "-p", str(d / "out"), "-s", "N"], capture_output=True,
                           text=True, cwd=d, timeout=600)
        if r.returncode != 0 or not list((d / "out").rglob("COMPUTE_REPORT.csv")):
            raise RuntimeError(r.stdout[-2000:] + r.stderr[-2000:])
        (report,) = (d / "out").rglob("COMPUTE_REPORT.csv")
        rows_ = list(csv.DictReader(report.open(), skipinitialspace=True))
        return int(float(rows_[0]["Total Cycles"]))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--scalesim-python", default=sys.executable, help="an interpreter with scalesim installed")
    ap.add_argument("--json")
    args = ap.parse_args(argv)
    records, same = [], 0
    print(f"{'layer':8s} {'array':6s} {'df':3s} {'SCALE-Sim':>10s} {'accelsim-1':>10s}")
    for layer in LAYERS:
        for rows, cols in ARRAYS:
            for df in DATAFLOWS:
                theirs = scalesim_cycles(args.scalesim_python, layer, rows, cols, df)
                ours = accelsim_cycles(layer, rows, cols, df) - 1
                same += theirs == ours
                name = layer.split(",")[0]
                records.append({"layer": name, "rows": rows, "cols": cols, "dataflow": df, "scalesim": theirs,
                                "accelsim_minus_1": ours, "equal": theirs == ours})
                print(f"{name:8s} {rows}x{cols:<4d} {df:3s} {theirs:10d} {ours:10d}" + ("" if theirs == ours else "  DIFF"))
    print(f"{same} of {len(records)} equal")
    if args.json:
        Path(args.json).write_text(json.dumps(records, indent=1))
    return 0 if same == len(records) else 1


if __name__ == "__main__":
    sys.exit(main())
