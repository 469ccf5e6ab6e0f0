"""Reshape checks: the chip keeps activations in NHWC order, so a reshape must not change the
element order, except a Flatten of an NCHW tensor (whose reader, a fully connected layer, takes
its weight columns permuted) or a Flatten after an explicit NCHW -> NHWC Transpose."""

from __future__ import annotations

from ..ir import ModelError, QBinary, QConcat, QConv, QCopy, QGraph, QLut, QReshape, node_inputs


def _is_spatial(shape: tuple) -> bool:
    """A 4-D tensor whose NCHW and NHWC orders differ."""
    return len(shape) == 4 and shape[2] * shape[3] > 1 and shape[1] > 1


def _flattened(graph: QGraph) -> dict[str, tuple]:
    """2-D tensors flattened from an NCHW tensor (directly or through more reshapes) -> that
    tensor's shape; a reshape that would reorder NHWC data is refused."""
    flat: dict[str, tuple] = {}
    for node in graph.nodes:
        if not isinstance(node, QReshape):
            continue
        src, dst = graph.tensors[node.input].shape, graph.tensors[node.output].shape
        if len(src) == 4 and len(dst) == 2:
            if _is_spatial(src) and not node.nhwc:
                flat[node.output] = src
        elif node.input in flat and len(dst) == 2:
            flat[node.output] = flat[node.input]
        elif (node.input in flat or _is_spatial(src)) and dst != src and dst != flat.get(node.input) \
                and not node.nhwc:
            raise ModelError(node.name, node.op_type, f"reshaping {src} to {dst} changes the element "
                                                      "order of the chip's NHWC layout")
    return flat


def check_reshapes(graph: QGraph) -> dict[str, tuple]:
    """Check every reader of a reshaped tensor; returns the flattened NCHW tensors (see _flattened)."""
    flat = _flattened(graph)
    views = {name for name, t in graph.tensors.items() if t.rowmajor}
    for node in graph.nodes:
        ins = node_inputs(node)
        if set(ins) & views and not _takes_rowmajor(node, graph):
            raise ModelError(node.name, node.op_type, "reads an NCHW -> NHWC transposed tensor as if it were "
                                                      "NCHW; only reshapes, concatenations, copies and "
                                                      "elementwise ops may")
        if isinstance(node, (QConv, QReshape)):  # a fully connected layer permutes its weight columns
            continue
        for t in ins:
            if t in flat:
                raise ModelError(node.name, node.op_type, f"input {t!r} is a flattened NCHW tensor; the chip keeps "
                                                          "NHWC order, which only a fully connected layer can absorb")
    return flat


def _takes_rowmajor(node, graph: QGraph) -> bool:
    """Ops that read a row-major 4-D tensor correctly: layout moves, and elementwise ops whose
    operands and result share its layout."""
    if isinstance(node, (QReshape, QCopy)):
        return True
    layouts = {graph.tensors[t].rowmajor for t in node_inputs(node) + [node.output]}
    if isinstance(node, (QConcat, QBinary)):
        return layouts == {True}
    return isinstance(node, QLut) and node.table.ndim == 1 and layouts == {True}
