"""Make an ONNX model static before it is imported: concrete input shapes (a batch among them),
constants as initializers and shape arithmetic folded.

Exporters write weights as ``Constant`` nodes and compute reshape targets at run time from
``Shape`` (PaddleOCR's models do both; a symbolic batch dimension makes ``Reshape(x,
Shape(x)...)`` necessary).  Given the input shapes, every such value is a constant: Constant
nodes become initializers, and a node whose inputs are all constants -- or a ``Shape`` whose
input's shape is known -- is evaluated once (onnx's reference evaluator) and replaced by its
value.  Quantize/Dequantize nodes are never folded (the importer reads them), nor is anything
that produces floats from activations.
"""

from __future__ import annotations

from typing import Mapping, Optional

import numpy as np
import onnx
import onnx.reference
from onnx import helper, numpy_helper

from ..ir import ModelError
from .load import node_label
from .weight_quant import quantize_float_weights

#: ops evaluated when every input is a constant (shape and index arithmetic, and Identity)
FOLDABLE = {"Shape", "Gather", "Slice", "Concat", "Cast", "Unsqueeze", "Squeeze", "Reshape", "Mul", "Add", "Sub",
            "Div", "Floor", "Ceil", "Range", "Equal", "Where", "ConstantOfShape", "Expand", "Identity", "Size",
            "ReduceProd", "Min", "Max", "Neg", "Abs", "Sqrt", "Transpose", "Not", "Less", "Greater", "Tile"}
#: constant results larger than this (elements) stay as they are computed (folding is for small values)
MAX_FOLDED = 1 << 16


def constants_to_initializers(model: onnx.ModelProto) -> onnx.ModelProto:
    """A copy where every Constant node is an initializer of the same name, and every unnamed
    node is named for its op type and index (what errors call it)."""
    m = onnx.ModelProto()
    m.CopyFrom(model)
    keep = []
    for k, n in enumerate(m.graph.node):
        n.name = node_label(n, k)
        if n.op_type != "Constant":
            keep.append(n)
            continue
        try:
            value = onnx.reference.ReferenceEvaluator(_single(n, [], [], model)).run(None, {})[0]
        except Exception as e:  # malformed attributes
            raise ModelError(node_label(n, k), n.op_type, f"cannot read the constant ({type(e).__name__}: {e})") from None
        m.graph.initializer.append(numpy_helper.from_array(np.asarray(value), n.output[0]))
    del m.graph.node[:]
    m.graph.node.extend(keep)
    return m


def _single(n: onnx.NodeProto, inputs: list, values: list, model: onnx.ModelProto) -> onnx.ModelProto:
    """A one-node model of ``n`` over constant inputs (as initializers), for the reference evaluator."""
    inits = [numpy_helper.from_array(np.asarray(v), name) for name, v in zip(inputs, values) if name]
    outs = [helper.make_empty_tensor_value_info(o) for o in n.output if o]
    g = helper.make_graph([n], "fold", [], outs, inits)
    m = helper.make_model(g, opset_imports=list(model.opset_import))
    m.ir_version = model.ir_version
    return m


def set_input_shapes(model: onnx.ModelProto, shapes: Mapping[str, tuple]) -> onnx.ModelProto:
    """A copy whose graph inputs have the given (concrete) shapes; intermediate shapes inferred."""
    m = onnx.ModelProto()
    m.CopyFrom(model)
    for vi in m.graph.input:
        if vi.name in shapes:
            dims = vi.type.tensor_type.shape.dim
            del dims[:]
            for d in shapes[vi.name]:
                dims.add().dim_value = int(d)
    del m.graph.value_info[:]
    try:
        return onnx.shape_inference.infer_shapes(m, data_prop=True)
    except Exception:  # a model onnx cannot infer: the importer computes the shapes it needs itself
        return m


def _known_shapes(model: onnx.ModelProto) -> dict[str, tuple]:
    out = {}
    for vi in list(model.graph.input) + list(model.graph.value_info) + list(model.graph.output):
        t = vi.type.tensor_type
        if t.HasField("shape") and all(d.HasField("dim_value") and d.dim_value > 0 for d in t.shape.dim):
            out[vi.name] = tuple(d.dim_value for d in t.shape.dim)
    return out


def fold_constants(model: onnx.ModelProto) -> onnx.ModelProto:
    """Evaluate shape arithmetic: Shape of a tensor whose shape is known, and any FOLDABLE node
    whose inputs are all constants, become initializers."""
    shapes = _known_shapes(model)
    consts = {i.name: numpy_helper.to_array(i) for i in model.graph.initializer}
    folded: dict[str, np.ndarray] = {}
    keep = []
    for k, n in enumerate(model.graph.node):
        value = None
        if n.op_type == "Shape" and n.input[0] in shapes and not (set(n.output) & _graph_outputs(model)):
            shape = np.array(shapes[n.input[0]], np.int64)
            a = {x.name: helper.get_attribute_value(x) for x in n.attribute}
            value = [shape[a.get("start", 0):a.get("end", len(shape))]]
        elif n.op_type in FOLDABLE and n.input and all((not i) or i in consts for i in n.input) \
                and not (set(n.output) & _graph_outputs(model)):
            try:
                value = onnx.reference.ReferenceEvaluator(_single(n, list(n.input), [consts.get(i) for i in n.input],
                                                                  model)).run(None, {})
            except Exception as e:
                raise ModelError(node_label(n, k), n.op_type, f"cannot evaluate on constant inputs ({e})") from None
            if any(np.asarray(v).size > MAX_FOLDED for v in value):
                value = None
        if value is None:
            keep.append(n)
            continue
        for name, v in zip(n.output, value):
            consts[name] = folded[name] = np.asarray(v)
    if not folded:
        return model
    m = onnx.ModelProto()
    m.CopyFrom(model)
    del m.graph.node[:]
    m.graph.node.extend(keep)
    m.graph.initializer.extend(numpy_helper.from_array(v, name) for name, v in folded.items())
    used = {i for n in keep for i in n.input} | _graph_outputs(m)
    live = [i for i in m.graph.initializer if i.name in used]
    del m.graph.initializer[:]
    m.graph.initializer.extend(live)
    return m


def _graph_outputs(model: onnx.ModelProto) -> set[str]:
    return {o.name for o in model.graph.output}


def drop_identities(model: onnx.ModelProto) -> onnx.ModelProto:
    """A copy without Identity nodes (their readers read the Identity's input), except where the
    Identity writes a graph output."""
    outputs = _graph_outputs(model)
    alias = {n.output[0]: n.input[0] for n in model.graph.node
             if n.op_type == "Identity" and n.output[0] not in outputs}
    if not alias:
        return model

    def source(x: str) -> str:
        while x in alias:
            x = alias[x]
        return x

    m = onnx.ModelProto()
    m.CopyFrom(model)
    keep = [n for n in m.graph.node if not (n.op_type == "Identity" and n.output[0] in alias)]
    for n in keep:
        for k, i in enumerate(n.input):
            n.input[k] = source(i)
    del m.graph.node[:]
    m.graph.node.extend(keep)
    return m


def make_static(model: onnx.ModelProto, input_shapes: Optional[Mapping[str, tuple]] = None) -> onnx.ModelProto:
    """Constants as initializers, Identity nodes dropped, the given input shapes, shape arithmetic
    folded (repeated while folding makes more shapes known), float layer weights quantized where
    ONNX Runtime quantizes them at load time (accelsim.compiler.onnx.weight_quant)."""
    m = integer_clips_to_float(drop_identities(constants_to_initializers(model)))
    for _ in range(8):
        if input_shapes:
            m = set_input_shapes(m, input_shapes)
        before = len(m.graph.node)
        m = fold_constants(m)
        if len(m.graph.node) == before:
            break
    return quantize_float_weights(m)


def declared_shapes(model: onnx.ModelProto) -> dict[str, tuple]:
    """Each graph input's declared dims: an int, or None where the dim is symbolic or unknown."""
    inits = {i.name for i in model.graph.initializer}
    return {vi.name: tuple(d.dim_value if d.HasField("dim_value") and d.dim_value > 0 else None
                           for d in vi.type.tensor_type.shape.dim)
            for vi in model.graph.input if vi.name not in inits}


def resolve_shape(name: str, declared: tuple, given: tuple) -> tuple:
    """The shape an input runs at: ``given`` where the model leaves a dim free.  A batch dim fixed
    at 1 in the file is taken as free (exporters write it so); any other fixed dim must match."""
    if len(given) != len(declared):
        raise ModelError("", "input", f"input {name!r} has shape {tuple(given)}, the model declares "
                                             f"{_show(declared)}")
    for k, (d, g) in enumerate(zip(declared, given)):
        if d is not None and d != g and not (k == 0 and d == 1):
            raise ModelError("", "input", f"input {name!r} has shape {tuple(given)}, the model declares "
                                                 f"{_show(declared)}")
    return tuple(int(g) for g in given)


def default_shape(name: str, declared: tuple, batch: int = 1) -> tuple:
    """The shape an input runs at when none is given: batch ``batch``, every other dim declared."""
    if any(d is None for d in declared[1:]):
        raise ModelError("", "input", f"input {name!r} has free dims {_show(declared)}: give an input "
                                             "(or its shape) to compile for")
    return (batch,) + tuple(declared[1:])


def _show(declared: tuple) -> str:
    return "(" + ", ".join("?" if d is None else str(d) for d in declared) + ")"


def _constant(model: onnx.ModelProto, name: str) -> Optional[np.ndarray]:
    init = next((i for i in model.graph.initializer if i.name == name), None)
    return numpy_helper.to_array(init) if init is not None else None


def integer_clips_to_float(model: onnx.ModelProto) -> onnx.ModelProto:
    """``QuantizeLinear -> Clip (integer constants) -> DequantizeLinear`` as a float Clip before
    the QuantizeLinear, bounds ``s * (lo - z)`` and ``s * (hi - z)``: the same codes (the bounds
    quantize back to ``lo`` and ``hi`` exactly), in the form the layer fusions take (the clamp
    joins the producer's requantization).  accelsim's QAT export writes activations this way so
    that ONNX Runtime keeps its integer kernels."""
    nodes = list(model.graph.node)
    producer = {o: n for n in nodes for o in n.output}
    readers: dict[str, list] = {}
    for n in nodes:
        for i in n.input:
            readers.setdefault(i, []).append(n)
    rewrites = {}
    for n in nodes:
        q = producer.get(n.input[0]) if n.op_type == "Clip" and n.input else None
        if q is None or q.op_type != "QuantizeLinear" or len(readers.get(q.output[0], [])) != 1 or \
                n.output[0] in _graph_outputs(model):
            continue
        s, z = _constant(model, q.input[1]), _constant(model, q.input[2]) if len(q.input) > 2 else np.zeros(())
        bounds = [_constant(model, b) if b else None for b in list(n.input[1:3]) + [""] * (3 - len(n.input))][:2]
        if s is None or z is None or s.size != 1 or any(b is None and name for b, name in zip(bounds, n.input[1:3])):
            continue
        rewrites[n.name or n.output[0]] = (q, n, np.float32(s.reshape(())), int(z.reshape(())), bounds)
    if not rewrites:
        return model
    m = onnx.ModelProto()
    m.CopyFrom(model)
    out = []
    alias = {}
    for n in m.graph.node:
        key = n.name or n.output[0]
        if key in rewrites:
            q, clip, s, z, bounds = rewrites[key]
            alias[clip.output[0]] = q.output[0]
            continue
        out.append(n)
    for q, clip, s, z, bounds in rewrites.values():
        names = []
        for k, b in enumerate(bounds):
            if b is None:
                names.append("")
                continue
            names.append(f"{clip.output[0]}__float_{k}")
            m.graph.initializer.append(numpy_helper.from_array(np.float32(s * np.float32(int(b) - z)), names[-1]))
        qn = next(n for n in out if n.output and n.output[0] == q.output[0])
        fc = helper.make_node("Clip", [qn.input[0], *names], [q.output[0] + "__clipped"], name=(clip.name or "") + "__float")
        qn.input[0] = fc.output[0]
        out.insert(out.index(qn), fc)
    for n in out:
        for k, i in enumerate(n.input):
            n.input[k] = alias.get(i, i)
    del m.graph.node[:]
    m.graph.node.extend(out)
    return m
