"""Which lowering turns which IR node type into instructions: ``@lowers(QMaxPool)``."""

from __future__ import annotations

from typing import Callable

from ..ir import ModelError, QReshape

LOWERINGS: dict[type, Callable] = {}


def lowers(*node_types: type) -> Callable[[Callable], Callable]:
    """Register the decorated function as the lowering of ``node_types``."""
    def register(fn: Callable) -> Callable:
        for t in node_types:
            LOWERINGS[t] = fn
        return fn

    return register


def lowering_of(node) -> Callable:
    """The lowering registered for a node's exact type."""
    fn = LOWERINGS.get(type(node))
    if fn is None:
        raise ModelError(node.name, node.op_type, "no lowering for this node yet")
    return fn


@lowers(QReshape)
def alias(node: QReshape, b) -> None:
    """A reshape aliases its input's bytes (accelsim.compiler.passes.layout): no instructions."""
