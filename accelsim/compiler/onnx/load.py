"""Reading and checking an ONNX model before anything is imported: each refusal is one
:class:`ModelError` line naming the node (its name, or its op type and index) and the reason."""

from __future__ import annotations

from pathlib import Path

import onnx
from google.protobuf.message import DecodeError

from ..ir import ModelError

#: the default-domain opsets the importer takes (QuantizeLinear needs 10; older models are
#: converted with onnx.version_converter, as ``accelsim quantize`` does itself)
MIN_OPSET = 10
MAX_OPSET = onnx.defs.onnx_opset_version()


def node_label(n: onnx.NodeProto, index: int) -> str:
    """A node's name, or its op type and index in the graph when it has none."""
    return n.name or f"{n.op_type}#{index}"


def _first_line(e: Exception) -> str:
    text = str(e).strip().splitlines()
    return text[0][:300] if text else type(e).__name__


def check_opset(model: onnx.ModelProto) -> None:
    """The default domain's opset must be one the importer takes."""
    versions = [o.version for o in model.opset_import if o.domain in ("", "ai.onnx")]
    if not versions:
        raise ModelError("", "", "the model imports no opset of the default ONNX domain")
    v = versions[0]
    if not MIN_OPSET <= v <= MAX_OPSET:
        raise ModelError("", "", f"opset {v}: the importer takes opsets {MIN_OPSET} to {MAX_OPSET} "
                         "(convert the model with onnx.version_converter)")


def _producers(g: onnx.GraphProto) -> dict[str, int]:
    return {o: k for k, n in enumerate(g.node) for o in n.output if o}


def _find_cycle(g: onnx.GraphProto, producer: dict[str, int]) -> list[int]:
    """Node indices on a cycle (empty if the graph has none): Kahn's sort, then a walk back
    through the nodes it could not place, which must repeat."""
    preds = [{producer[i] for i in n.input if i in producer} for n in g.node]
    succs: list[list[int]] = [[] for _ in g.node]
    for k, ps in enumerate(preds):
        for p in ps:
            succs[p].append(k)
    indeg = [len(ps) for ps in preds]
    ready = [k for k, d in enumerate(indeg) if d == 0]
    while ready:
        for s in succs[ready.pop()]:
            indeg[s] -= 1
            if indeg[s] == 0:
                ready.append(s)
    left = {k for k, d in enumerate(indeg) if d > 0}
    if not left:
        return []
    walk, k = [], min(left)
    while k not in walk:
        walk.append(k)
        k = min(p for p in preds[k] if p in left)
    return walk[walk.index(k):][::-1]


def check_graph(model: onnx.ModelProto) -> None:
    """Every node input exists (a graph input, an initializer or a node's output) and the
    graph has no cycle."""
    g = model.graph
    known = {i.name for i in g.input} | {i.name for i in g.initializer} | {""}
    producer = _producers(g)
    for k, n in enumerate(g.node):
        for i in n.input:
            if i not in known and i not in producer:
                raise ModelError(node_label(n, k), n.op_type, f"input {i!r} is no graph input, initializer or "
                                 "node output (a missing initializer?)")
    cycle = _find_cycle(g, producer)
    if cycle:
        n = g.node[cycle[0]]
        names = " -> ".join(node_label(g.node[c], c) for c in cycle + cycle[:1])
        raise ModelError(node_label(n, cycle[0]), n.op_type, f"the graph has a cycle: {names}")
    for o in g.output:
        if o.name not in known and o.name not in producer:
            raise ModelError("", "", f"graph output {o.name!r} is produced by no node")


def check_types(model: onnx.ModelProto) -> None:
    """onnx's shape and type inference in strict mode: a shape or element-type mismatch names
    the node."""
    try:
        onnx.shape_inference.infer_shapes(model, check_type=True, strict_mode=True)
    except onnx.shape_inference.InferenceError as e:
        raise ModelError("", "", f"shape or type mismatch: {_first_line(e)}") from None


def check_model(model: onnx.ModelProto) -> None:
    """All the checks, cheapest first, ending with onnx's own checker."""
    check_opset(model)
    check_graph(model)
    check_types(model)
    try:
        onnx.checker.check_model(model)
    except onnx.checker.ValidationError as e:
        raise ModelError("", "", f"not a valid ONNX model: {_first_line(e)}") from None


def load_model(path: str | Path) -> onnx.ModelProto:
    """Read an ONNX file and check it; a missing, truncated or non-ONNX file is one line."""
    try:
        model = onnx.load(str(path))
    except FileNotFoundError:
        raise ModelError("", "", "no such file") from None
    except IsADirectoryError:
        raise ModelError("", "", "a directory, not an ONNX file") from None
    except (DecodeError, RuntimeWarning, ValueError, OSError) as e:
        raise ModelError("", "", f"not an ONNX file (truncated or another format: {_first_line(e)})") from None
    if not model.graph.node:
        raise ModelError("", "", "not an ONNX file (no graph nodes: truncated or another format)")
    check_model(model)
    return model
