"""Weight traffic saved by compressed weight fetch, and what LOADW then costs on the chip.

    python benchmarks/compression.py [--json out.json] [--count N]

For realistic weight sets (dense random, 50% and 80% zeros after pruning, clustered to 16
values, 4-bit weights with 50% zeros) it reports the dense bytes, each format's bytes, the
smallest format and the bytes it saves, and the LOADW cycles on the default chip (DRAM bandwidth
vs decompressor rate, whichever is slower: measured by running LOADW timing-only) of the dense,
the smallest and the fastest stream (``encode_for_chip``, what the compiler uses).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from accelsim.chip import ChipConfig, Program, Simulator  # noqa: E402
from accelsim.compiler import weights as C  # noqa: E402
from isa import Instruction as I  # noqa: E402
from isa import encode_program  # noqa: E402


def weight_sets(n: int, rng) -> dict[str, tuple[np.ndarray, str]]:
    gauss = np.clip(np.rint(rng.normal(0, 30, n)), -127, 127).astype(np.int64)
    return {
        "s8 dense (gaussian)": (gauss, "s8"),
        "s8 50% zeros": (np.where(rng.random(n) < 0.5, 0, gauss), "s8"),
        "s8 80% zeros": (np.where(rng.random(n) < 0.8, 0, gauss), "s8"),
        "s8 clustered (16 values)": (rng.choice(np.unique(rng.integers(-127, 128, 16)), n), "s8"),
        "s4 50% zeros": (np.where(rng.random(n) < 0.5, 0, rng.integers(-8, 8, n)), "s4"),
    }


def loadw_cycles(sim: Simulator, stream: C.WeightStream, count: int, dtype: str) -> int:
    prog = Program(encode_program([I("LOADW", sram=0, dram=0, count=count, format=stream.format, dtype=dtype,
                                     param=stream.param, zero=stream.zero), I("HALT")]),
                   np.frombuffer(stream.data, np.uint8))
    _, rep = sim.run(prog, values=False)
    assert rep.dram_read_bytes["weight"] == stream.nbytes
    return rep.units["load"]["busy"]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--count", type=int, default=200_000, help="weights per set (at most the WGT buffer)")
    ap.add_argument("--json", metavar="FILE")
    args = ap.parse_args(argv)
    rng = np.random.default_rng(0)
    sim = Simulator(ChipConfig())
    records = []
    print(f"{'weights':26s} {'dense B':>9s} {'bitmask':>9s} {'rle':>9s} {'codebook':>9s} {'best':>9s} "
          f"{'saved':>6s} {'LOADW cyc dense':>15s} {'smallest':>8s} {'fastest (format)':>18s}")
    for name, (w, dtype) in weight_sets(args.count, rng).items():
        dense = C.encode_dense(w, dtype)
        bitmask = C.encode_bitmask(w, dtype)
        rle = min((C.encode_rle(w, dtype, b) for b in range(1, 9)), key=lambda s: s.nbytes)
        cb = C.encode_codebook(w, dtype)
        best = C.encode_best(w, dtype)
        fastest = C.encode_for_chip(w, dtype, sim.chip)
        rec = {"weights": name, "count": int(w.size), "dtype": dtype, "dense_bytes": dense.nbytes,
               "bitmask_bytes": bitmask.nbytes, "rle_bytes": rle.nbytes,
               "codebook_bytes": cb.nbytes if cb else None, "best_format": best.format, "best_bytes": best.nbytes,
               "saved": 1 - best.nbytes / dense.nbytes,
               "loadw_cycles_dense": loadw_cycles(sim, dense, w.size, dtype),
               "loadw_cycles_best": loadw_cycles(sim, best, w.size, dtype),
               "fastest_format": fastest.format, "fastest_bytes": fastest.nbytes,
               "loadw_cycles_fastest": loadw_cycles(sim, fastest, w.size, dtype)}
        records.append(rec)
        print(f"{name:26s} {dense.nbytes:9,d} {bitmask.nbytes:9,d} {rle.nbytes:9,d} "
              f"{(cb.nbytes if cb else 0):9,d} {best.format:>9s} {100 * rec['saved']:5.1f}% "
              f"{rec['loadw_cycles_dense']:15,d} {rec['loadw_cycles_best']:8,d} "
              f"{rec['loadw_cycles_fastest']:8,d} ({fastest.format})")
    if args.json:
        Path(args.json).write_text(json.dumps(records, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
