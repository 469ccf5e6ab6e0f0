"""Whole-model speed: compile time, bit-exact simulation, timing-only simulation and ONNX Runtime's
own int8 inference of the same quantized model, measured in the same run.

    python benchmarks/models.py [--models resnet18 mobilenetv2] [--size 224] [--json out.json]

Each model comes from accelsim.zoo (random weights, BatchNorm folded), is quantized by ONNX
Runtime's quantize_static (QDQ, per channel, reduce_range, u8 activations, s8 weights), compiled
for the default chip and run on one random input.  ratio = simulate_s / onnxruntime_s, ORT's
default (fastest) kernels; onnxruntime_exact_s times the reference session (exact integer kernels
on every CPU, accelsim.compiler.onnx.runtime), which bit_exact compares against.  A model the
compiler cannot take yet is reported with its error instead of figures.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from timing import best_of  # noqa: E402  (benchmarks/ is the script directory)

from accelsim import zoo  # noqa: E402
from accelsim.chip import Simulator  # noqa: E402
from accelsim.compiler import compile_graph, import_model  # noqa: E402
from accelsim.compiler.ir import ModelError  # noqa: E402
from accelsim.compiler.onnx.runtime import default_u8s8_is_exact, session  # noqa: E402


def quantize(model, size: int, workdir: Path):
    import onnx
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static

    rng = np.random.default_rng(0)

    class Reader(CalibrationDataReader):
        def __init__(self):
            self.it = iter([{"input": rng.normal(0, 1, (1, 3, size, size)).astype(np.float32)} for _ in range(4)])

        def get_next(self):
            return next(self.it, None)

    onnx.save(model, workdir / "f.onnx")
    quantize_static(str(workdir / "f.onnx"), str(workdir / "q.onnx"), Reader(), quant_format=QuantFormat.QDQ,
                    per_channel=True, reduce_range=True, activation_type=QuantType.QUInt8,
                    weight_type=QuantType.QInt8)
    return onnx.load(str(workdir / "q.onnx"))


def bench(name: str, size: int, reps: int) -> dict:
    with tempfile.TemporaryDirectory() as d:
        q = quantize(zoo.build(name, input_size=size, fold_bn=True), size, Path(d))
    record = {"model": name, "input_size": size}
    try:
        t = time.perf_counter()
        compiled = compile_graph(import_model(q))
        record["compile_s"] = time.perf_counter() - t
    except ModelError as e:
        record["error"] = str(e)
        return record
    x = np.random.default_rng(1).normal(0, 1, (1, 3, size, size)).astype(np.float32)
    sim = Simulator(compiled.chip)
    out, report = compiled.run({"input": x}, sim=sim)
    record["simulate_s"] = best_of(lambda: compiled.run({"input": x}, sim=sim), reps)
    record["timing_only_s"] = best_of(lambda: compiled.run({"input": x}, sim=sim, values=False), reps)
    exact = session(q)  # the reference engine: exact integer kernels on every CPU
    ref = exact.run(None, {"input": x})[0]
    fast = session(q, exact=False)  # ORT's default kernels (saturating u8 x s8 pair sums without VNNI)
    record["onnxruntime_s"] = best_of(lambda: fast.run(None, {"input": x}), reps)
    record["onnxruntime_exact_s"] = best_of(lambda: exact.run(None, {"input": x}), reps)
    record["onnxruntime_default_exact"] = default_u8s8_is_exact()
    record["ratio"] = record["simulate_s"] / record["onnxruntime_s"]
    record["macs"] = report.total_macs
    record["cycles"] = report.cycles
    record["bit_exact"] = bool(np.array_equal(out["output"], ref))
    return record


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", nargs="+", default=["resnet18", "mobilenetv2"])
    ap.add_argument("--size", type=int, default=224)
    ap.add_argument("--reps", type=int, default=10, help="best of this many runs (default 10; this VM is noisy)")
    ap.add_argument("--json", metavar="FILE")
    args = ap.parse_args(argv)
    records = [bench(m, args.size, args.reps) for m in args.models]
    print(f"{'model':12s} {'compile s':>9s} {'simulate s':>10s} {'timing s':>9s} {'ORT s':>8s} {'ratio':>6s} "
          f"{'GMACs':>6s} {'cycles':>11s} exact")
    for r in records:
        if "error" in r:
            print(f"{r['model']:12s} not compiled yet: {r['error']}")
            continue
        print(f"{r['model']:12s} {r['compile_s']:9.3f} {r['simulate_s']:10.4f} {r['timing_only_s']:9.4f} "
              f"{r['onnxruntime_s']:8.4f} {r['ratio']:6.1f} {r['macs'] / 1e9:6.2f} {r['cycles']:11,d} {r['bit_exact']}")
    if args.json:
        Path(args.json).write_text(json.dumps(records, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
