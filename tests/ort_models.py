"""One-node ONNX models run by ONNX Runtime, the reference engine of the tests."""

from __future__ import annotations

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from accelsim.compiler.onnx import runtime

ORT_IR_VERSION = 10  # onnx 1.23 writes IR 14 by default, which onnxruntime 1.31 refuses

NP_TO_ONNX = {np.dtype(np.uint8): TensorProto.UINT8, np.dtype(np.int8): TensorProto.INT8,
              np.dtype(np.uint16): TensorProto.UINT16, np.dtype(np.int16): TensorProto.INT16,
              np.dtype(np.float32): TensorProto.FLOAT, np.dtype(np.int32): TensorProto.INT32}


def session(model: onnx.ModelProto, **options):
    """The reference engine: ONNX Runtime with exact integer kernels on every x86 CPU
    (accelsim.compiler.onnx.runtime)."""
    model.ir_version = ORT_IR_VERSION
    onnx.checker.check_model(model)
    return runtime.session(model, **options)


def qlinear_matmul(a: np.ndarray, a_scale: float, a_zp: int, b: np.ndarray, b_scale: np.ndarray,
                   b_zp: np.ndarray, y_scale: float, y_zp: int, y_dtype: np.dtype, exact: bool = True) -> np.ndarray:
    """Run one QLinearMatMul node (a: M x K, b: K x N initializer) in ONNX Runtime (its exact
    reference session, or with ``exact=False`` its default kernels)."""
    inits = [
        numpy_helper.from_array(np.float32(a_scale), "a_scale"),
        numpy_helper.from_array(np.array(a_zp, dtype=a.dtype), "a_zp"),
        numpy_helper.from_array(b, "b"),
        numpy_helper.from_array(np.asarray(b_scale, dtype=np.float32), "b_scale"),
        numpy_helper.from_array(np.asarray(b_zp, dtype=b.dtype), "b_zp"),
        numpy_helper.from_array(np.float32(y_scale), "y_scale"),
        numpy_helper.from_array(np.array(y_zp, dtype=y_dtype), "y_zp"),
    ]
    node = helper.make_node("QLinearMatMul", ["a", "a_scale", "a_zp", "b", "b_scale", "b_zp",
                                              "y_scale", "y_zp"], ["y"])
    graph = helper.make_graph(
        [node], "qlinear_matmul",
        [helper.make_tensor_value_info("a", NP_TO_ONNX[a.dtype], list(a.shape))],
        [helper.make_tensor_value_info("y", NP_TO_ONNX[np.dtype(y_dtype)], [a.shape[0], b.shape[1]])],
        inits)
    # opset 20: ORT 1.32's QLinearMatMul-21 kernel ignores session.x64quantprecision (its exact mode)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 20)])
    return session(model, exact=exact).run(None, {"a": a})[0]
