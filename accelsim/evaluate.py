"""``accelsim eval``: a data set through the chip in batches, with top-1 accuracy (given labels),
agreement with ONNX Runtime (when installed) and the chip's cost per image."""

from __future__ import annotations

import os
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from typing import Callable, Optional

import numpy as np
import onnx

from .compiler import ModelCompiler, ModelError


@dataclass
class EvalResult:
    """What ``accelsim eval`` prints and writes (the JSON holds exactly these fields)."""

    n: int
    top1: Optional[float]                 # fraction of images whose arg-max is the label (None: no labels)
    ort_equal_fraction: Optional[float]   # fraction of output elements equal to ONNX Runtime's (None: no ORT)
    ort_top1_agreement: Optional[float]   # fraction of images with ONNX Runtime's arg-max (None: no ORT)
    cycles_per_image: float
    energy_pj_per_image: float
    dram_bytes_per_image: float
    images_per_s_chip: float              # images / simulated time at the chip's clock
    batch: int = 1
    output: str = ""                      # the output the arg-max is taken of
    extra: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        d = asdict(self)
        d.update(d.pop("extra"))
        return d


def load_data(path: str, labels: Optional[str] = None, input_name: Optional[str] = None
              ) -> tuple[np.ndarray, Optional[np.ndarray]]:
    """Samples from a .npy array, or an .npz archive (the input's name, ``x`` or its only array;
    labels from ``y`` or ``labels`` in it); labels from a separate .npy override."""
    try:
        data = np.load(path, allow_pickle=False)
    except (OSError, ValueError, EOFError) as e:
        raise ValueError(f"{path}: cannot read a .npy or .npz array ({e})") from None
    y = None
    if isinstance(data, np.lib.npyio.NpzFile):
        keys = list(data.files)
        key = next((k for k in (input_name, "x", "X", "images", "data") if k and k in keys), None)
        key = key or (keys[0] if len(keys) == 1 else None)
        if key is None:
            raise ValueError(f"{path}: holds {', '.join(keys)}; name the samples x (or the model's input name)")
        x = data[key]
        ykey = next((k for k in ("y", "Y", "labels", "label") if k in keys), None)
        y = data[ykey] if ykey else None
    else:
        x = data
    if labels:
        try:
            y = np.load(labels, allow_pickle=False)
        except (OSError, ValueError, EOFError) as e:
            raise ValueError(f"{labels}: cannot read a .npy array ({e})") from None
    if y is not None:
        y = np.asarray(y).reshape(-1)
        if y.dtype.kind not in "iu" or y.size != len(x):
            raise ValueError(f"labels: {y.size} {y.dtype} values for {len(x)} samples (expected one integer class each)")
    return x, y


def _ort_runner(model: onnx.ModelProto, name: str, fixed_one: bool) -> Optional[Callable[[np.ndarray], list]]:
    """ONNX Runtime on a batch (image by image when the file fixes the batch at 1), or None."""
    try:
        from .compiler.onnx.runtime import session
        sess = session(model)
    except ImportError:
        return None

    def run(x: np.ndarray) -> list[np.ndarray]:
        if not fixed_one:
            return sess.run(None, {name: x})
        parts = [sess.run(None, {name: x[i:i + 1]}) for i in range(len(x))]
        return [np.concatenate(p) for p in zip(*parts)]

    return run


def _top1(out: np.ndarray) -> np.ndarray:
    """Arg-max per image over everything but the batch axis."""
    return out.reshape(len(out), -1).argmax(axis=1)


def chip_batches(compiler: ModelCompiler, name: str, x: np.ndarray, batch: int, workers: int):
    """(start, outputs, report) of each batch in order; ``workers`` threads simulate batches at
    once (the simulator's loops release the GIL), each with its own Simulator."""
    from .chip import Simulator

    starts = list(range(0, len(x), batch))
    compiled = {}
    for start in starts:  # compile in this thread, once per batch size
        b = len(x[start:start + batch])
        if b not in compiled:
            compiled[b] = compiler.compile({name: (b,) + x.shape[1:]})
    local = compiler.__dict__.setdefault("_thread_simulators", threading.local())  # one Simulator per thread

    def one(start: int):
        sim = getattr(local, "sim", None)
        if sim is None:
            sim = local.sim = Simulator(compiler.chip)
        xb = x[start:start + batch]
        outputs, rep = compiled[len(xb)].run({name: xb}, sim=sim)
        return start, outputs, rep

    if workers <= 1 or len(starts) == 1:
        yield from map(one, starts)
        return
    yield from _pool(compiler, workers).map(one, starts)


def _pool(compiler: ModelCompiler, workers: int) -> ThreadPoolExecutor:
    """The compiler's pool of ``workers`` threads, kept: later evaluations reuse its threads and
    so their Simulators (a new Simulator's DRAM costs page faults on its first run)."""
    pools = compiler.__dict__.setdefault("_eval_pools", {})
    if workers not in pools:
        pools[workers] = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="accelsim-eval")
    return pools[workers]


def reference_runner(compiler) -> tuple[str, Optional[Callable[[np.ndarray], list]]]:
    """The engine a compiled model is held to and a runner of it on a batch (None when it is not
    installed): ONNX Runtime for an ONNX model, LiteRT in the engine's kernel set for TFLite."""
    name, dims = next(iter(compiler.declared.items()))
    if hasattr(compiler, "engine"):  # a TFLite model
        from .compiler.tflite.runtime import litert_runner

        run = litert_runner(compiler.model, compiler.engine)
        return compiler.engine, (None if run is None else (lambda x: run(name, x)))
    ort = _ort_runner(compiler.model, name, dims[0] == 1)
    return "ORT", (None if ort is None else (lambda x: ort(np.asarray(x, np.float32))))


def output_names(compiler) -> list[str]:
    """The model's outputs, in the file's order."""
    if hasattr(compiler, "engine"):
        sg = compiler.model.main
        return [sg.tensors[i].name for i in sg.outputs]
    return [o.name for o in compiler.model.graph.output]


def evaluate(model, x: np.ndarray, labels: Optional[np.ndarray] = None, *, batch: int = 32,
             chip=None, weights: str = "auto", compare: bool = True, progress: bool = False,
             workers: Optional[int] = None) -> EvalResult:
    """Run ``x`` (N samples) through the chip ``batch`` at a time, ``workers`` batches at once
    (threads; default: one per core).  ``model``: an ONNX model, or a compiler (ModelCompiler,
    or accelsim.compiler.tflite.TFLiteCompiler for a TFLite model and its engine); outputs are
    compared with that model's reference engine."""
    if batch < 1:
        raise ValueError(f"batch {batch}: must be at least 1")
    workers = workers or os.cpu_count() or 1
    compiler = ModelCompiler(model, chip, weights) if isinstance(model, onnx.ModelProto) else model
    if len(compiler.declared) != 1:
        raise ModelError("", "", f"eval takes models with one input; this one has {', '.join(compiler.declared)}")
    name, dims = next(iter(compiler.declared.items()))
    out_name = output_names(compiler)[0]
    reference, ort = reference_runner(compiler) if compare else ("", None)
    x = np.asarray(x)
    if x.ndim != len(dims):
        raise ModelError("", "input", f"data of shape {x.shape}: the input {name!r} has rank {len(dims)}")
    n = len(x)
    cycles = energy = dram = 0.0
    time_us = 0.0
    correct = agree = equal = elements = 0
    from tqdm import tqdm

    bar = tqdm(total=n, desc="eval", unit="img", disable=not progress, leave=False)
    for start, outputs, rep in chip_batches(compiler, name, x, batch, workers):
        xb = x[start:start + batch]
        cycles += rep.cycles
        time_us += rep.time_us
        energy += sum(rep.energy_pj.values())
        dram += sum(rep.dram_read_bytes.values()) + sum(rep.dram_write_bytes.values())
        pred = _top1(outputs[out_name])
        if labels is not None:
            correct += int((pred == labels[start:start + batch]).sum())
        if ort is not None:
            ref = ort(xb)
            for o, r in zip(outputs.values(), ref):
                equal += int((o == r).sum())
                elements += o.size
            agree += int((pred == _top1(ref[0])).sum())
        bar.update(len(xb))
    bar.close()
    return EvalResult(
        n=n, top1=correct / n if labels is not None else None,
        ort_equal_fraction=equal / elements if ort is not None else None,
        ort_top1_agreement=agree / n if ort is not None else None,
        cycles_per_image=cycles / n, energy_pj_per_image=energy / n, dram_bytes_per_image=dram / n,
        images_per_s_chip=n / (time_us * 1e-6) if time_us else 0.0, batch=batch, output=out_name,
        extra=dict(workers=workers, reference=reference))


def format_result(r: EvalResult) -> str:
    """The lines ``accelsim eval`` prints."""
    def pct(v: Optional[float]) -> str:
        return "n/a" if v is None else f"{100 * v:.2f}%"

    ref = r.extra.get("reference") or "ORT"
    return "\n".join([
        f"images              {r.n} (batch {r.batch})",
        f"top-1 accuracy      {pct(r.top1)}" + ("" if r.top1 is not None else " (no labels)"),
        f"equal to {ref}".ljust(19) + f" {pct(r.ort_equal_fraction)} of output elements",
        f"top-1 same as {ref}".ljust(19) + f" {pct(r.ort_top1_agreement)} of images",
        f"cycles / image      {r.cycles_per_image:,.0f}",
        f"energy / image      {r.energy_pj_per_image / 1e6:,.3f} uJ",
        f"DRAM bytes / image  {r.dram_bytes_per_image:,.0f}",
        f"images / s (chip)   {r.images_per_s_chip:,.1f}",
    ])
