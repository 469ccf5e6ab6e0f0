"""Import ONNX models quantized by onnxruntime.quantization (QDQ or QOperator) into the QGraph.

Nodes are visited in graph order and each goes to the handler of its op type: one table for
QOperator nodes (and ops that read a quantized tensor directly), one for the float ops of a QDQ
model between DequantizeLinear and QuantizeLinear.  Float ops after the chip's last
DequantizeLinear run on the host.  Anything else is a :class:`ModelError` naming the node, its
op type and the reason.
"""

from __future__ import annotations

from typing import Callable, Mapping, Optional

import onnx

from ..ir import ModelError, QGraph
from . import chains, concat, eltwise, islands, layers, layout, movement, pools, qdq, resize, tables
from .context import ImportContext
from .host import host_input_op, split_host_tail
from .load import check_model
from .prepare import declared_shapes, make_static

Handler = Callable[[ImportContext, onnx.NodeProto], None]

#: ops of a QDQ model, between DequantizeLinear and QuantizeLinear
QDQ_HANDLERS: dict[str, Handler] = {
    "QuantizeLinear": qdq.quantize_linear, "DequantizeLinear": qdq.dequantize_linear,
    "Conv": layers.layer, "Gemm": layers.layer, "MatMul": layers.layer,
    "Add": eltwise.qdq_binary, "Sub": eltwise.binary, "Mul": eltwise.qdq_binary, "Div": eltwise.binary, "Concat": concat.concat,
    "MaxPool": pools.max_pool, "AveragePool": pools.average_pool, "GlobalAveragePool": pools.global_average_pool,
    **{op: chains.unary for op in chains.UNARY_OPS},
    "BatchNormalization": tables.batchnorm,
    "Pad": movement.pad, "Slice": movement.slice_, "Split": movement.split,
    "ReduceMean": islands.reduce_mean, "Resize": resize.resize, "Softmax": islands.softmax, "ConvTranspose": islands.conv_transpose,
    "Flatten": layout.reshape, "Reshape": layout.reshape, "Transpose": layout.reshape, "Shape": layout.shape,
}
#: QOperator ops, which read quantized tensors directly
QOPERATOR_ONLY: dict[str, Handler] = {
    "QLinearConv": layers.qlinear_layer, "QGemm": layers.qlinear_layer, "QLinearMatMul": layers.qlinear_layer,
    "QLinearAdd": eltwise.qlinear_binary, "QLinearMul": eltwise.qlinear_binary, "QLinearConcat": concat.qlinear_concat,
    "QLinearAveragePool": pools.qlinear_average_pool, "QLinearGlobalAveragePool": pools.qlinear_global_average_pool,
    "QLinearLeakyRelu": tables.qlinear_leaky_relu, "QLinearSigmoid": tables.qlinear_sigmoid, "QLinearSoftmax": islands.qlinear_softmax,
}
#: every op that may read a quantized tensor directly (in QOperator models)
QOPERATOR_HANDLERS: dict[str, Handler] = {
    **QOPERATOR_ONLY, "MaxPool": pools.qop_max_pool, "Pad": movement.pad, "Slice": movement.slice_,
    "Split": movement.split, "Concat": concat.qop_concat, "Resize": resize.qop_resize,
    "Flatten": layout.qop_reshape, "Reshape": layout.qop_reshape, "Transpose": layout.qop_reshape,
    "Shape": layout.shape,
}


def _handler(ctx: ImportContext, n: onnx.NodeProto) -> Handler:
    reads_quantized = n.op_type != "DequantizeLinear" and bool(n.input) and n.input[0] in ctx.graph.tensors
    table = QOPERATOR_HANDLERS if n.op_type in QOPERATOR_ONLY or reads_quantized else QDQ_HANDLERS
    handler = table.get(n.op_type)
    if handler is None:
        raise ModelError(n.name, n.op_type, "unsupported op (runs on neither the chip nor the host yet)")
    return handler


def _import_nodes(ctx: ImportContext) -> None:
    for n in ctx.model.graph.node:
        if id(n) in ctx.consumed or host_input_op(ctx, n):
            continue
        _handler(ctx, n)(ctx, n)


def import_model(model: onnx.ModelProto, input_shapes: Optional[Mapping[str, tuple]] = None) -> QGraph:
    """The quantized graph of a QDQ or QOperator model, for the given (concrete) input shapes:
    by default the declared ones, a free dim taken as 1."""
    check_model(model)
    graph_outputs = [o.name for o in model.graph.output]
    declared = declared_shapes(model)
    model = make_static(model, input_shapes)
    model, tail = split_host_tail(model)
    ctx = ImportContext(model)
    ctx.declared = declared
    ctx.graph.opset = next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), 17)
    _import_nodes(ctx)
    g = ctx.graph
    g.host_nodes = tail
    g.graph_outputs = graph_outputs
    host_inputs = {i for n in tail for i in n.input}
    g.host_initializers = [i for i in model.graph.initializer if i.name in host_inputs]
    g.source_format = "QOperator" if {n.op_type for n in model.graph.node} & set(QOPERATOR_ONLY) else "QDQ"
    g.input_shapes = {name: ctx.shapes[name] for name in declared if name in ctx.shapes}
    if not g.inputs:
        raise ModelError("", "QuantizeLinear", "no graph input is quantized by a QuantizeLinear")
    if not g.outputs:
        raise ModelError("", "DequantizeLinear", "no graph output comes from a DequantizeLinear")
    return g
