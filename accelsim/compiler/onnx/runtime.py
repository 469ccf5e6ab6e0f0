"""ONNX Runtime as the reference engine for quantized models.

ONNX Runtime's default u8 x s8 kernels on x86 CPUs without AVX512-VNNI (SSE4.1, AVX2, AVX-512
without VNNI) multiply with ``vpmaddubsw``, whose int16 sums of two products saturate: with
full-range int8 weights its QLinearConv / QLinearMatMul (and the QDQ groups it fuses into them)
are not exact integer arithmetic.  Its session option ``session.x64quantprecision = 1``
(``kOrtSessionOptionsAvx2PrecisionMode``) switches those CPUs to exact u8 x u8 kernels; with VNNI
(``vpdpbusd``) the default kernels are exact and the option changes nothing.  accelsim's claims
of bit-exactness with ONNX Runtime are claims against sessions made here, with that option on.

Measured with ONNX Runtime 1.32 on an AVX2 CPU: the option reaches the QLinearConv kernel, the
QDQ groups ORT fuses (at opset 13 and 21 alike) and QLinearMatMul up to opset 20, but not the
QLinearMatMul-21 kernel, which stays on the saturating u8 x s8 path (tests build that node at
opset 20; accelsim's own PTQ writes opset 13, or 21 only for 4- and 16-bit types).

ONNX Runtime cannot load QOperator graphs with int8 activations (QLinearConv s8 x s8) in that
mode: its rewrite to u8 x u8 leaves them without a kernel.  Their default s8 x s8 kernels sum
sign-extended int16 products in int32 (exact), so such a model gets a default session.

QDQ models with int8 activations: on x86 ONNX Runtime fuses their DQ -> op -> Q groups into
integer kernels only where the option ``session.qdqisint8allowed`` is 1 (the default on ARM).
Without it, a group whose DequantizeLinear feeds two nodes (every residual block's input), and
the groups around it, stay DQ -> float32 op -> Q: BlazeFace quantized by quantize_static keeps 21
of its 37 convolutions and all 16 Adds in float, whose float32 sums round differently from the
exact integer result on about 1 in 10^5 outputs.  The reference session sets the option, so
every such group runs on ORT's integer kernels (s8 x s8, exact), as it does on ARM.
"""

from __future__ import annotations

import functools
from typing import Union

import numpy as np
import onnx

PRECISION_OPTION = "session.x64quantprecision"
INT8_QDQ_OPTION = "session.qdqisint8allowed"


def session(model: Union[onnx.ModelProto, bytes, str], *, threads: int = 1, exact: bool = True,
            optimize: bool = True):
    """An ONNX Runtime CPU session of ``model`` (a ModelProto, its bytes or a path).

    ``exact``: exact integer kernels on every x86 CPU (see above); False gives ORT's default
    (fastest) kernels.  ``optimize=False`` disables graph optimizations (QDQ groups then run as
    DequantizeLinear -> float op -> QuantizeLinear).  ``threads`` is ORT's intra-op thread count.
    """
    import onnxruntime as ort

    if exact:
        try:
            return _session(ort, model, threads, True, optimize)
        except ort.capi.onnxruntime_pybind11_state.NotImplemented:
            pass  # int8-activation QOperator nodes: no kernel in precision mode (see above)
    return _session(ort, model, threads, False, optimize)


def _session(ort, model, threads: int, exact: bool, optimize: bool):
    so = ort.SessionOptions()
    so.log_severity_level = 3
    so.intra_op_num_threads = threads
    so.inter_op_num_threads = 1
    so.add_session_config_entry(INT8_QDQ_OPTION, "1")
    if exact:
        so.add_session_config_entry(PRECISION_OPTION, "1")
    if not optimize:
        so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    src = model.SerializeToString() if isinstance(model, onnx.ModelProto) else model
    return ort.InferenceSession(src, so, providers=["CPUExecutionProvider"])


def _u8s8_probe() -> onnx.ModelProto:
    """One QLinearMatMul whose exact result needs two products of 255 * 127 summed past int16."""
    from onnx import TensorProto, helper, numpy_helper

    inits = [numpy_helper.from_array(np.float32(1), "s"), numpy_helper.from_array(np.uint8(0), "za"),
             numpy_helper.from_array(np.full((4, 1), 127, np.int8), "b"), numpy_helper.from_array(np.int8(0), "zb"),
             numpy_helper.from_array(np.float32(1024), "sy"), numpy_helper.from_array(np.uint8(0), "zy")]
    node = helper.make_node("QLinearMatMul", ["a", "s", "za", "b", "s", "zb", "sy", "zy"], ["y"])
    g = helper.make_graph([node], "probe", [helper.make_tensor_value_info("a", TensorProto.UINT8, [1, 4])],
                          [helper.make_tensor_value_info("y", TensorProto.UINT8, [1, 1])], inits)
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 13)])
    m.ir_version = 8
    return m


@functools.lru_cache(maxsize=None)
def default_u8s8_is_exact() -> bool:
    """Whether ONNX Runtime's default u8 x s8 kernels are exact on this CPU (a single-op probe:
    4 x 255 x 127 = 129540, 126.504 units of 1024, which saturating pair sums cannot reach)."""
    y = session(_u8s8_probe(), exact=False).run(None, {"a": np.full((1, 4), 255, np.uint8)})[0]
    return int(y[0, 0]) == 127  # round(129540 / 1024) = 127; saturated pairs give 2 * 32767 / 1024 -> 64
