"""``accelsim qat``: fine-tune a float model with QAT, export it, and measure it on the chip
beside its PTQ point (accelsim's best calibrator at the same widths): accuracy on the chip,
the integer-exact forward's accuracy, and whether ONNX Runtime's outputs equal the chip's."""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field
from importlib import resources
from pathlib import Path
from typing import Optional

import numpy as np
import onnx

from ...compiler import compile_model
from ...compiler.onnx.runtime import session
from ..calibrate import CALIBRATORS
from ..config import QuantConfig, load_layer_bits
from ..ptq import quantize_model
from .config import QatConfig, QatError
from .deploy import OUTPUT, to_qdq
from .integer import integer_forward
from .prepare import prepare
from .train import TrainConfig, fit


@dataclass
class QatResult:
    """One trained and measured model (the JSON record of benchmarks/qat_accuracy.py)."""

    dataset: str
    method: str                   # float, ptq, minmax, lsq, lsq+, pact, dorefa
    bits: Optional[int]           # the uniform width, None for a layer-bit map
    accuracy_chip: float
    accuracy_eval_forward: Optional[float]
    ort_equal: Optional[bool]     # ONNX Runtime's outputs == the chip's, bit for bit
    predictions_equal: Optional[bool] = None  # the chip's arg-max == the eval forward's on every image
    cycles_per_image: Optional[float] = None
    seconds: float = 0.0
    extra: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        d = asdict(self)
        d.update(d.pop("extra"))
        return d


def bundled(dataset: str) -> onnx.ModelProto:
    """The float CNN bundled for ``dataset`` (accelsim/data/<dataset>_cnn.onnx)."""
    return onnx.load(str(resources.files("accelsim") / "data" / f"{dataset}_cnn.onnx"))


def chip_outputs(q: onnx.ModelProto, x: np.ndarray, batch: int = 250) -> tuple[np.ndarray, float]:
    """The chip's outputs on ``x`` and its cycles per image."""
    name = q.graph.input[0].name
    compiled = compile_model(q, batch=min(batch, len(x)))
    outs, cycles = [], 0.0
    for i in range(0, len(x), batch):
        out, report = compiled.run({name: x[i:i + batch]})
        outs.append(out[q.graph.output[0].name])
        cycles = report.cycles / report.images
    return np.concatenate(outs), cycles


def ort_outputs(q: onnx.ModelProto, x: np.ndarray, exact: bool = True) -> Optional[np.ndarray]:
    """ONNX Runtime's outputs (None without onnxruntime), image by image where the file fixes
    the batch at 1."""
    try:
        sess = session(q, exact=exact)
    except ImportError:
        return None
    name = q.graph.input[0].name
    if q.graph.input[0].type.tensor_type.shape.dim[0].dim_value == 1:
        return np.concatenate([sess.run(None, {name: x[i:i + 1]})[0] for i in range(len(x))])
    return sess.run(None, {name: x})[0]


def _accuracy(out: np.ndarray, y: np.ndarray) -> float:
    return float((out.reshape(len(out), -1).argmax(axis=1) == y).mean())


def layer_bits_from(path: str | Path) -> dict[str, dict[str, int]]:
    """A layer-bit map file, or the chosen point of an ``accelsim codesign`` frontier.json."""
    p = Path(path)
    if p.suffix == ".json":
        try:
            raw = json.loads(p.read_text())
        except FileNotFoundError:
            raise QatError(f"{path}: no such file") from None
        except json.JSONDecodeError as e:
            raise QatError(f"{path}: {e}") from None
        if isinstance(raw, dict) and "points" in raw:
            if raw.get("chosen") is None:
                raise QatError(f"{path}: the co-design run chose no point (none met its accuracy floor)")
            return {k: dict(v) for k, v in raw["points"][raw["chosen"]]["layer_bits"].items()}
    try:
        return load_layer_bits(p)
    except ValueError as e:
        raise QatError(str(e)) from None


def ends_at_8_bits(model: onnx.ModelProto) -> dict[str, dict[str, int]]:
    """The layer-bit map that keeps the graph input and the last layer's output at 8 bits over a
    uniform width (the convention of the QAT table, for PTQ as for QAT)."""
    layers = [n.name for n in model.graph.node if n.op_type in ("Conv", "Gemm", "MatMul")]
    return {model.graph.input[0].name: {"activation_bits": 8}, layers[-1]: {"activation_bits": 8}}


def measure_float(dataset: str, model: onnx.ModelProto, x: np.ndarray, y: np.ndarray) -> QatResult:
    """The float model's accuracy (ONNX Runtime)."""
    return QatResult(dataset, "float", None, _accuracy(ort_outputs(model, x, exact=False), y), None, None)


def run_ptq(dataset: str, model: onnx.ModelProto, calib: np.ndarray, x: np.ndarray, y: np.ndarray,
            bits: Optional[int], layer_bits: Optional[dict] = None, calibrators=CALIBRATORS) -> QatResult:
    """PTQ at the same widths with each calibrator; the best on the chip is the record."""
    t0 = time.time()
    w = a = bits or 8
    lb = layer_bits if layer_bits is not None else ends_at_8_bits(model)
    best = None
    for c in calibrators:
        q = quantize_model(model, calib, QuantConfig(weight_bits=w, activation_bits=a, calibrator=c, layer_bits=lb),
                           progress=False)
        out, cycles = chip_outputs(q, x)
        acc = _accuracy(out, y)
        if best is None or acc > best[0]:
            best = (acc, c, cycles, q, out)
    acc, c, cycles, q, out = best
    ref = ort_outputs(q, x) if bits is not None and bits >= 8 else None
    return QatResult(dataset, "ptq", bits, acc, None, None if ref is None else bool(np.array_equal(ref, out)),
                     cycles_per_image=cycles, seconds=time.time() - t0, extra=dict(calibrator=c))


def run_qat(dataset: str, model: onnx.ModelProto, train: tuple[np.ndarray, np.ndarray],
            test: tuple[np.ndarray, np.ndarray], method: str, bits: Optional[int] = None,
            layer_bits: Optional[dict] = None, train_config: Optional[TrainConfig] = None,
            out: Optional[str | Path] = None, progress: bool = True) -> QatResult:
    """Fine-tune ``model`` with ``method`` at ``bits`` (or ``layer_bits`` over 8 bits), export it
    (to ``out`` when given) and measure it on the chip, in the eval forward and in ONNX Runtime."""
    t0 = time.time()
    w = bits or 8
    config = QatConfig(method=method, weight_bits=w, activation_bits=w, layer_bits=layer_bits or {})
    net = prepare(model, config)
    x, y = test
    hist = fit(net, train[0], train[1], x, y, train_config, progress=progress,
               desc=f"qat {method} {bits or 'map'}")
    shape = ["batch"] + list(x.shape[1:])
    q, d = to_qdq(net, shape)
    if out is not None:
        onnx.save(q, str(out))
    ev = integer_forward(net, x, d)
    chip, cycles = chip_outputs(q, x)
    twin, _ = to_qdq(net, shape, min_container=8)  # ONNX Runtime has integer kernels only for 8-bit types
    ref = ort_outputs(twin, x)
    return QatResult(dataset, method, bits, _accuracy(chip, y), _accuracy(ev, y),
                     None if ref is None else bool(np.array_equal(ref, chip)),
                     predictions_equal=bool(np.array_equal(chip.argmax(1), ev.argmax(1))),
                     cycles_per_image=cycles, seconds=time.time() - t0,
                     extra=dict(outputs_equal=bool(np.array_equal(chip, ev)), epochs=len(hist.loss),
                                accuracy_per_epoch=hist.accuracy, output=OUTPUT))
