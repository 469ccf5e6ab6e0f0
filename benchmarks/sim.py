"""Simulator speed: simulated MACs per host second, and the instruction loop's overhead.

    python benchmarks/sim.py [--json out.json] [--quick]

* GEMM throughput: a program of large GEMM tiles (M=N=K=512 unless --quick) at 4x4, 8x4, 8x8 and
  16x16, run bit-exact (values) and timing-only; simulated MACs per host second.
* ResNet-18 topology estimate: tiling, lowering and timing-only simulation of all 21 layers.
* Loop overhead: a program of 200,000 single-element instructions (SHR, VMAX, NOP on every unit)
  run bit-exact and timing-only; host nanoseconds per instruction, beside the one-time Python
  validation and lowering of the program (reported separately, per instruction).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from timing import best_of  # noqa: E402  (benchmarks/ is the script directory)

from accelsim.chip import ChipConfig, Program, Simulator  # noqa: E402
from accelsim.compiler.topology import estimate, parse_topology  # noqa: E402
from isa import Instruction as I  # noqa: E402
from isa import encode_program  # noqa: E402
from kernels.paths import describe  # noqa: E402

TYPES = {"4x4": ("s4", "s4"), "8x4": ("s4", "s8"), "8x8": ("s8", "s8"), "16x16": ("s16", "s16")}



def gemm_program(size: int, bits: str, tiles: int) -> Program:
    a, w = TYPES[bits]
    prog = [I("CONFIG", a=a, w=w, o="s8", acc_bits=48 if bits == "16x16" else 32, clamp_min=-128, clamp_max=127)]
    prog += [I("GEMM", inp=0, wgt=0, acc=0, m=size, n=size, k=size, accumulate=int(t > 0)) for t in range(tiles)]
    return Program(encode_program(prog + [I("HALT")]))


def overhead_program(n: int) -> Program:
    body = [I("SHR", src_buf="INP", src=0, dst_buf="OUT", dst=0, n=1, shift=1),
            I("VMAX", a_buf="INP", a=0, b_buf="OUT", b=0, dst_buf="OUT", dst=1, n=1),
            I("NOP", unit="load"), I("NOP", unit="store")]
    return Program(encode_program(body * (n // len(body)) + [I("HALT")]))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--json", metavar="FILE")
    ap.add_argument("--quick", action="store_true", help="small sizes (smoke test)")
    args = ap.parse_args(argv)
    print(describe())  # which kernel paths this run measures
    size, tiles, n_insn, reps = (128, 2, 4000, 1) if args.quick else (512, 4, 200_000, 3)
    chip = ChipConfig().replace(buffers={"inp_kib": 1024, "inp_word_bits": 32, "wgt_kib": 1024, "wgt_word_bits": 32,
                                         "acc_kib": 2048, "acc_word_bits": 64})
    sim = Simulator(chip)
    records = []
    for bits in TYPES:
        prog = gemm_program(size, bits, tiles)
        sim.lower(prog)
        macs = size ** 3 * tiles
        t_values = best_of(lambda: sim.run(prog), reps)
        t_timing = best_of(lambda: sim.run(prog, values=False), reps)
        records.append({"bench": "gemm_tiles", "bits": bits, "m": size, "n": size, "k": size, "tiles": tiles,
                        "simulated_macs": macs, "values_s": t_values, "timing_only_s": t_timing,
                        "macs_per_s": macs / t_values, "gmacs": macs / t_values / 1e9})
    prog = overhead_program(n_insn)
    t0 = time.perf_counter()
    low = sim.lower(prog)
    lower_s = time.perf_counter() - t0
    n = low.rows.shape[0]
    t_values = best_of(lambda: sim.run(prog), reps)
    t_timing = best_of(lambda: sim.run(prog, values=False), reps)
    t_empty = best_of(lambda: sim.run(Program(encode_program([I("HALT")]))), reps)  # fixed cost of a run
    records.append({"bench": "loop_overhead", "instructions": n, "values_s": t_values, "timing_only_s": t_timing,
                    "fixed_run_s": t_empty, "ns_per_instruction": (t_values - t_empty) / n * 1e9,
                    "timing_only_ns_per_instruction": (t_timing - t_empty) / n * 1e9,
                    "lowering_us_per_instruction": lower_s / n * 1e6})
    layers = parse_topology((ROOT / "examples" / "resnet18.csv").read_text())
    estimate(layers[:1], ChipConfig())  # compile
    t_est = best_of(lambda: estimate(layers, ChipConfig()), reps)
    est = estimate(layers, ChipConfig())
    records.append({"bench": "resnet18_topology_estimate", "layers": len(layers), "seconds": t_est,
                    "simulated_cycles": sum(e.cycles for e in est), "macs": sum(e.macs for e in est)})
    print(f"{'bits':6s} {'M=N=K':>6s} {'tiles':>5s} {'GMAC/s simulated':>17s} {'values s':>9s} {'timing-only s':>14s}")
    for r in records[:-2]:
        print(f"{r['bits']:6s} {r['m']:6d} {r['tiles']:5d} {r['gmacs']:17.2f} {r['values_s']:9.4f} {r['timing_only_s']:14.6f}")
    o = records[-2]
    print(f"instruction loop: {o['ns_per_instruction']:.0f} ns per instruction bit-exact, "
          f"{o['timing_only_ns_per_instruction']:.0f} ns timing-only ({o['instructions']:,} instructions; "
          f"fixed cost per run {o['fixed_run_s'] * 1e3:.2f} ms); one-time validation + lowering "
          f"{o['lowering_us_per_instruction']:.1f} us per instruction (Python)")
    e = records[-1]
    print(f"ResNet-18 topology (examples/resnet18.csv, {e['layers']} layers): tiled, lowered and simulated "
          f"timing-only in {e['seconds']:.3f} s ({e['simulated_cycles']:,} chip cycles)")
    if args.json:
        Path(args.json).write_text(json.dumps(records, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
