"""LiteRT's interpreter in the kernel set of an engine: the reference accelsim's TFLite results
are held to (ai-edge-litert, a test extra).  tflite-micro has no Python interpreter here."""

from __future__ import annotations

from typing import Callable, Mapping

import numpy as np

from .load import TFLiteFile

#: engine -> LiteRT OpResolverType name
KERNEL_SETS = {"litert": "AUTO", "litert-builtin": "BUILTIN_WITHOUT_DEFAULT_DELEGATES", "litert-ref": "BUILTIN_REF"}


def interpreter(model: TFLiteFile, engine: str, preserve: bool = False):
    """A LiteRT interpreter of the model in ``engine``'s kernel set, tensors allocated (every
    intermediate tensor kept readable with ``preserve``).  Raises ImportError without
    ai-edge-litert, ValueError for an engine LiteRT does not run (tflm)."""
    if engine not in KERNEL_SETS:
        raise ValueError(f"engine {engine!r} has no LiteRT kernel set (LiteRT runs {', '.join(KERNEL_SETS)})")
    from ai_edge_litert.interpreter import Interpreter, OpResolverType

    it = Interpreter(model_content=model.raw, experimental_op_resolver_type=getattr(OpResolverType, KERNEL_SETS[engine]),
                     experimental_preserve_all_tensors=preserve)
    it.allocate_tensors()
    return it


def invoke(it, feeds: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """One invocation: inputs by tensor name -> outputs by tensor name (the interpreter keeps its
    variables between calls)."""
    for d in it.get_input_details():
        it.set_tensor(d["index"], np.asarray(feeds[d["name"]], d["dtype"]))
    it.invoke()
    return {d["name"]: it.get_tensor(d["index"]).copy() for d in it.get_output_details()}


def litert_runner(model: TFLiteFile, engine: str) -> Callable[[str, np.ndarray], list[np.ndarray]] | None:
    """LiteRT on a batch, one image per invocation (the file's batch), outputs in the file's
    order; None without ai-edge-litert or for an engine it does not run."""
    try:
        it = interpreter(model, engine)
    except (ImportError, ValueError):
        return None
    names = [d["name"] for d in it.get_output_details()]
    step = max(1, int(it.get_input_details()[0]["shape"][0]))

    def run(name: str, x: np.ndarray) -> list[np.ndarray]:
        parts = [invoke(it, {name: x[i:i + step]}) for i in range(0, len(x), step)]
        return [np.concatenate([p[o] for p in parts]) for o in names]

    return run
