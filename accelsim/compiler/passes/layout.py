"""DRAM layout of the activations: each tensor's storage type and byte address.

Every activation lives in DRAM in NHWC order at its storage type; a reshape aliases its input's
bytes.  Constants (weights, parameter tables) are placed after the activations while lowering.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from isa.table import DTYPES

from ..ir import QConcat, QConv, QGraph, QReshape

ALIGN = 64


def align(x: int) -> int:
    """The next multiple of ALIGN bytes."""
    return (x + ALIGN - 1) // ALIGN * ALIGN


def _odd_slices(graph: QGraph) -> set[str]:
    """Tensors written in channel slices that would not start on a byte at 4 bits: a concat with
    an odd input, a grouped conv with an odd number of channels per group."""
    odd = set()
    for node in graph.nodes:
        if isinstance(node, QConcat) and any(graph.tensors[t].shape[1] % 2 for t in node.inputs):
            odd.add(node.output)
        if isinstance(node, QConv) and node.group > 1 and (node.weight.shape[0] // node.group) % 2:
            odd.add(node.output)
    return odd


def storage_types(graph: QGraph) -> dict[str, str]:
    """Each tensor's element type in DRAM: its own, except a 4-bit tensor whose NHWC rows (or a
    concat's or grouped conv's channel slices) would not start and end on a byte, which is stored
    in 8 bits (same signedness); the MAC array still reads 4-bit operands."""
    odd = _odd_slices(graph)
    mem = {}
    for name, t in graph.tensors.items():
        bits = DTYPES[t.dtype][0]
        odd_rows = len(t.shape) > 1 and t.shape[1] % 2
        mem[name] = t.dtype[0] + "8" if bits == 4 and (odd_rows or name in odd) else t.dtype
    for node in graph.nodes:  # a reshape aliases its input's bytes
        if isinstance(node, QReshape):
            mem[node.output] = mem[node.input]
    return mem


@dataclass
class DramLayout:
    """Where every activation lives: byte address and storage type; ``top`` is the first byte after them."""

    region: dict[str, int]
    storage: dict[str, str]
    top: int


def plan_dram(graph: QGraph) -> DramLayout:
    """Each tensor in turn at the next aligned address, then every reshape output on its input."""
    mem = storage_types(graph)
    region: dict[str, int] = {}
    at = 0
    for name, t in graph.tensors.items():
        region[name] = at
        at = align(at + (int(np.prod(t.shape)) * DTYPES[mem[name]][0] + 7) // 8)
    for node in graph.nodes:  # aliases resolved after their sources are placed
        if isinstance(node, QReshape):
            region[node.output] = region[node.input]
    return DramLayout(region, mem, at)
