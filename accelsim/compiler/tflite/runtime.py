"""The interpreters accelsim's TFLite results are held to: LiteRT's in the kernel set of an
engine (ai-edge-litert), tflite-micro's for ``tflm`` (the tflite-micro wheel); both test extras."""

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

    kernels = getattr(OpResolverType, KERNEL_SETS[engine])
    it = Interpreter(model_content=model.raw, experimental_op_resolver_type=kernels,
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


class MicroInterpreter:
    """tflite-micro's interpreter of a model, called like ``invoke`` (inputs and outputs by tensor
    name, in the file's order); it keeps its variables between calls."""

    def __init__(self, model: TFLiteFile, arena_bytes: int = 1 << 22) -> None:
        from tflite_micro import runtime

        sg = model.main
        self.inputs = [sg.tensors[i].name for i in sg.inputs]
        self.outputs = [sg.tensors[i].name for i in sg.outputs]
        self._it = runtime.Interpreter.from_bytes(model.raw, arena_size=arena_bytes)

    def __call__(self, feeds: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        for k, name in enumerate(self.inputs):
            self._it.set_input(np.ascontiguousarray(feeds[name]), k)
        self._it.invoke()
        return {name: np.array(self._it.get_output(k)) for k, name in enumerate(self.outputs)}


def session(model: TFLiteFile, engine: str) -> Callable[[Mapping[str, np.ndarray]], dict[str, np.ndarray]]:
    """One invocation of ``engine``'s interpreter: inputs by tensor name -> outputs by name.
    ImportError when its package is not installed."""
    if engine == "tflm":
        return MicroInterpreter(model)
    it = interpreter(model, engine)
    return lambda feeds: invoke(it, feeds)


def litert_runner(model: TFLiteFile, engine: str) -> Callable[[str, np.ndarray], list[np.ndarray]] | None:
    """The engine's interpreter on a batch, one image per invocation (the file's batch), outputs
    in the file's order; None when its package is not installed."""
    try:
        run_one = session(model, engine)
    except (ImportError, ValueError):
        return None
    sg = model.main
    names = [sg.tensors[i].name for i in sg.outputs]
    step = max(1, int(sg.tensors[sg.inputs[0]].shape[0])) if sg.tensors[sg.inputs[0]].shape else 1

    def run(name: str, x: np.ndarray) -> list[np.ndarray]:
        parts = [run_one({name: x[i:i + step]}) for i in range(0, len(x), step)]
        return [np.concatenate([p[o] for p in parts]) for o in names]

    return run
