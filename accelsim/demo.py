"""``accelsim demo``: the bundled digits CNN, quantized for the chip, run on the simulated chip.

The float model (``accelsim/data/digits_cnn.onnx``, trained by ``examples/train_digits.py`` on
scikit-learn's digits) is quantized by accelsim.quant on 200 training images, compiled for the
default chip and run on the 360 held-out images; the demo prints float and quantized accuracy,
whether the chip's outputs equal ONNX Runtime's on the same QDQ model (when ONNX Runtime is
installed), the per-layer cost table, and what a mixed 4/8-bit variant saves per layer.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from importlib import resources
from typing import Optional

import numpy as np
import onnx

from .chip import ChipConfig, Simulator
from .compiler import (
    CompiledModel,
    LayerCost,
    compile_graph,
    format_layers,
    import_model,
    layer_table,
    layer_total,
)
from .compiler.onnx.runtime import session
from .quant import QuantConfig, float_runner, quantize_model


def bundled() -> tuple[onnx.ModelProto, dict[str, np.ndarray]]:
    """The digits float model and its data split (calib_x, test_x, test_y)."""
    data = resources.files("accelsim") / "data"
    model = onnx.load_from_string((data / "digits_cnn.onnx").read_bytes())
    with (data / "digits_split.npz").open("rb") as f:
        split = dict(np.load(f))
    return model, split


def float_logits(model: onnx.ModelProto, x: np.ndarray) -> np.ndarray:
    """Float inference over samples (ONNX Runtime if installed, else onnx's reference evaluator)."""
    run = float_runner(model, [model.graph.output[0].name])
    return np.concatenate([run({model.graph.input[0].name: s[None]})[0] for s in x])


def chip_logits(compiled: CompiledModel, x: np.ndarray, sim: Optional[Simulator] = None):
    """Run every sample on the simulated chip; returns the logits and the last run's report."""
    sim = sim or Simulator(compiled.chip)
    outs, report = [], None
    for s in x:
        out, report = compiled.run({"input": s[None]}, sim=sim)
        outs.append(out["output"])
    return np.concatenate(outs), report


def ort_logits(q: onnx.ModelProto, x: np.ndarray) -> Optional[np.ndarray]:
    """ONNX Runtime's outputs on the quantized model, or None without ONNX Runtime."""
    try:
        sess = session(q)
    except ImportError:
        return None
    return np.concatenate([sess.run(None, {"input": s[None]})[0] for s in x])


@dataclass
class DemoResult:
    float_accuracy: float
    chip_accuracy: float
    ort_equal: Optional[int]      # samples whose outputs equal ONNX Runtime's bit for bit (None: no ORT)
    samples: int
    rows: list[LayerCost]
    total: dict
    mixed_accuracy: float
    mixed_rows: list[LayerCost]
    seconds: float


def run_demo(bits: int = 8, calibrator: str = "percentile", chip: Optional[ChipConfig] = None,
             progress: bool = True, mixed: Optional[dict] = None) -> DemoResult:
    """Quantize, compile and run the bundled example; ``mixed`` is the per-layer bit map of the
    mixed-precision variant (default: the second conv and the first fully connected layer at 4 bits)."""
    t0 = time.perf_counter()
    model, split = bundled()
    x, y = split["test_x"], split["test_y"]
    chip = chip or ChipConfig()
    float_acc = float((float_logits(model, x).argmax(1) == y).mean())
    config = QuantConfig(weight_bits=bits, activation_bits=bits, calibrator=calibrator)
    q = quantize_model(model, split["calib_x"], config, progress=progress)
    compiled = compile_graph(import_model(q), chip)
    sim = Simulator(chip)
    logits, report = chip_logits(compiled, x, sim)
    ref = ort_logits(q, x)
    equal = None if ref is None else int(np.all(logits.reshape(len(x), -1) == ref.reshape(len(x), -1), axis=1).sum())
    mixed = mixed if mixed is not None else {"conv2": {"weight_bits": 4, "activation_bits": 4},
                                             "fc1": {"weight_bits": 4}}
    qm = quantize_model(model, split["calib_x"], QuantConfig(weight_bits=bits, activation_bits=bits,
                                                             calibrator=calibrator, layer_bits=mixed), progress=progress)
    cm = compile_graph(import_model(qm), chip)
    mixed_logits, mixed_report = chip_logits(cm, x, sim)
    return DemoResult(float_acc, float((logits.argmax(1) == y).mean()), equal, len(x),
                      layer_table(compiled, report), layer_total(report),
                      float((mixed_logits.argmax(1) == y).mean()), layer_table(cm, mixed_report),
                      time.perf_counter() - t0)


def format_demo(r: DemoResult, bits: int) -> str:
    lines = ["accelsim demo: a CNN trained on scikit-learn's digits (8x8), quantized by accelsim.quant,",
             "compiled for the default chip and run image by image on the simulated chip",
             "",
             f"held-out accuracy ({r.samples} images): float {100 * r.float_accuracy:.2f}%, "
             f"{bits}-bit on the chip {100 * r.chip_accuracy:.2f}%, mixed 4/{bits} {100 * r.mixed_accuracy:.2f}%"]
    if r.ort_equal is None:
        lines.append("ONNX Runtime is not installed: no cross-check (pip install onnxruntime)")
    else:
        lines.append(f"chip outputs equal to ONNX Runtime's on the same QDQ model: {r.ort_equal}/{r.samples} images"
                     + ("" if r.ort_equal == r.samples else
                        " (where they differ, ONNX Runtime is not exact integer arithmetic: docs/numerics.md)"))
    lines += ["", f"per layer, one image, {bits}-bit:", format_layers(r.rows, r.total), "",
              f"mixed 4/{bits} against all {bits}-bit, per layer:",
              f"{'layer':14s} {'bits':8s} {'cycles':>8s} {'saved':>8s} {'W bytes':>8s} {'saved':>8s}"]
    for a, b in zip(r.rows, r.mixed_rows):
        lines.append(f"{b.name[:14]:14s} {b.bits:8s} {b.cycles:8,d} {a.cycles - b.cycles:8,d} "
                     f"{b.dram_weight_bytes:8,d} {a.dram_weight_bytes - b.dram_weight_bytes:8,d}")
    cyc = sum(row.cycles for row in r.mixed_rows)
    lines.append(f"{'total':14s} {'':8s} {cyc:8,d} {r.total['cycles'] - cyc:8,d}")
    lines.append(f"\n({r.seconds:.1f} s)")
    return "\n".join(lines)
