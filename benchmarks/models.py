"""Whole-model speed and traffic per batch: compile time, bit-exact and timing-only simulation,
throughput at the chip clock and DRAM traffic, against ONNX Runtime's own int8 inference of the
same quantized model measured in the same run.

    python benchmarks/models.py [--models resnet18 mobilenetv2 cls blazeface] [--batch 1 8]
                                [--size 224] [--reps N] [--json out.json]

Models: ``resnet18`` and ``mobilenetv2`` from accelsim.zoo (random weights, BatchNorm folded, a
random normal input), quantized by ONNX Runtime's quantize_static (QDQ, per channel,
reduce_range, u8 activations, s8 weights); ``cls`` (PaddleOCR's text-direction classifier
ch_ppocr_mobile_v2.0_cls_infer.onnx, fed tests/images.py text lines, 48 x 192) and ``blazeface``
(face_detection_short_range.onnx, fed tests/images.py faces scaled to [-1, 1], 128 x 128), the
pretrained files scripts/fetch_models.py fetches, quantized by accelsim.quant.ort_static
.ort_quantize (QDQ, int8 activations) calibrated on 8 of those images.  A pretrained model whose
file is missing is skipped with a line saying so.

One row per model and batch: the model compiled for that batch and run once on the batch.
``chip img/s`` is images / latency at the chip clock (RunReport.images_per_s); ``sim img/s`` and
``ORT img/s`` are wall-clock images per second of the bit-exact simulation and of ONNX Runtime's
default (fastest) kernels, one thread, best of --reps.  ORT runs the batch as one call when the
model's batch dimension is free (mode ``batch``), else image by image (mode ``per-image``).
``ratio`` = simulate_s / onnxruntime_s (how many times slower the simulator is than ORT at that
batch).  DRAM and weight bytes per image are the run's DRAM traffic (reads plus writes; weight
reads) divided by the batch.  ``exact`` says whether every chip output equals, bit for bit, the
reference session's (exact integer kernels on every CPU, accelsim.compiler.onnx.runtime) run
image by image; onnxruntime_exact_s times that session on the batch the same way.  A model the
compiler cannot take yet is reported with its error instead of figures.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import logging
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from timing import best_of  # noqa: E402  (benchmarks/ is the script directory)

from accelsim import zoo  # noqa: E402
from accelsim.chip import RunReport, Simulator  # noqa: E402
from accelsim.chip.rows import OPS  # noqa: E402
from accelsim.compiler import CompiledModel, compile_model  # noqa: E402
from accelsim.compiler.ir import ModelError  # noqa: E402
from accelsim.compiler.onnx.runtime import default_u8s8_is_exact, session  # noqa: E402
from kernels.paths import describe  # noqa: E402

ZOO = ("resnet18", "mobilenetv2")
#: --models choice -> (file scripts/fetch_models.py fetches, its input at batch n)
PRETRAINED: dict[str, tuple[str, Callable[[int], np.ndarray]]] = {
    "cls": ("ch_ppocr_mobile_v2.0_cls_infer.onnx", lambda n: _images().text_lines(n, 48, 192)),
    "blazeface": ("face_detection_short_range.onnx", lambda n: _images().faces(n, 128, 128) * 2 - 1),
}
CALIBRATION_IMAGES = 8


@dataclass
class Case:
    """A quantized model, its input's name and its float32 inputs for up to the largest batch."""

    name: str
    model: onnx.ModelProto
    input_name: str
    inputs: np.ndarray


def _images():
    """tests/images.py (real images for the pretrained models)."""
    from tests import images
    return images


def _fetch_models():
    """scripts/fetch_models.py, which knows where the pretrained models are."""
    if "fetch_models" not in sys.modules:  # registered first: its dataclasses look their module up
        spec = importlib.util.spec_from_file_location("fetch_models", ROOT / "scripts" / "fetch_models.py")
        sys.modules["fetch_models"] = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(sys.modules["fetch_models"])
    return sys.modules["fetch_models"]


def quantize_zoo(model: onnx.ModelProto, size: int, workdir: Path) -> onnx.ModelProto:
    """ORT quantize_static (QDQ, per channel, reduce_range, u8 x s8) on 4 random normal inputs."""
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static

    rng = np.random.default_rng(0)

    class Reader(CalibrationDataReader):
        def __init__(self):
            self.it = iter([{"input": rng.normal(0, 1, (1, 3, size, size)).astype(np.float32)} for _ in range(4)])

        def get_next(self):
            return next(self.it, None)

    onnx.save(model, workdir / "f.onnx")
    logging.disable(logging.WARNING)  # quantize_static advises pre-processing, once per model
    try:
        quantize_static(str(workdir / "f.onnx"), str(workdir / "q.onnx"), Reader(), quant_format=QuantFormat.QDQ,
                        per_channel=True, reduce_range=True, activation_type=QuantType.QUInt8,
                        weight_type=QuantType.QInt8)
    finally:
        logging.disable(logging.NOTSET)
    return onnx.load(str(workdir / "q.onnx"))


def zoo_case(name: str, size: int, max_batch: int) -> Case:
    """A zoo model quantized by quantize_static, with random normal inputs."""
    with tempfile.TemporaryDirectory() as d:
        q = quantize_zoo(zoo.build(name, input_size=size, fold_bn=True), size, Path(d))
    x = np.random.default_rng(1).normal(0, 1, (max_batch, 3, size, size)).astype(np.float32)
    return Case(name, q, "input", x)


def pretrained_case(key: str, max_batch: int) -> Case | None:
    """A fetched pretrained model quantized by ort_quantize on its images; None (with a line
    printed) when its file is missing."""
    from accelsim.quant.ort_static import ort_quantize

    file, feed = PRETRAINED[key]
    path = _fetch_models().model_dir() / file
    if not path.exists():
        print(f"{key}: {path} is missing: run python scripts/fetch_models.py (skipped)")
        return None
    data = feed(max(CALIBRATION_IMAGES, max_batch)).astype(np.float32)
    q = ort_quantize(onnx.load(path), data[:CALIBRATION_IMAGES], fmt="QDQ", activation="int8")
    return Case(key, q, q.graph.input[0].name, data[:max_batch])


def batch_is_free(model: onnx.ModelProto, input_name: str) -> bool:
    """Whether the model's file leaves the input's batch dimension free (ORT then takes a batch)."""
    vi = next(i for i in model.graph.input if i.name == input_name)
    d = vi.type.tensor_type.shape.dim[0]
    return not (d.HasField("dim_value") and d.dim_value > 0)


def ort_runner(sess, name: str, x: np.ndarray, whole: bool) -> Callable[[], list]:
    """Run ``sess`` on ``x``: in one call when ``whole``, else image by image."""
    if whole:
        return lambda: sess.run(None, {name: x})
    return lambda: [sess.run(None, {name: x[i:i + 1]}) for i in range(len(x))]


def reference_outputs(model: onnx.ModelProto, name: str, x: np.ndarray) -> dict[str, np.ndarray]:
    """The reference session's outputs, run image by image, concatenated, by output name."""
    sess = session(model)
    parts = [sess.run(None, {name: x[i:i + 1]}) for i in range(len(x))]
    return {o.name: np.concatenate(p) for o, p in zip(model.graph.output, zip(*parts))}


def equal_outputs(got: dict[str, np.ndarray], want: dict[str, np.ndarray]) -> bool:
    """Every reference output present in ``got`` with the same shape and bits."""
    return all(k in got and np.array_equal(got[k], v) for k, v in want.items())


def traffic(report: RunReport, batch: int) -> dict:
    """Chip-clock throughput and DRAM traffic per image of one run."""
    dram = sum(report.dram_read_bytes.values()) + sum(report.dram_write_bytes.values())
    return {"images_per_s_chip": report.images_per_s, "dram_bytes_per_image": dram / batch,
            "weight_bytes_per_image": report.dram_read_bytes["weight"] / batch,
            "macs": report.total_macs, "cycles": report.cycles}


def simulator_times(compiled: CompiledModel, feed: dict, reps: int) -> tuple[dict, RunReport, dict]:
    """The bit-exact run's outputs and report, the simulator's wall times, and where the value
    loop's time goes: the share of host cycles per instruction type (the profiled loop)."""
    sim = Simulator(compiled.chip)
    out, report = compiled.run(feed, sim=sim)
    times = {"simulate_s": best_of(lambda: compiled.run(feed, sim=sim), reps),
             "timing_only_s": best_of(lambda: compiled.run(feed, sim=sim, values=False), reps)}
    compiled.run(feed, sim=sim, profile=True)
    ops = sim.lower(compiled.program).rows[:, 0]
    ticks = sim.last_ticks
    share = {OPS[o]: float(ticks[ops == o].sum() / max(ticks.sum(), 1)) for o in np.unique(ops)}
    times["value_loop_share"] = {k: round(v, 4) for k, v in sorted(share.items(), key=lambda kv: -kv[1]) if v >= 0.001}
    return out, report, times


def ort_times(case: Case, x: np.ndarray, reps: int) -> dict:
    """ORT's default kernels and the reference session on the batch (whole or image by image)."""
    whole = batch_is_free(case.model, case.input_name)
    fast, exact = session(case.model, exact=False), session(case.model)
    return {"ort_mode": "batch" if whole else "per-image",
            "onnxruntime_s": best_of(ort_runner(fast, case.input_name, x, whole), reps),
            "onnxruntime_exact_s": best_of(ort_runner(exact, case.input_name, x, whole), reps)}


def bench(case: Case, batch: int, reps: int) -> dict:
    """One row: ``case`` compiled for ``batch`` images, simulated and run by ORT."""
    x = case.inputs[:batch]
    record = {"model": case.name, "batch": batch, "input_shape": list(x.shape)}
    try:
        t = time.perf_counter()
        compiled = compile_model(case.model, input_shapes={case.input_name: x.shape})
        record["compile_s"] = time.perf_counter() - t
        out, report, sim_t = simulator_times(compiled, {case.input_name: x}, reps)
    except ModelError as e:
        record["error"] = str(e)
        return record
    record.update(sim_t)
    record.update(ort_times(case, x, reps))
    record.update(traffic(report, batch))
    record["images_per_s_sim"] = batch / record["simulate_s"]
    record["images_per_s_ort"] = batch / record["onnxruntime_s"]
    record["ratio"] = record["simulate_s"] / record["onnxruntime_s"]
    record["onnxruntime_default_exact"] = default_u8s8_is_exact()
    record["bit_exact"] = equal_outputs(out, reference_outputs(case.model, case.input_name, x))
    return record


HEADER = (f"{'model':12s} {'batch':>5s} {'compile s':>9s} {'chip img/s':>10s} {'sim img/s':>9s} "
          f"{'ORT img/s':>9s} {'ORT mode':9s} {'ratio':>7s} {'DRAM B/img':>12s} {'wgt B/img':>11s} "
          f"{'GMAC/img':>8s} exact")


def row_line(r: dict) -> str:
    """One printed line per (model, batch)."""
    if "error" in r:
        return f"{r['model']:12s} {r['batch']:5d} not compiled yet: {r['error']}"
    return (f"{r['model']:12s} {r['batch']:5d} {r['compile_s']:9.3f} {r['images_per_s_chip']:10.1f} "
            f"{r['images_per_s_sim']:9.2f} {r['images_per_s_ort']:9.1f} {r['ort_mode']:9s} {r['ratio']:7.1f} "
            f"{r['dram_bytes_per_image']:12,.0f} {r['weight_bytes_per_image']:11,.0f} "
            f"{r['macs'] / 1e9 / r['batch']:8.3f} {r['bit_exact']}")


def make_case(name: str, size: int, max_batch: int) -> Case | None:
    """The model behind a --models choice (None: a pretrained file is missing)."""
    return zoo_case(name, size, max_batch) if name in ZOO else pretrained_case(name, max_batch)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    choices = list(ZOO) + list(PRETRAINED)
    ap.add_argument("--models", nargs="+", default=choices, choices=choices)
    ap.add_argument("--batch", nargs="+", type=int, default=[1, 8], help="batch sizes (default 1 8)")
    ap.add_argument("--size", type=int, default=224, help="input size H = W of the zoo models (default 224)")
    ap.add_argument("--reps", type=int, default=10, help="best of this many runs (default 10; this VM is noisy)")
    ap.add_argument("--json", metavar="FILE", help="write every row to FILE")
    args = ap.parse_args(argv)
    if min(args.batch) < 1:
        ap.error("--batch: every batch must be at least 1")
    print(describe())  # which kernel paths this run measures
    records = []
    for name in args.models:
        case = make_case(name, args.size, max(args.batch))
        if case is not None:
            records += [bench(case, b, args.reps) for b in args.batch]
    print(HEADER)
    for r in records:
        print(row_line(r))
    print("\nwhere the bit-exact value loop's time goes (share of host cycles by instruction type), and timing only:")
    for r in records:
        if "value_loop_share" in r:
            top = ", ".join(f"{k} {100 * v:.0f}%" for k, v in list(r["value_loop_share"].items())[:6])
            print(f"{r['model']:12s} {r['batch']:5d}  {top};  timing-only {1e3 * r['timing_only_s']:.2f} ms")
    if args.json:
        Path(args.json).write_text(json.dumps(records, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
