"""Passes over the float ONNX graph before quantizing: unique node names, BatchNormalization
folded into the convolution before it."""

from __future__ import annotations

import numpy as np
import onnx
from onnx import numpy_helper


def name_nodes(model: onnx.ModelProto) -> onnx.ModelProto:
    """A copy whose nodes all have unique names (ONNX allows none): unnamed or repeated ones get
    ``<op_type>_<index>``."""
    m = onnx.ModelProto()
    m.CopyFrom(model)
    seen: set[str] = set()
    for k, n in enumerate(m.graph.node):
        if not n.name or n.name in seen:
            base = n.name or n.op_type
            n.name = f"{base}_{k}"
            while n.name in seen:
                n.name += "_"
        seen.add(n.name)
    return m


def fold_batchnorm(model: onnx.ModelProto) -> onnx.ModelProto:
    """Fold each BatchNormalization whose input is a Conv's only consumer (and not a graph output)
    into that Conv: w' = w * gamma / sqrt(var + eps) per output channel,
    b' = (b - mean) * gamma / sqrt(var + eps) + beta.  Any convolution rank."""
    m = name_nodes(model)
    g = m.graph
    inits = {i.name: i for i in g.initializer}
    graph_outputs = {o.name for o in g.output}
    users: dict[str, list] = {}
    for n in g.node:
        for i in n.input:
            users.setdefault(i, []).append(n)
    producer = {o: n for n in g.node for o in n.output}
    remove = []
    for bn in list(g.node):
        if bn.op_type != "BatchNormalization" or len([o for o in bn.output if o]) != 1:
            continue
        conv = producer.get(bn.input[0])
        if conv is None or conv.op_type != "Conv" or len(users.get(bn.input[0], [])) != 1 \
                or bn.input[0] in graph_outputs or conv.input[1] not in inits \
                or any(i not in inits for i in bn.input[1:5]):
            continue
        eps = next((a.f for a in bn.attribute if a.name == "epsilon"), 1e-5)
        gamma, beta, mean, var = (numpy_helper.to_array(inits[i]).astype(np.float64) for i in bn.input[1:5])
        w = numpy_helper.to_array(inits[conv.input[1]]).astype(np.float64)
        b = numpy_helper.to_array(inits[conv.input[2]]).astype(np.float64) if len(conv.input) > 2 and conv.input[2] \
            else np.zeros(w.shape[0])
        k = gamma / np.sqrt(var + eps)
        w_name, b_name = conv.name + "_weight_bnfolded", conv.name + "_bias_bnfolded"  # node names are unique
        g.initializer.append(numpy_helper.from_array((w * k.reshape((-1,) + (1,) * (w.ndim - 1))).astype(np.float32),
                                                     w_name))
        g.initializer.append(numpy_helper.from_array(((b - mean) * k + beta).astype(np.float32), b_name))
        conv.input[1] = w_name
        if len(conv.input) > 2:
            conv.input[2] = b_name
        else:
            conv.input.append(b_name)
        conv.output[0] = bn.output[0]
        remove.append(bn)
    for bn in remove:
        g.node.remove(bn)
    used = {i for n in g.node for i in n.input}
    keep = [i for i in g.initializer if i.name in used]
    del g.initializer[:]
    g.initializer.extend(keep)
    return m
