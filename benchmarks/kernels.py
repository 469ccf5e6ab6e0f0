"""Exact integer GEMM throughput of accelsim's kernel beside numpy and ONNX Runtime, one thread.

    python benchmarks/kernels.py [--sizes 256 1024] [--json out.json] [--quick]

accelsim's GEMM kernel (int32 accumulation, exact) at 8x8, 4x4, 8x4 and 16x16 (weights x
activations); numpy integer matmul (exact, no BLAS); ONNX Runtime MatMulInteger s8 x s8 and u8 x s8
(weights as an initializer, as in a real model; its u8 x s8 kernel may saturate int16 pair sums
on CPUs without VNNI, so it is not always exact).  Also the time of the first kernel call in a
new process: cold (empty Numba cache: compiles) and warm (cache filled by the cold run).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from timing import best_of  # noqa: E402  (benchmarks/ is the script directory)

from isa import Instruction  # noqa: E402
from kernels.mac import gemm  # noqa: E402
from kernels.state import config_register  # noqa: E402
from kernels.paths import describe  # noqa: E402

BITS = {"8x8": ("s8", "s8"), "4x4": ("s4", "s4"), "8x4": ("s4", "s8"), "16x16": ("s16", "s16")}



def bench_accelsim(m: int, n: int, k: int, bits: str, reps: int) -> float:
    a_t, w_t = BITS[bits]
    rng = np.random.default_rng(0)
    a_lo, a_hi = (-8, 7) if a_t == "s4" else (-128, 127) if a_t == "s8" else (-32768, 32767)
    w_lo, w_hi = (-8, 7) if w_t == "s4" else (-128, 127) if w_t == "s8" else (-32768, 32767)
    mem = np.zeros(m * k + n * k + m * n, np.int64)
    mem[:m * k] = rng.integers(a_lo, a_hi + 1, m * k)
    mem[m * k:m * k + n * k] = rng.integers(w_lo, w_hi + 1, n * k)
    cfg = config_register(Instruction("CONFIG", a=a_t, w=w_t, o="s8", acc_bits=48 if bits == "16x16" else 32,
                                      clamp_min=-128, clamp_max=127).args)
    t = best_of(lambda: gemm(mem, cfg, 0, m * k, m * k + n * k, m, n, k, 0), reps)
    return m * n * k / t / 1e9


def bench_numpy(m: int, n: int, k: int, reps: int) -> float:
    rng = np.random.default_rng(0)
    a = rng.integers(-128, 128, (m, k)).astype(np.int32)
    b = rng.integers(-128, 128, (k, n)).astype(np.int32)
    t = best_of(lambda: a @ b, reps)
    return m * n * k / t / 1e9


def bench_onnxruntime(m: int, n: int, k: int, a_dtype, reps: int) -> float:
    import onnxruntime as ort
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)
    lo, hi = (0, 255) if a_dtype == np.uint8 else (-128, 127)
    a = rng.integers(lo, hi + 1, (m, k)).astype(a_dtype)
    b = rng.integers(-128, 128, (k, n)).astype(np.int8)
    a_type = TensorProto.UINT8 if a_dtype == np.uint8 else TensorProto.INT8
    graph = helper.make_graph(
        [helper.make_node("MatMulInteger", ["a", "b"], ["y"])], "mmi",
        [helper.make_tensor_value_info("a", a_type, [m, k])],
        [helper.make_tensor_value_info("y", TensorProto.INT32, [m, n])],
        [numpy_helper.from_array(b, "b")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 10
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    opts.inter_op_num_threads = 1
    sess = ort.InferenceSession(model.SerializeToString(), opts, providers=["CPUExecutionProvider"])
    t = best_of(lambda: sess.run(None, {"a": a}), reps)
    return m * n * k / t / 1e9


_FIRST_CALL = """
import time, numpy as np
t0 = time.perf_counter()
from isa import Instruction
from kernels.mac import gemm
from kernels.state import config_register
cfg = config_register(Instruction("CONFIG", a="s8", w="s8", o="s8", clamp_min=-128, clamp_max=127).args)
mem = np.zeros(3 * 64 * 64, np.int64)
t1 = time.perf_counter()
gemm(mem, cfg, 0, 4096, 8192, 64, 64, 64, 0)
t2 = time.perf_counter()
print(t1 - t0, t2 - t1)
"""


def first_call_times() -> dict:
    """Import and first GEMM call in new processes: cold (empty cache) and warm (cache filled)."""
    out = {}
    with tempfile.TemporaryDirectory() as cache:
        env = {**os.environ, "NUMBA_CACHE_DIR": cache, "PYTHONPATH": str(ROOT)}
        for label in ("cold", "warm"):
            r = subprocess.run([sys.executable, "-c", _FIRST_CALL], env=env, capture_output=True, text=True,
                               check=True, cwd=ROOT)
            imp, call = (float(v) for v in r.stdout.split())
            out[label] = {"import_s": imp, "first_call_s": call}
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", type=int, nargs="+", default=[256, 1024], help="M = N = K values")
    ap.add_argument("--json", metavar="FILE", help="write the records as JSON")
    ap.add_argument("--quick", action="store_true", help="fewer repetitions (smoke test)")
    args = ap.parse_args(argv)
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    print(describe())  # which kernel paths this run measures
    records = []

    def add(impl, bits, s, gmacs, **extra):
        records.append({"impl": impl, "op": "gemm", "bits": bits, "m": s, "n": s, "k": s, "threads": 1,
                        "gmacs": round(gmacs, 3), **extra})

    for s in args.sizes:
        reps = 1 if args.quick else (3 if s >= 1024 else 10)
        for bits in ("8x8", "4x4", "8x4", "16x16"):
            add("accelsim", bits, s, bench_accelsim(s, s, s, bits, reps))
        add("numpy", "8x8", s, bench_numpy(s, s, s, 1 if s >= 1024 else reps), dtype="int32")
        try:
            add("onnxruntime", "8x8", s, bench_onnxruntime(s, s, s, np.int8, reps), variant="s8s8")
            add("onnxruntime", "8x8", s, bench_onnxruntime(s, s, s, np.uint8, reps), variant="u8s8")
        except ImportError:
            print("onnxruntime not installed: skipping its rows", file=sys.stderr)
    start = first_call_times()

    print(f"{'impl':12s} {'variant':8s} {'bits':6s} {'M=N=K':>6s} {'GMAC/s':>8s}  ratio accelsim 8x8 / this")
    for r in records:
        ref = next(x["gmacs"] for x in records if x["impl"] == "accelsim" and x["bits"] == "8x8" and x["m"] == r["m"])
        variant = r.get("variant", r.get("dtype", ""))
        print(f"{r['impl']:12s} {variant:8s} {r['bits']:6s} {r['m']:6d} {r['gmacs']:8.2f}  {ref / r['gmacs']:7.2f}x")
    for s in args.sizes:
        a = {r["bits"]: r["gmacs"] for r in records if r["impl"] == "accelsim" and r["m"] == s}
        print(f"per-MAC speed at {s}: 4x4 / 8x8 = {a['4x4'] / a['8x8']:.2f}, 16x16 / 8x8 = {a['16x16'] / a['8x8']:.2f}")
    for label, t in start.items():
        print(f"first call, {label} cache: import {t['import_s']:.2f} s, first GEMM {t['first_call_s']:.3f} s")
    if args.json:
        for label, t in start.items():
            records.append({"impl": "accelsim", "op": f"first_call_{label}", "bits": "8x8", "m": 64, "n": 64,
                            "k": 64, "threads": 1, "gmacs": None, "seconds": round(t["first_call_s"], 4),
                            "import_seconds": round(t["import_s"], 4)})
        Path(args.json).write_text(json.dumps(records, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
