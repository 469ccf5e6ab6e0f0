"""A data set through the bit-exact simulator on one and on every core, against ONNX Runtime on
one and on every core, measured in the same run.

    python benchmarks/eval_threads.py [--models resnet18 mobilenetv2] [--images 16] [--batch 4]
                                      [--threads 1 2] [--json out.json]

The zoo models of benchmarks/models.py (quantize_static QDQ, u8 x s8), ``--images`` random inputs
run ``--batch`` at a time (compiled beforehand): the simulator through ``accelsim.evaluate
.chip_batches`` (what ``accelsim eval`` runs) with ``workers`` threads (its value and timing loops release the GIL; one Simulator per thread), ONNX Runtime's
default kernels with ``intra_op_num_threads`` threads on the same batches.  Rows: images per
second of each, and ``ratio`` = simulator seconds / ONNX Runtime seconds at the same thread count.
Every simulated output is also checked equal to the one-thread run's.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from models import zoo_case  # noqa: E402
from timing import best_of  # noqa: E402

from accelsim.compiler.onnx.runtime import session  # noqa: E402
from accelsim.compiler import ModelCompiler  # noqa: E402
from accelsim.evaluate import chip_batches  # noqa: E402
from kernels.paths import describe  # noqa: E402


def measure(name: str, images: int, batch: int, threads: list[int], reps: int) -> list[dict]:
    case = zoo_case(name, 224, images)
    x = case.inputs[:images]
    compiler = ModelCompiler(case.model)
    first = [o for _, o, _ in chip_batches(compiler, case.input_name, x, batch, 1)]  # compiles, warms up
    rows = []
    for t in threads:
        got = [o for _, o, _ in chip_batches(compiler, case.input_name, x, batch, t)]
        assert all(np.array_equal(a[k], b[k]) for a, b in zip(first, got) for k in a), "threads changed outputs"
        sim_s = best_of(lambda: list(chip_batches(compiler, case.input_name, x, batch, t)), reps)
        sess = session(case.model, exact=False, threads=t)
        whole = case.model.graph.input[0].type.tensor_type.shape.dim[0].dim_value != 1

        def ort_run():
            for s in range(0, images, batch):
                xb = x[s:s + batch]
                if whole:
                    sess.run(None, {case.input_name: xb})
                else:
                    for i in range(len(xb)):
                        sess.run(None, {case.input_name: xb[i:i + 1]})

        ort_s = best_of(ort_run, reps)
        rows.append(dict(model=name, threads=t, images=images, batch=batch, simulate_s=sim_s, onnxruntime_s=ort_s,
                         sim_images_per_s=images / sim_s, ort_images_per_s=images / ort_s, ratio=sim_s / ort_s))
        r = rows[-1]
        print(f"{name:12s} {t} threads  sim {r['sim_images_per_s']:7.1f} img/s  ORT {r['ort_images_per_s']:7.1f} img/s"
              f"  ratio {r['ratio']:5.2f}", flush=True)
    one = next(r for r in rows if r["threads"] == threads[0])
    for r in rows:
        r["speedup_vs_first"] = one["simulate_s"] / r["simulate_s"]
    return rows


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--models", nargs="+", default=["resnet18", "mobilenetv2"])
    ap.add_argument("--images", type=int, default=16)
    ap.add_argument("--batch", type=int, default=4)
    ap.add_argument("--threads", nargs="+", type=int, default=[1, os.cpu_count() or 1])
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--json")
    args = ap.parse_args()
    print(describe())  # which kernel paths this run measures
    rows = []
    for m in args.models:
        rows += measure(m, args.images, args.batch, args.threads, args.reps)
    for r in rows:
        print(f"{r['model']:12s} {r['threads']} threads: simulator {r['speedup_vs_first']:.2f}x its "
              f"{args.threads[0]}-thread speed; {r['ratio']:.2f}x ONNX Runtime's time at {r['threads']} threads")
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
