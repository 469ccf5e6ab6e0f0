"""Co-design at scale: the whole `accelsim codesign` run (tables, ILP frontier, every point measured
bit-exact on the chip) on the zoo's ResNet-18 and MobileNetV2, timed, with the time of every ILP
solve, and the frontier's best points against uniform 8-bit.

    python benchmarks/codesign.py [--models resnet18 mobilenetv2] [--size 224] [--samples 8]
                                  [--points 24] [--workers 1] [--json out.json]

Random weights (BatchNorm folded), so there are no labels: the sensitivity is the KL divergence
of the chip's outputs from the float model's on random inputs, and quality is reported as top-1
agreement and SQNR against the float model.  The issue's bounds: the whole run within 15 minutes
on 2 cores, each ILP solve under 1 s.
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

from accelsim import zoo  # noqa: E402
from accelsim.codesign import codesign, search  # noqa: E402


def timed_solves() -> list[float]:
    """Wrap search.solve so every call's wall time is recorded; returns the list it fills."""
    times: list[float] = []
    real = search.solve

    def solve(*args, **kwargs):
        start = time.perf_counter()
        try:
            return real(*args, **kwargs)
        finally:
            times.append(time.perf_counter() - start)

    search.solve = solve
    return times


def run_model(name: str, size: int, samples: int, points: int, workers: int) -> dict:
    """One model's whole co-design run and its figures."""
    model = zoo.build(name, input_size=size, fold_bn=True)
    rng = np.random.default_rng(0)
    shape = (samples,) + tuple(zoo.input_shape(model)[1:])
    calib = rng.normal(0, 1, shape).astype(np.float32)
    data = rng.normal(0, 1, shape).astype(np.float32)
    solves = timed_solves()
    start = time.perf_counter()
    with tempfile.TemporaryDirectory() as out:
        r = codesign(model, calib, data, None, points=points, out=out, progress=True, workers=workers,
                     batch=samples, plots=False)
    total = time.perf_counter() - start
    base = r["baselines"]["uniform_8"]
    best = [p["measured"] for p in r["points"] if p["measured"]["top1_agreement"] >= base["top1_agreement"] - 0.01]
    cheapest = min(best, key=lambda m: m["cycles"]) if best else None
    return dict(model=name, size=size, samples=samples, layers=len(r["layers"]), points=len(r["points"]),
                measurements=r["measured_now"], total_s=total, ilp_solves=len(solves), ilp_max_s=max(solves),
                uniform_8=base, uniform_4=r["baselines"]["uniform_4"], cheapest_within_1pt=cheapest,
                rank_correlation=r["rank_correlation"])


def show(row: dict) -> str:
    b, c = row["uniform_8"], row["cheapest_within_1pt"]
    gain = (f"cycles {c['cycles'] / b['cycles']:.2f}x, energy {c['energy_pj'] / b['energy_pj']:.2f}x, agreement "
            f"{100 * c['top1_agreement']:.1f}% (8-bit {100 * b['top1_agreement']:.1f}%)") if c else "none within 1 point"
    rc = ", ".join(f"{k} {v:.3f}" for k, v in row["rank_correlation"].items() if v is not None)
    return (f"{row['model']:12s} {row['layers']:3d} layers {row['measurements']:4d} measurements "
            f"{row['points']:3d} points  total {row['total_s']:7.1f} s  ILP max {1000 * row['ilp_max_s']:.1f} ms "
            f"({row['ilp_solves']} solves)  best: {gain}  rank corr: {rc}")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", nargs="+", default=["resnet18", "mobilenetv2"])
    ap.add_argument("--size", type=int, default=224)
    ap.add_argument("--samples", type=int, default=8, help="calibration and validation inputs each")
    ap.add_argument("--points", type=int, default=24)
    ap.add_argument("--workers", type=int, default=1)
    ap.add_argument("--json")
    args = ap.parse_args(argv)
    rows = []
    for name in args.models:
        rows.append(run_model(name, args.size, args.samples, args.points, args.workers))
        print(show(rows[-1]), flush=True)
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=1, default=float))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
