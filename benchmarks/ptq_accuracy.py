"""Accuracy of post-training quantization on the simulated chip: the bundled digits CNN.

    python benchmarks/ptq_accuracy.py [--bits 2 3 4 5 6 7 8] [--calibrators minmax entropy percentile mse]
                                      [--json out.json] [--markdown]

For every bit width (weights and activations equal), weight granularity (per channel, per tensor)
and calibrator, the float model is quantized by accelsim.quant on the 200 bundled calibration
images, compiled for the default chip and run image by image on the simulated chip over the 360
held-out images.  Records: {"bits", "granularity", "calibrator", "accuracy", "float_accuracy",
"cycles", "weight_bytes"} (cycles and DRAM weight bytes of one image).  ``--markdown`` prints
the table of docs/ptq.md.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path


ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from accelsim.chip import Simulator  # noqa: E402
from accelsim.compiler import compile_graph, import_model, layer_table  # noqa: E402
from accelsim.demo import bundled, chip_logits, float_logits  # noqa: E402
from accelsim.quant import QuantConfig, quantize_model  # noqa: E402


def measure(bits_list, calibrators, granularities=("per_channel", "per_tensor")) -> list[dict]:
    model, split = bundled()
    x, y = split["test_x"], split["test_y"]
    float_acc = float((float_logits(model, x).argmax(1) == y).mean())
    records = []
    sim = None
    for bits in bits_list:
        for gran in granularities:
            for cal in calibrators:
                t0 = time.perf_counter()
                cfg = QuantConfig(weight_bits=bits, activation_bits=bits, per_channel=gran == "per_channel",
                                  calibrator=cal)
                q = quantize_model(model, split["calib_x"], cfg, progress=False)
                compiled = compile_graph(import_model(q))
                sim = sim or Simulator(compiled.chip)
                logits, report = chip_logits(compiled, x, sim)
                rows = layer_table(compiled, report)
                rec = {"bits": bits, "granularity": gran, "calibrator": cal,
                       "accuracy": float((logits.argmax(1) == y).mean()), "float_accuracy": float_acc,
                       "cycles": int(report.cycles), "weight_bytes": int(sum(r.dram_weight_bytes for r in rows)),
                       "seconds": time.perf_counter() - t0}
                records.append(rec)
                print(f"{bits} bits {gran:11s} {cal:14s} accuracy {100 * rec['accuracy']:6.2f}%  "
                      f"cycles {rec['cycles']:6d}  weight bytes {rec['weight_bytes']:5d}  ({rec['seconds']:.1f} s)",
                      file=sys.stderr)
    return records


def markdown(records: list[dict]) -> str:
    cals = list(dict.fromkeys(r["calibrator"] for r in records))
    grans = list(dict.fromkeys(r["granularity"] for r in records))
    head = "| bits | " + " | ".join(f"{g.replace('_', ' ')}, {c}" for g in grans for c in cals) + " | cycles | weight bytes |"
    lines = [head, "|" + "---|" * (len(grans) * len(cals) + 3)]
    for bits in sorted({r["bits"] for r in records}):
        row = {(r["granularity"], r["calibrator"]): r for r in records if r["bits"] == bits}
        first = next(iter(row.values()))
        cells = [f"{100 * row[(g, c)]['accuracy']:.1f}" if (g, c) in row else "" for g in grans for c in cals]
        lines.append(f"| {bits} | " + " | ".join(cells) + f" | {first['cycles']} | {first['weight_bytes']} |")
    lines.append(f"| float | {100 * records[0]['float_accuracy']:.1f} (all) |" + " |" * (len(grans) * len(cals) + 1))
    return "\n".join(lines)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bits", type=int, nargs="+", default=[2, 3, 4, 5, 6, 7, 8])
    ap.add_argument("--calibrators", nargs="+", default=["minmax", "entropy", "percentile", "mse"])
    ap.add_argument("--granularity", nargs="+", default=["per_channel", "per_tensor"],
                    choices=["per_channel", "per_tensor"])
    ap.add_argument("--json", help="write the records to this file")
    ap.add_argument("--markdown", action="store_true", help="print the markdown table of docs/ptq.md")
    args = ap.parse_args(argv)
    records = measure(args.bits, args.calibrators, args.granularity)
    print(json.dumps(records, indent=1))
    if args.json:
        Path(args.json).write_text(json.dumps(records, indent=1))
    if args.markdown:
        print(markdown(records))
    return 0


if __name__ == "__main__":
    sys.exit(main())
