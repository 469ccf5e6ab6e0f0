"""Write TFLite flatbuffers for tests through the ``tflite`` schema package's builders.

A model is a list of tensors (shape, type, quantization, optional constant data) and operators
(builtin code, inputs, outputs, options); ``Model.build()`` gives the file's bytes, which LiteRT's
interpreter and accelsim's importer both read.  Layer helpers (``conv``, ``depthwise``,
``fully_connected``, ...) draw random per-channel weights and biases in TFLite's conventions:
int8 symmetric weights (zero point 0), int32 biases in units of s_in * s_w[c], NHWC activations,
OHWI convolution weights, 1HW(C*multiplier) depthwise weights.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Optional, Sequence

import flatbuffers
import numpy as np
import tflite
from tflite.ActivationFunctionType import ActivationFunctionType as Act
from tflite.BuiltinOperator import BuiltinOperator as Op
from tflite.BuiltinOptions import BuiltinOptions as Opt
from tflite.Padding import Padding
from tflite.TensorType import TensorType

TYPES = {"int8": TensorType.INT8, "uint8": TensorType.UINT8, "int32": TensorType.INT32,
         "float32": TensorType.FLOAT32, "int16": TensorType.INT16, "int64": TensorType.INT64}
ACTS = {None: Act.NONE, "relu": Act.RELU, "relu6": Act.RELU6, "relu_n1_to_1": Act.RELU_N1_TO_1}


@dataclass
class Tensor:
    name: str
    shape: tuple
    dtype: str
    scale: Optional[np.ndarray] = None
    zero_point: Optional[np.ndarray] = None
    axis: int = 0
    data: Optional[np.ndarray] = None


@dataclass
class Operator:
    code: int
    inputs: list
    outputs: list
    options_type: int = 0
    options: Optional[Callable] = None  # builder -> offset of the options table


def _vector(b: flatbuffers.Builder, start: Callable, values: Sequence, prepend: Callable) -> int:
    start(b, len(values))
    for v in reversed(list(values)):
        prepend(v)
    return b.EndVector()


@dataclass
class Model:
    tensors: list = field(default_factory=list)
    operators: list = field(default_factory=list)
    inputs: list = field(default_factory=list)
    outputs: list = field(default_factory=list)

    def tensor(self, name: str, shape, dtype: str, scale=None, zero_point=None, axis: int = 0,
               data: Optional[np.ndarray] = None) -> int:
        if scale is not None:
            scale = np.atleast_1d(np.asarray(scale, np.float32))
            zero_point = np.atleast_1d(np.asarray(0 if zero_point is None else zero_point, np.int64))
            if zero_point.size == 1 and scale.size > 1:
                zero_point = np.zeros(scale.size, np.int64) + zero_point
        self.tensors.append(Tensor(name, tuple(int(d) for d in shape), dtype, scale, zero_point, axis, data))
        return len(self.tensors) - 1

    def op(self, code: int, inputs: list, outputs: list, options_type: int = 0,
           options: Optional[Callable] = None) -> None:
        self.operators.append(Operator(code, list(inputs), list(outputs), options_type, options))

    def build(self) -> bytes:
        b = flatbuffers.Builder(1024)
        codes = sorted({o.code for o in self.operators})
        # buffers: 0 is the empty sentinel, then one per constant tensor
        datas = [t.data for t in self.tensors if t.data is not None]
        buf_offsets = []
        for d in [None] + datas:
            data_vec = None
            if d is not None:
                raw = np.ascontiguousarray(d).tobytes()
                b.StartVector(1, len(raw), 16)
                b.head = b.head - len(raw)
                b.Bytes[b.head:b.head + len(raw)] = raw
                data_vec = b.EndVector()
            tflite.BufferStart(b)
            if data_vec is not None:
                tflite.BufferAddData(b, data_vec)
            buf_offsets.append(tflite.BufferEnd(b))
        tensor_offsets, next_buffer = [], 1
        for t in self.tensors:
            name = b.CreateString(t.name)
            shape = _vector(b, tflite.TensorStartShapeVector, t.shape, b.PrependInt32)
            quant = None
            if t.scale is not None:
                sc = _vector(b, tflite.QuantizationParametersStartScaleVector, t.scale.tolist(), b.PrependFloat32)
                zp = _vector(b, tflite.QuantizationParametersStartZeroPointVector, t.zero_point.tolist(),
                             b.PrependInt64)
                tflite.QuantizationParametersStart(b)
                tflite.QuantizationParametersAddScale(b, sc)
                tflite.QuantizationParametersAddZeroPoint(b, zp)
                tflite.QuantizationParametersAddQuantizedDimension(b, t.axis)
                quant = tflite.QuantizationParametersEnd(b)
            tflite.TensorStart(b)
            tflite.TensorAddShape(b, shape)
            tflite.TensorAddType(b, TYPES[t.dtype])
            if t.data is not None:
                tflite.TensorAddBuffer(b, next_buffer)
                next_buffer += 1
            else:
                tflite.TensorAddBuffer(b, 0)
            tflite.TensorAddName(b, name)
            if quant is not None:
                tflite.TensorAddQuantization(b, quant)
            tensor_offsets.append(tflite.TensorEnd(b))
        op_offsets = []
        for o in self.operators:
            opts = o.options(b) if o.options is not None else None
            ins = _vector(b, tflite.OperatorStartInputsVector, o.inputs, b.PrependInt32)
            outs = _vector(b, tflite.OperatorStartOutputsVector, o.outputs, b.PrependInt32)
            tflite.OperatorStart(b)
            tflite.OperatorAddOpcodeIndex(b, codes.index(o.code))
            tflite.OperatorAddInputs(b, ins)
            tflite.OperatorAddOutputs(b, outs)
            if opts is not None:
                tflite.OperatorAddBuiltinOptionsType(b, o.options_type)
                tflite.OperatorAddBuiltinOptions(b, opts)
            op_offsets.append(tflite.OperatorEnd(b))
        tensors = _vector(b, tflite.SubGraphStartTensorsVector, tensor_offsets, b.PrependUOffsetTRelative)
        inputs = _vector(b, tflite.SubGraphStartInputsVector, self.inputs, b.PrependInt32)
        outputs = _vector(b, tflite.SubGraphStartOutputsVector, self.outputs, b.PrependInt32)
        ops = _vector(b, tflite.SubGraphStartOperatorsVector, op_offsets, b.PrependUOffsetTRelative)
        tflite.SubGraphStart(b)
        tflite.SubGraphAddTensors(b, tensors)
        tflite.SubGraphAddInputs(b, inputs)
        tflite.SubGraphAddOutputs(b, outputs)
        tflite.SubGraphAddOperators(b, ops)
        subgraph = tflite.SubGraphEnd(b)
        code_offsets = []
        for c in codes:
            tflite.OperatorCodeStart(b)
            tflite.OperatorCodeAddDeprecatedBuiltinCode(b, min(c, 127))
            tflite.OperatorCodeAddBuiltinCode(b, c)
            tflite.OperatorCodeAddVersion(b, 1)
            code_offsets.append(tflite.OperatorCodeEnd(b))
        code_vec = _vector(b, tflite.ModelStartOperatorCodesVector, code_offsets, b.PrependUOffsetTRelative)
        subgraphs = _vector(b, tflite.ModelStartSubgraphsVector, [subgraph], b.PrependUOffsetTRelative)
        buffers = _vector(b, tflite.ModelStartBuffersVector, buf_offsets, b.PrependUOffsetTRelative)
        desc = b.CreateString("accelsim tests")
        tflite.ModelStart(b)
        tflite.ModelAddVersion(b, 3)
        tflite.ModelAddOperatorCodes(b, code_vec)
        tflite.ModelAddSubgraphs(b, subgraphs)
        tflite.ModelAddDescription(b, desc)
        tflite.ModelAddBuffers(b, buffers)
        b.Finish(tflite.ModelEnd(b), file_identifier=b"TFL3")
        return bytes(b.Output())


# --- options ---------------------------------------------------------------------------------

def conv_options(stride, padding: str, act, dilation=(1, 1)) -> tuple[int, Callable]:
    def make(b):
        tflite.Conv2DOptionsStart(b)
        tflite.Conv2DOptionsAddPadding(b, Padding.SAME if padding == "same" else Padding.VALID)
        tflite.Conv2DOptionsAddStrideH(b, stride[0])
        tflite.Conv2DOptionsAddStrideW(b, stride[1])
        tflite.Conv2DOptionsAddFusedActivationFunction(b, ACTS[act])
        tflite.Conv2DOptionsAddDilationHFactor(b, dilation[0])
        tflite.Conv2DOptionsAddDilationWFactor(b, dilation[1])
        return tflite.Conv2DOptionsEnd(b)
    return Opt.Conv2DOptions, make


def depthwise_options(stride, padding: str, act, multiplier: int, dilation=(1, 1)) -> tuple[int, Callable]:
    def make(b):
        tflite.DepthwiseConv2DOptionsStart(b)
        tflite.DepthwiseConv2DOptionsAddPadding(b, Padding.SAME if padding == "same" else Padding.VALID)
        tflite.DepthwiseConv2DOptionsAddStrideH(b, stride[0])
        tflite.DepthwiseConv2DOptionsAddStrideW(b, stride[1])
        tflite.DepthwiseConv2DOptionsAddDepthMultiplier(b, multiplier)
        tflite.DepthwiseConv2DOptionsAddFusedActivationFunction(b, ACTS[act])
        tflite.DepthwiseConv2DOptionsAddDilationHFactor(b, dilation[0])
        tflite.DepthwiseConv2DOptionsAddDilationWFactor(b, dilation[1])
        return tflite.DepthwiseConv2DOptionsEnd(b)
    return Opt.DepthwiseConv2DOptions, make


def fc_options(act, keep_num_dims: bool = False) -> tuple[int, Callable]:
    def make(b):
        tflite.FullyConnectedOptionsStart(b)
        tflite.FullyConnectedOptionsAddFusedActivationFunction(b, ACTS[act])
        tflite.FullyConnectedOptionsAddKeepNumDims(b, keep_num_dims)
        return tflite.FullyConnectedOptionsEnd(b)
    return Opt.FullyConnectedOptions, make


# --- layers ----------------------------------------------------------------------------------

def _weights(rng, shape, axis_size, dtype="int8"):
    """Random weights: int8 symmetric per channel, or (legacy uint8) uint8 per tensor with a zero point."""
    if dtype == "uint8":
        return rng.integers(0, 256, size=shape).astype(np.uint8), np.float32(rng.uniform(0.002, 0.02))
    w = rng.integers(-127, 128, size=shape).astype(np.int8)
    w_scale = (rng.uniform(0.002, 0.02, axis_size)).astype(np.float32)
    return w, w_scale


def conv_out(size: int, k: int, stride: int, dilation: int, padding: str) -> int:
    eff = (k - 1) * dilation + 1
    return -(-size // stride) if padding == "same" else (size - eff) // stride + 1


def single_layer(kind: str, rng: np.random.Generator, *, n=1, h=7, w=9, c=5, out_c=6, k=(3, 3), stride=(1, 1),
                 padding="same", act=None, dilation=(1, 1), multiplier=1, in_zp=None, out_zp=None,
                 dtype="int8", out_scale=None) -> bytes:
    """One conv / depthwise / fully connected layer with random per-channel weights and biases;
    input and output activations of ``dtype`` (int8, or uint8 for a legacy model)."""
    m = Model()
    lo, hi = (-128, 127) if dtype == "int8" else (0, 255)
    s_in = np.float32(rng.uniform(0.01, 0.05))
    zp_in = int(rng.integers(lo, hi + 1)) if in_zp is None else in_zp
    zp_out = int(rng.integers(lo + 20, hi - 19)) if out_zp is None else out_zp
    if kind == "fc":
        x = m.tensor("x", (n, c), dtype, s_in, zp_in)
        wt, ws = _weights(rng, (out_c, c), out_c, dtype)
        shape_out = (n, out_c)
        k_total = c
    else:
        x = m.tensor("x", (n, h, w, c), dtype, s_in, zp_in)
        oh = conv_out(h, k[0], stride[0], dilation[0], padding)
        ow = conv_out(w, k[1], stride[1], dilation[1], padding)
        if kind == "conv":
            wt, ws = _weights(rng, (out_c, k[0], k[1], c), out_c, dtype)
            shape_out = (n, oh, ow, out_c)
        else:
            out_c = c * multiplier
            wt, ws = _weights(rng, (1, k[0], k[1], out_c), out_c, dtype)
            shape_out = (n, oh, ow, out_c)
        k_total = k[0] * k[1] * (c if kind == "conv" else 1)
    # an output scale that keeps typical outputs inside the range: sums of k_total products
    typical = float(s_in) * float(np.mean(ws)) * 60.0 * np.sqrt(k_total) * 3.0
    s_out = np.float32(out_scale if out_scale is not None else typical / 100.0)
    w_axis = 0 if kind != "dw" else 3
    w_zp = int(rng.integers(100, 156)) if dtype == "uint8" else 0
    wi = m.tensor("w", wt.shape, dtype, ws, w_zp, axis=w_axis, data=wt)
    bias = rng.integers(-4000, 4000, size=out_c).astype(np.int32)
    b_scale = np.broadcast_to(np.float32(s_in) * np.asarray(ws, np.float32), (out_c,) if np.ndim(ws) else (1,))
    bi = m.tensor("b", (out_c,), "int32", b_scale.astype(np.float32), 0, data=bias)
    y = m.tensor("y", shape_out, dtype, s_out, zp_out)
    if kind == "conv":
        m.op(Op.CONV_2D, [x, wi, bi], [y], *conv_options(stride, padding, act, dilation))
    elif kind == "dw":
        m.op(Op.DEPTHWISE_CONV_2D, [x, wi, bi], [y], *depthwise_options(stride, padding, act, multiplier, dilation))
    else:
        m.op(Op.FULLY_CONNECTED, [x, wi, bi], [y], *fc_options(act))
    m.inputs, m.outputs = [x], [y]
    return m.build()


def _act_options(start, add_act, end, kind: int, act) -> tuple[int, Callable]:
    def make(b):
        start(b)
        add_act(b, ACTS[act])
        return end(b)

    return kind, make


def add_options(act=None) -> tuple[int, Callable]:
    return _act_options(tflite.AddOptionsStart, tflite.AddOptionsAddFusedActivationFunction, tflite.AddOptionsEnd,
                        Opt.AddOptions, act)


def mul_options(act=None) -> tuple[int, Callable]:
    return _act_options(tflite.MulOptionsStart, tflite.MulOptionsAddFusedActivationFunction, tflite.MulOptionsEnd,
                        Opt.MulOptions, act)


def _qparams(rng, dtype: str) -> tuple[np.float32, int]:
    lo, hi = (-128, 127) if dtype == "int8" else (0, 255)
    return np.float32(rng.uniform(0.01, 0.1)), int(rng.integers(lo + 10, hi - 9))


def binary_model(op: str, rng: np.random.Generator, shape_a, shape_b, *, act=None, dtype="int8",
                 const_b: bool = False) -> bytes:
    """ADD or MUL of two activations (or an activation and a constant), random quantization."""
    m = Model()
    (sa, za), (sb, zb) = _qparams(rng, dtype), _qparams(rng, dtype)
    a = m.tensor("a", shape_a, dtype, sa, za)
    data = None
    if const_b:
        lo, hi = (-128, 128) if dtype == "int8" else (0, 256)
        data = rng.integers(lo, hi, size=shape_b).astype(dtype)
    b = m.tensor("b", shape_b, dtype, sb, zb, data=data)
    out_shape = tuple(np.broadcast_shapes(tuple(shape_a), tuple(shape_b)))
    if op == "ADD":
        sy = np.float32((sa + sb) * rng.uniform(0.6, 1.6))
    else:
        sy = np.float32(sa * sb * 40 * rng.uniform(0.5, 2.0))
    y = m.tensor("y", out_shape, dtype, sy, _qparams(rng, dtype)[1])
    code, opts = (Op.ADD, add_options(act)) if op == "ADD" else (Op.MUL, mul_options(act))
    m.op(code, [a, b], [y], *opts)
    m.inputs, m.outputs = ([a] if const_b else [a, b]), [y]
    return m.build()


def pool_options(filt, stride, padding: str, act=None) -> tuple[int, Callable]:
    def make(b):
        tflite.Pool2DOptionsStart(b)
        tflite.Pool2DOptionsAddPadding(b, Padding.SAME if padding == "same" else Padding.VALID)
        tflite.Pool2DOptionsAddStrideW(b, stride[1])
        tflite.Pool2DOptionsAddStrideH(b, stride[0])
        tflite.Pool2DOptionsAddFilterWidth(b, filt[1])
        tflite.Pool2DOptionsAddFilterHeight(b, filt[0])
        tflite.Pool2DOptionsAddFusedActivationFunction(b, ACTS[act])
        return tflite.Pool2DOptionsEnd(b)

    return Opt.Pool2DOptions, make


def pool_model(op: str, rng: np.random.Generator, shape, filt, stride, padding="same", *, act=None, dtype="int8",
               same_quant: bool = True) -> bytes:
    """AVERAGE_POOL_2D or MAX_POOL_2D of one NHWC activation."""
    m = Model()
    s, z = _qparams(rng, dtype)
    x = m.tensor("x", shape, dtype, s, z)
    oh, ow = (conv_out(shape[i], filt[i - 1], stride[i - 1], 1, padding) for i in (1, 2))
    so, zo = (s, z) if same_quant else _qparams(rng, dtype)
    y = m.tensor("y", (shape[0], oh, ow, shape[3]), dtype, so, zo)
    m.op(Op.AVERAGE_POOL_2D if op == "avg" else Op.MAX_POOL_2D, [x], [y], *pool_options(filt, stride, padding, act))
    m.inputs, m.outputs = [x], [y]
    return m.build()


def mean_model(rng: np.random.Generator, shape, axes, keep_dims: bool, *, dtype="int8", same_quant=False) -> bytes:
    """MEAN over constant axes."""
    m = Model()
    s, z = _qparams(rng, dtype)
    x = m.tensor("x", shape, dtype, s, z)
    ax = m.tensor("axes", (len(axes),), "int32", data=np.asarray(axes, np.int32))
    out = tuple(1 if i in axes else d for i, d in enumerate(shape)) if keep_dims else \
        tuple(d for i, d in enumerate(shape) if i not in axes)
    so, zo = (s, z) if same_quant else (np.float32(s * rng.uniform(0.3, 1.5)), _qparams(rng, dtype)[1])
    y = m.tensor("y", out, dtype, so, zo)

    def make(b):
        tflite.ReducerOptionsStart(b)
        tflite.ReducerOptionsAddKeepDims(b, keep_dims)
        return tflite.ReducerOptionsEnd(b)

    m.op(Op.MEAN, [x, ax], [y], Opt.ReducerOptions, make)
    m.inputs, m.outputs = [x], [y]
    return m.build()


def unary_model(op: str, rng: np.random.Generator, shape, *, dtype="int8", out_dtype=None, out_q=None,
                in_q=None) -> bytes:
    """LOGISTIC or SOFTMAX (output scale 1/256 as TFLite wants it) or QUANTIZE (a requantization to
    ``out_dtype``) of one activation."""
    m = Model()
    s, z = _qparams(rng, dtype)
    s, z = in_q if in_q is not None else (np.float32(s * rng.uniform(0.5, 3.0)), z)
    x = m.tensor("x", shape, dtype, s, z)
    out_dtype = out_dtype or dtype
    if out_q is None:
        if op in ("LOGISTIC", "SOFTMAX"):
            out_q = (np.float32(1 / 256), -128 if out_dtype == "int8" else 0)
        else:
            out_q = (np.float32(s * rng.uniform(0.3, 3.0)), _qparams(rng, out_dtype)[1])
    y = m.tensor("y", shape, out_dtype, *out_q)
    if op == "SOFTMAX":
        def make(b):
            tflite.SoftmaxOptionsStart(b)
            tflite.SoftmaxOptionsAddBeta(b, 1.0)
            return tflite.SoftmaxOptionsEnd(b)

        m.op(Op.SOFTMAX, [x], [y], Opt.SoftmaxOptions, make)
    else:
        m.op(Op.LOGISTIC if op == "LOGISTIC" else Op.QUANTIZE, [x], [y])
    m.inputs, m.outputs = [x], [y]
    return m.build()


def concat_model(rng: np.random.Generator, shapes, axis: int, *, dtype="int8", same_quant=True, act=None) -> bytes:
    """CONCATENATION of activations along ``axis``."""
    m = Model()
    q = _qparams(rng, dtype)
    xs = [m.tensor(f"x{i}", sh, dtype, *(q if same_quant else _qparams(rng, dtype))) for i, sh in enumerate(shapes)]
    out = list(shapes[0])
    out[axis] = sum(sh[axis] for sh in shapes)
    y = m.tensor("y", out, dtype, *q)

    def make(b):
        tflite.ConcatenationOptionsStart(b)
        tflite.ConcatenationOptionsAddAxis(b, axis)
        tflite.ConcatenationOptionsAddFusedActivationFunction(b, ACTS[act])
        return tflite.ConcatenationOptionsEnd(b)

    m.op(Op.CONCATENATION, xs, [y], Opt.ConcatenationOptions, make)
    m.inputs, m.outputs = xs, [y]
    return m.build()


def float_io_model(rng: np.random.Generator, shape, out_c: int = 4) -> bytes:
    """A float32 input QUANTIZEd to int8, a 1x1 conv, a DEQUANTIZE to a float32 output."""
    m = Model()
    n, h, w, c = shape
    s_in, z_in = _qparams(rng, "int8")
    xf = m.tensor("x", shape, "float32")
    xq = m.tensor("xq", shape, "int8", s_in, z_in)
    wt, ws = _weights(rng, (out_c, 1, 1, c), out_c)
    wi = m.tensor("w", wt.shape, "int8", ws, 0, data=wt)
    bi = m.tensor("b", (out_c,), "int32", (s_in * ws).astype(np.float32), 0,
                  data=rng.integers(-500, 500, out_c).astype(np.int32))
    s_out = np.float32(float(s_in) * float(ws.mean()) * 60 * np.sqrt(c) * 3 / 100)
    yq = m.tensor("yq", (n, h, w, out_c), "int8", s_out, int(rng.integers(-20, 20)))
    yf = m.tensor("y", (n, h, w, out_c), "float32")
    m.op(Op.QUANTIZE, [xf], [xq])
    m.op(Op.CONV_2D, [xq, wi, bi], [yq], *conv_options((1, 1), "same", None))
    m.op(Op.DEQUANTIZE, [yq], [yf])
    m.inputs, m.outputs = [xf], [yf]
    return m.build()


def small_cnn(rng: np.random.Generator, *, h=12, w=12, c=3, classes=5) -> bytes:
    """conv 3x3 (relu6) -> depthwise 3x3 stride 2 (relu) -> conv 1x1 (relu) -> MEAN over H, W ->
    fully connected -> SOFTMAX-free logits: a MobileNet-shaped int8 model, per-channel weights."""
    m = Model()
    s, z = np.float32(0.02), -10
    x = m.tensor("x", (1, h, w, c), "int8", s, z)

    def layer(kind, inp, shape_in, out_c, k, stride, act, s_in):
        ws_shape = {"conv": (out_c, k, k, shape_in[3]), "dw": (1, k, k, shape_in[3])}[kind]
        n_out = out_c if kind == "conv" else shape_in[3]
        wt, ws = _weights(rng, ws_shape, n_out)
        wi = m.tensor(f"w{len(m.tensors)}", wt.shape, "int8", ws, 0, axis=0 if kind == "conv" else 3, data=wt)
        bi = m.tensor(f"b{len(m.tensors)}", (n_out,), "int32", (s_in * ws).astype(np.float32), 0,
                      data=rng.integers(-300, 300, n_out).astype(np.int32))
        oh, ow = (conv_out(shape_in[i], k, stride, 1, "same") for i in (1, 2))
        depth = k * k * (shape_in[3] if kind == "conv" else 1)
        s_out = np.float32(float(s_in) * float(ws.mean()) * 60 * np.sqrt(depth) * 70 / 100)
        y = m.tensor(f"a{len(m.tensors)}", (1, oh, ow, n_out), "int8", s_out, -128 if act else 0)
        if kind == "conv":
            m.op(Op.CONV_2D, [inp, wi, bi], [y], *conv_options((stride, stride), "same", act))
        else:
            m.op(Op.DEPTHWISE_CONV_2D, [inp, wi, bi], [y], *depthwise_options((stride, stride), "same", act, 1))
        return y, (1, oh, ow, n_out), s_out

    a, shape, sa = layer("conv", x, (1, h, w, c), 8, 3, 1, "relu6", s)
    a, shape, sa = layer("dw", a, shape, 8, 3, 2, "relu", sa)
    a, shape, sa = layer("conv", a, shape, 16, 1, 1, "relu", sa)
    axes = m.tensor("axes", (2,), "int32", data=np.array([1, 2], np.int32))
    pooled = m.tensor("pooled", (1, 1, 1, 16), "int8", sa, -128)

    def reducer(b):
        tflite.ReducerOptionsStart(b)
        tflite.ReducerOptionsAddKeepDims(b, True)
        return tflite.ReducerOptionsEnd(b)

    m.op(Op.MEAN, [a, axes], [pooled], Opt.ReducerOptions, reducer)
    wt, ws = _weights(rng, (classes, 16), classes)
    wi = m.tensor("fc_w", wt.shape, "int8", ws, 0, data=wt)
    bi = m.tensor("fc_b", (classes,), "int32", (sa * ws).astype(np.float32), 0, data=np.zeros(classes, np.int32))
    y = m.tensor("logits", (1, classes), "int8", np.float32(float(sa) * float(ws.mean()) * 400), 0)
    m.op(Op.FULLY_CONNECTED, [pooled, wi, bi], [y], *fc_options(None))
    m.inputs, m.outputs = [x], [y]
    return m.build()


def pad_model(rng: np.random.Generator, shape, paddings, *, dtype="int8") -> bytes:
    """PAD with constant paddings (the fill is the zero point)."""
    m = Model()
    q = _qparams(rng, dtype)
    x = m.tensor("x", shape, dtype, *q)
    p = m.tensor("paddings", (len(shape), 2), "int32", data=np.asarray(paddings, np.int32))
    out = tuple(d + a + b for d, (a, b) in zip(shape, paddings))
    y = m.tensor("y", out, dtype, *q)
    m.op(Op.PAD, [x, p], [y])
    m.inputs, m.outputs = [x], [y]
    return m.build()
