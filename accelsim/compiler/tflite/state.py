"""Resource variables (streaming state): VAR_HANDLE, READ_VARIABLE, ASSIGN_VARIABLE and the
CALL_ONCE that initialises them.

Each variable becomes a state input (what READ_VARIABLE returns) and a state output (what
ASSIGN_VARIABLE stores): one run of the chip is one invocation of the interpreter, and a stream
of invocations feeds each run's state outputs to the next run's state inputs
(accelsim.compiler.tflite.model.run_stream), starting from the constants the CALL_ONCE
subgraph assigns.  State inputs are named ``state:SHARED_NAME``, their outputs
``state:SHARED_NAME:next``; both hold codes in the file's layout.
"""

from __future__ import annotations

import numpy as np

from ..ir import ModelError
from .context import TFLiteContext
from .load import TFLiteFile, TOp, TSubgraph


def _shared_name(op: TOp) -> str:
    o = op.options
    name = (o.SharedName() or b"").decode() if o is not None else ""
    container = (o.Container() or b"").decode() if o is not None else ""
    return f"{container}/{name}" if container else name or f"var{op.index}"


def _initial_values(ctx: TFLiteContext, model: TFLiteFile, sg: TSubgraph) -> dict[str, np.ndarray]:
    """What a CALL_ONCE subgraph assigns: shared name -> constant."""
    handles, values = {}, {}
    for op in sg.ops:
        if op.op == "VAR_HANDLE":
            handles[op.outputs[0]] = _shared_name(op)
        elif op.op == "ASSIGN_VARIABLE":
            t = sg.tensors[op.inputs[1]]
            if op.inputs[0] not in handles or t.data is None:
                raise ctx.fail(op, "the initialising subgraph assigns a value that is not a constant")
            values[handles[op.inputs[0]]] = t.data
        elif op.op != "CALL_ONCE":
            raise ctx.fail(op, f"the initialising subgraph runs {op.op}; only VAR_HANDLE and ASSIGN_VARIABLE")
    return values


def prepare(ctx: TFLiteContext, model: TFLiteFile) -> None:
    """Find the variables (their handles and initial values); CALL_ONCE and VAR_HANDLE are done
    here, READ_VARIABLE and ASSIGN_VARIABLE where they come in the graph."""
    for op in model.main.ops:
        if op.op == "CALL_ONCE":
            k = op.options.InitSubgraphIndex() if op.options is not None else -1
            if not 0 < k < len(model.subgraphs):
                raise ctx.fail(op, f"init subgraph {k} does not exist")
            ctx.initial.update(_initial_values(ctx, model, model.subgraphs[k]))
            ctx.consumed.add(op.index)
        elif op.op == "VAR_HANDLE":
            ctx.handles[op.outputs[0]] = _shared_name(op)
            ctx.consumed.add(op.index)


def _variable(ctx: TFLiteContext, op: TOp) -> str:
    name = ctx.handles.get(op.inputs[0])
    if name is None:
        raise ctx.fail(op, "reads a resource no VAR_HANDLE made")
    return name


def read_variable(ctx: TFLiteContext, op: TOp) -> None:
    """The variable's value becomes a state input, starting from its CALL_ONCE constant."""
    name = _variable(ctx, op)
    if name not in ctx.initial:
        raise ctx.fail(op, f"variable {name!r} is read but no CALL_ONCE initialises it")
    q = ctx.out(op)
    key = f"state:{name}"
    if key in ctx.graph.inputs:
        raise ctx.fail(op, f"variable {name!r} is read twice (one read per invocation is supported)")
    init = np.asarray(ctx.initial[name], np.int64)
    shape = (init.shape[0] * ctx.batch,) + tuple(init.shape[1:]) if init.ndim else (1,)
    if int(np.prod(shape)) != int(np.prod(q.shape)):
        raise ctx.fail(op, f"variable {name!r} starts as {init.shape}, is read as {ctx.tensor(op.outputs[0]).shape}")
    g = ctx.graph
    g.inputs[key] = q.name
    g.code_io.add(key)
    g.input_shapes[key] = shape
    g.states[key] = (f"{key}:next", np.concatenate([init.reshape(-1)] * ctx.batch).reshape(shape))


def assign_variable(ctx: TFLiteContext, op: TOp) -> None:
    """The value stored becomes the state output of the variable."""
    name = _variable(ctx, op)
    key = f"state:{name}"
    if key not in ctx.graph.states:
        raise ctx.fail(op, f"variable {name!r} is assigned before it is read (or never read)")
    value = ctx.q(op, 1)
    g = ctx.graph
    out = g.states[key][0]
    if out in g.outputs:
        raise ctx.fail(op, f"variable {name!r} is assigned twice")
    if int(np.prod(value.shape)) != int(np.prod(g.input_shapes[key])):
        raise ctx.fail(op, f"variable {name!r} is assigned a value of another size")
    g.outputs[out] = value.name
    g.code_io.add(out)
    g.output_shapes[out] = g.input_shapes[key]


def finish(ctx: TFLiteContext) -> None:
    """Every state output among the graph's outputs (after the file's own)."""
    g = ctx.graph
    for key, (out, _) in g.states.items():
        if out not in g.outputs:
            raise ModelError("", "READ_VARIABLE", f"variable {key[6:]!r} is read but never assigned")
        g.graph_outputs.append(out)


HANDLERS = {"READ_VARIABLE": read_variable, "ASSIGN_VARIABLE": assign_variable}
