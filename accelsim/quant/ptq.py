"""Post-training quantization for the chip: a float ONNX model in, a standard QDQ ONNX model out.

Steps (Krishnamoorthi's whitepaper, section 3; TensorRT's calibration):

1. Constant nodes become initializers, arithmetic on constants is folded; fold every BatchNormalization into the convolution before it
   (accelsim.quant.graph); a model below opset 13 is converted to it.
2. Plan which tensors carry a QuantizeLinear / DequantizeLinear pair (accelsim.quant.plan).
3. Calibrate the planned tensors on sample inputs (accelsim.quant.calibrate; the float model runs
   in ONNX Runtime when it is installed, else in onnx's reference evaluator).
4. Quantize weights (per channel or per tensor; symmetric, optionally narrow or reduced range, or
   asymmetric per tensor) and biases (int32, scale ``s_in * s_w``), and write the QDQ model
   (accelsim.quant.qdq).

Bit widths are set globally or per layer (node name -> weight / activation bits; the activation
bits of a node are those of its output).  Widths other than 4, 8 and 16 are stored in the next
container (2 and 3 bits in int4/uint4, 5 to 7 in 8 bits) with the range of the narrower width:
weights take only its values, activations get a Clip to its range that the compiler fuses into
the requantization clamp.  4-bit and 16-bit types need opset 21; the model is converted.
"""

from __future__ import annotations

import sys
from typing import Callable, Iterable, Optional

import numpy as np
import onnx
from onnx import helper

from isa.quant import scale_zero_point

from ..compiler.onnx.prepare import constants_to_initializers, fold_constants
from ..compiler.onnx.runtime import session
from .calibrate import TensorStats, calibrated_range
from .config import QuantConfig, bit_range, container
from .graph import fold_batchnorm, name_nodes
from .plan import PlannedTensor, plan_tensors
from .qdq import write_qdq


# ------------------------------------------------------------------------------------------ calibration
def float_runner(model: onnx.ModelProto, outputs: list[str]) -> Callable[[dict], list[np.ndarray]]:
    """Run the float model returning ``outputs``: ONNX Runtime if installed, else onnx's reference."""
    m = onnx.ModelProto()
    m.CopyFrom(model)
    known = {o.name for o in m.graph.output}
    m.graph.output.extend([helper.make_empty_tensor_value_info(o) for o in outputs if o not in known])
    try:
        sess = session(m)
        return lambda feed: sess.run(outputs, feed)
    except ImportError:
        from onnx.reference import ReferenceEvaluator

        ref = ReferenceEvaluator(m)
        return lambda feed: ref.run(outputs, feed)


def _batches(model: onnx.ModelProto, calib: np.ndarray, batch_size: int) -> Iterable[list[np.ndarray]]:
    """Calibration batches as lists of model feeds (one sample each when the batch size is fixed at 1)."""
    dims = model.graph.input[0].type.tensor_type.shape.dim
    fixed_one = bool(dims) and dims[0].dim_value == 1
    x = np.asarray(calib, np.float32)
    shape = tuple(d.dim_value for d in dims)
    if x.ndim == len(shape) - 1:
        x = x[:, None] if shape[1:] != x.shape[1:] else x
    for b0 in range(0, x.shape[0], batch_size):
        chunk = x[b0:b0 + batch_size]
        yield [s[None] for s in chunk] if fixed_one else [chunk]


def collect_stats(model: onnx.ModelProto, calib: np.ndarray, tensors: list[str], config: QuantConfig,
              progress: bool = True) -> dict[str, TensorStats]:
    """Statistics of ``tensors`` over the calibration samples (two passes for histogram methods)."""
    run = float_runner(model, tensors)
    name = model.graph.input[0].name
    stats = {t: TensorStats() for t in tensors}
    passes = 2 if config.calibrator in ("percentile", "entropy", "mse") else 1
    batches = list(_batches(model, calib, config.batch_size))
    bar = _progress(passes * sum(len(b) for b in batches), progress, f"calibrating ({config.calibrator})")
    for p in range(passes):
        for feeds in batches:
            outs = [run({name: f}) for f in feeds]
            for k, t in enumerate(tensors):
                vals = [o[k] for o in outs]
                if p == 0:
                    stats[t].add_batch(np.concatenate([v.ravel() for v in vals]))
                else:
                    for v in vals:
                        stats[t].add_histogram(v)
            bar.update(len(feeds))
    bar.close()
    return stats


class _NoBar:
    def update(self, n: int) -> None:
        pass

    def close(self) -> None:
        pass


def _progress(total: int, enabled: bool, desc: str):
    if not enabled:
        return _NoBar()
    from tqdm import tqdm

    return tqdm(total=total, desc=desc, unit="sample", file=sys.stderr, leave=False)


def quantize_model(model: onnx.ModelProto, calib: np.ndarray, config: Optional[QuantConfig] = None,
                   progress: bool = True, stats_cache: Optional[dict] = None) -> onnx.ModelProto:
    """The QDQ model of a float model, calibrated on ``calib`` (samples along the first axis).

    ``stats_cache``: a dict kept by the caller across calls on the same model and samples (e.g. a
    bit-width search), so the float model runs over the calibration data once, not once per call."""
    config = config or QuantConfig()
    model = fold_batchnorm(name_nodes(fold_constants(constants_to_initializers(model))))
    widths = {config.weight_bits, config.activation_bits} | {b for d in config.layer_bits.values() for b in d.values()}
    opset = next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), 17)
    need = 21 if any(container(b) != 8 for b in widths) else 13
    if opset < need:
        model = onnx.version_converter.convert_version(model, need)
        model.ir_version = min(model.ir_version, 10)
    model = onnx.shape_inference.infer_shapes(model)
    known_nodes = {n.name for n in model.graph.node} | {i.name for i in model.graph.input}
    unknown = sorted(set(config.layer_bits) - known_nodes)
    if unknown:
        raise ValueError(f"layer_bits names nodes the model does not have: {', '.join(unknown)}")
    plan, fused = plan_tensors(model, config)
    own = [t for t in plan.values() if t.source is None]
    key = (tuple(t.name for t in own), config.calibrator, config.input_calibrator, config.batch_size)
    stats = stats_cache.get(key) if stats_cache is not None else None
    if stats is None:
        stats = collect_stats(model, calib, [t.name for t in own], config, progress)
        if stats_cache is not None:
            stats_cache[key] = stats
    graph_inputs = {i.name for i in model.graph.input}
    for t in own:
        _set_parameters(t, stats[t.name], config.input_calibrator if t.name in graph_inputs else config.calibrator,
                        config)
    for t in plan.values():
        if t.source is not None:
            s = plan[t.source]
            t.scale, t.zero_point, t.signed, t.bits = s.scale, s.zero_point, s.signed, s.bits
    return write_qdq(model, plan, fused, config, integer_clamps=True)


def _set_parameters(t: PlannedTensor, stats: TensorStats, method: str, config: QuantConfig) -> None:
    """A calibrated tensor's scale and zero point (and its Clip range when its width is narrower
    than its container)."""
    t.signed = config.symmetric_activations
    qmin, qmax = bit_range(t.bits, t.signed)
    lo, hi = calibrated_range(stats, method, bits=t.bits, qmin=qmin, qmax=qmax, symmetric=t.signed,
                              percentile=config.percentile, momentum=config.momentum)
    scale, zp = scale_zero_point(lo, hi, qmin, qmax, symmetric=t.signed)
    t.scale, t.zero_point = np.float32(scale), int(zp)
    if t.bits != container(t.bits):  # a narrower width in its container: clip to its range
        t.clip = (float(t.scale * (qmin - t.zero_point)), float(t.scale * (qmax - t.zero_point)))
