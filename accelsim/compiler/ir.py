"""The quantized graph IR the compiler works on: quantized tensors and integer operators.

Importers (accelsim.compiler.onnx for both ONNX forms, QDQ and QOperator) produce it.  Activations are NHWC in
DRAM; shapes here are ONNX's (NCHW) so that errors and reports speak the model's language.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Optional

import numpy as np


class ModelError(ValueError):
    """A model the compiler cannot take: names the node (its name, or its op type and index when
    it has none), its op type and the reason; ``node`` empty for the model as a whole."""

    def __init__(self, node: str, op_type: str, reason: str) -> None:
        self.node, self.op_type, self.reason = node, op_type, reason
        super().__init__(f"node {node!r} ({op_type}): {reason}" if node else reason)


def memory_dims(shape: tuple) -> tuple:
    """A tensor's dims in its DRAM order: NHWC for a 4-D (NCHW) tensor, row-major otherwise."""
    return (shape[0], shape[2], shape[3], shape[1]) if len(shape) == 4 else tuple(shape)


def memory_axis(axis: int, rank: int, rowmajor: bool = False) -> int:
    """Where an ONNX axis falls in the DRAM order (NCHW axis 1, channels, is the last of NHWC)."""
    return (0, 3, 1, 2)[axis] if rank == 4 and not rowmajor else axis


@dataclass
class QTensor:
    """A quantized activation: integers of ``dtype`` meaning scale * (q - zero_point)."""

    name: str
    shape: tuple[int, ...]
    dtype: str            # "u8", "s8", "u16", "s16", "u4", "s4"
    scale: np.float32
    zero_point: int
    rowmajor: bool = False  # a 4-D tensor stored in the row-major order of its shape (an NCHW -> NHWC
    #                         Transpose made it), not as NHWC of an NCHW shape

    @property
    def memory_dims(self) -> tuple:
        """Its dims in DRAM order."""
        return tuple(self.shape) if self.rowmajor else memory_dims(self.shape)


@dataclass
class QConv:
    """Convolution (or fully connected layer as a 1x1 convolution) with per-channel weights.

    ``weight``: int (N, C/group, kh, kw); ``w_scale``: float32 (N,); ``bias``: int32 (N,) in
    units of s_in * s_w[n]; ``clamp``: the integer output range after any fused activation;
    ``requant``: the REQUANT mode (isa.requant.MODES) of the engine it matches, ``requant_tail``
    (first channel, mode) for the last channels when that engine rounds them another way.
    """

    name: str
    op_type: str
    input: str
    output: str
    weight: np.ndarray
    w_dtype: str
    w_scale: np.ndarray
    w_zero_point: int
    bias: np.ndarray
    stride: tuple[int, int] = (1, 1)
    pads: tuple[int, int, int, int] = (0, 0, 0, 0)   # top, left, bottom, right
    dilation: tuple[int, int] = (1, 1)
    group: int = 1
    clamp: Optional[tuple[int, int]] = None
    requant: str = "fp32"
    requant_tail: Optional[tuple[int, str]] = None

    def mode_runs(self) -> list[tuple[int, int, str]]:
        """(first channel, end channel, requant mode) of each run of output channels."""
        n = int(self.weight.shape[0])
        if self.requant_tail is None or self.requant_tail[0] >= n:
            return [(0, n, self.requant)]
        k, tail = self.requant_tail
        return ([(0, k, self.requant)] if k > 0 else []) + [(k, n, tail)]


@dataclass
class QDepthwiseConv(QConv):
    """A convolution with one filter per channel (group == in channels == out channels): it runs
    on the DWCONV instruction, each channel through its own array column."""


def conv_class(group: int, in_channels: int, weight_shape: tuple) -> type:
    """QDepthwiseConv for a depthwise convolution, QConv for every other."""
    depthwise = group > 1 and group == in_channels == weight_shape[0] and weight_shape[1] == 1
    return QDepthwiseConv if depthwise else QConv


@dataclass
class PoolWindow:
    """The window geometry of a 2-D pool."""

    name: str
    op_type: str
    input: str
    output: str
    kernel: tuple[int, int]
    stride: tuple[int, int]
    pads: tuple[int, int, int, int]   # top, left, bottom, right
    dilation: tuple[int, int] = (1, 1)


@dataclass
class QMaxPool(PoolWindow):
    """Max pooling of a quantized tensor (same scale and zero point in and out)."""


@dataclass
class QGlobalAvgPool:
    """Global average pooling: y = requant_fp32(sum(x - z_in), s_in / (s_out * H * W)) + z_out.

    A fixed-point ``requant`` mode (TFLite's MEAN) takes ``multiplier`` (M0, shift) for every
    channel, sums (x - ``sum_zero_point``) and adds ``out_offset`` after the requantization;
    ``requant_tail`` (first channel, mode) rounds the last channels another way."""

    name: str
    op_type: str
    input: str
    output: str
    clamp: Optional[tuple[int, int]] = None
    requant: str = "fp32"
    multiplier: Optional[tuple[int, int]] = None
    sum_zero_point: Optional[int] = None
    out_offset: Optional[int] = None
    requant_tail: Optional[tuple[int, str]] = None


@dataclass
class QBinary:
    """An elementwise op of two quantized tensors on the vector unit; ``b`` has ``a``'s shape or
    broadcasts to it (ONNX rules): one value per channel (squeeze-excite scales, per-channel
    constants), one per image, or a scalar."""

    name: str
    op_type: str
    a: str
    b: str
    output: str
    clamp: Optional[tuple[int, int]] = None
    requant: str = "fp32"   # the VADD / VMUL mode: fp32 (ONNX Runtime), fixed_double / fixed_single (TFLite)

    @property
    def input(self) -> str:
        return self.a


@dataclass
class QAdd(QBinary):
    """Add with ONNX Runtime's QLinearAdd rounding (VADD, fp32 mode)."""


@dataclass
class QMul(QBinary):
    """Multiply with ONNX Runtime's QLinearMul rounding (VMUL, fp32 mode)."""


@dataclass
class QAvgPool(PoolWindow):
    """Average pooling over a window (``count`` = kernel size, or the taps inside the input when
    count_include_pad = 0).  Same quantization in and out: the exact integer mean, ties to even;
    otherwise y = sat(rint(float32(S) * float32(s_in / (s_out * count))) + z_out), S the exact sum
    of (x - z_in) (docs/numerics.md, section 4).  ``codes``: TFLite's mean of the codes whatever
    the quantization, ``away``: its ties away from zero, ``clamp``: a fused activation."""

    count_include_pad: bool = False
    codes: bool = False
    away: bool = False
    clamp: Optional[tuple[int, int]] = None


@dataclass
class QConcat:
    """Concatenation along ``axis`` (ONNX numbering); inputs whose scale or zero point differ from
    the output's are requantized by a lookup table."""

    name: str
    op_type: str
    inputs: list[str]
    output: str
    clamp: Optional[tuple[int, int]] = None   # a fused Relu / Clip: every input goes through a table
    axis: int = 1
    tables: Optional[list] = None             # the importer's table per input (None: copied), instead of
    #                                           ONNX Runtime's requantization

    @property
    def input(self) -> str:
        return self.inputs[0]


@dataclass(frozen=True)
class Piece:
    """A strided block copy, in elements of the tensors' DRAM order: ``rows`` rows of ``cols``
    elements from ``src`` (first element ``src_at``, rows ``src_pitch`` apart) to the output
    (first element ``dst_at``, rows ``dst_pitch`` apart)."""

    src: str
    src_at: int
    rows: int
    cols: int
    src_pitch: int
    dst_at: int
    dst_pitch: int


@dataclass
class QCopy:
    """An output assembled from blocks of its inputs, with the same quantization (Pad, Slice,
    Split): the elements no piece writes hold ``fill`` (a code)."""

    name: str
    op_type: str
    inputs: list[str]
    output: str
    pieces: list[Piece]
    fill: Optional[int] = None

    @property
    def input(self) -> str:
        return self.inputs[0]


@dataclass
class QLut:
    """An elementwise map of an 8-bit (or 4-bit) tensor given as a 256-entry table indexed by the
    element's code (its low 8 bits): e.g. Q(f(DQ(x))) for a standalone activation f.  A (C, 256)
    table maps each channel (NCHW axis 1) by its own row (a BatchNormalization); ``tail``: the
    elements from an index on take another table (LiteRT's vector loops round their tail apart)."""

    name: str
    op_type: str
    input: str
    output: str
    table: np.ndarray
    tail: Optional[tuple[int, int, np.ndarray]] = None  # (period, first element, table): element e in DRAM
    #                                                     order with e % period >= first takes this table


@dataclass
class QReshape:
    """Flatten / Reshape / Transpose of a quantized tensor (same integers, new shape).  ``nhwc``:
    the input is read in its DRAM order as it is (the NCHW -> NHWC Transpose itself, or a reshape
    of the row-major tensor it made); otherwise a 4-D input is NCHW and the chip's NHWC order must
    agree with the reshape (passes.reshapes)."""

    name: str
    op_type: str
    input: str
    output: str
    nhwc: bool = False


@dataclass
class QHost:
    """Float ops the host computes between chip segments: ``fn`` maps the integer codes of the
    inputs (ONNX order) to the output's codes with ONNX Runtime's float arithmetic
    (accelsim.compiler.hostops).  The chip stops at a HOST instruction while it runs."""

    name: str
    op_type: str
    inputs: tuple[str, ...]
    output: str
    fn: Callable[[list[np.ndarray]], np.ndarray]

    @property
    def input(self) -> str:
        return self.inputs[0]


@dataclass
class QGraph:
    """Quantized graph: tensors, nodes in topological order, the float edges' Q/DQ parameters."""

    tensors: dict[str, QTensor] = field(default_factory=dict)
    nodes: list = field(default_factory=list)
    inputs: dict[str, str] = field(default_factory=dict)    # float graph input -> quantized tensor
    outputs: dict[str, str] = field(default_factory=dict)   # float tensor the host dequantizes -> quantized tensor
    source_format: str = ""
    host_nodes: list = field(default_factory=list)          # float ONNX nodes after the chip (e.g. Softmax)
    graph_outputs: list[str] = field(default_factory=list)  # the model's outputs, in order
    host_initializers: list = field(default_factory=list)   # constants the host ops read
    opset: int = 17
    input_clips: dict = field(default_factory=dict)         # float graph input -> (min, max) the host clips it to
    input_shapes: dict = field(default_factory=dict)        # float graph input -> the shape compiled for
    constants: dict = field(default_factory=dict)           # quantized constant operand -> its integers (ONNX order)
    # TFLite models: inputs and outputs in the file's layout (DRAM order, NHWC) and element types
    file_layout: bool = False
    code_io: set = field(default_factory=set)               # inputs / outputs given and returned as codes
    input_quantizers: dict = field(default_factory=dict)    # float input -> fn(x, QTensor) -> codes
    output_dequantizers: dict = field(default_factory=dict)  # float output -> fn(codes, QTensor) -> float32
    output_shapes: dict = field(default_factory=dict)       # output -> its shape in the file's layout
    states: dict = field(default_factory=dict)              # state input -> (state output, initial codes)


def node_inputs(node) -> list[str]:
    """The tensors a node reads, in order."""
    if isinstance(node, QBinary):
        return [node.a, node.b]
    if isinstance(node, (QConcat, QCopy, QHost)):
        return list(node.inputs)
    return [node.input]
