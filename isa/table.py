"""The instruction table: the one place where an opcode, a field or a field width is written.

Encoder, decoder, assembler, disassembler and ``docs/isa.md`` are all derived from ``OPS``.

Word layout (128 bits, little-endian bit numbering):

* bits 0..5   opcode
* bits 6..9   dependency tokens: pop_prev, pop_next, push_prev, push_next
* bits 10..   the instruction's fields, packed in table order, LSB first
* all bits above the last field are reserved and must be zero.

Units are ordered load -> compute -> store; "prev"/"next" name the neighbouring unit.

Each instruction also lists the spans it reads and writes (:class:`Span`): every buffer and DRAM
range, as a function of its fields and the SETWIN register.  The golden semantics and the chip
both check them from here before the instruction runs (isa.spans).
"""

from __future__ import annotations

from dataclasses import dataclass, field as dc_field
from typing import Callable, Optional, Union

WORD_BITS = 128
OPCODE_BITS = 6
TOKEN_NAMES = ("pop_prev", "pop_next", "push_prev", "push_next")
HEADER_BITS = OPCODE_BITS + len(TOKEN_NAMES)

UNITS = ("load", "compute", "store")

#: Element formats in DRAM and in the MAC array: name -> (bits, signed).
DTYPES: dict[str, tuple[int, bool]] = {
    "u4": (4, False), "s4": (4, True),
    "u8": (8, False), "s8": (8, True),
    "u16": (16, False), "s16": (16, True),
    "u32": (32, False), "s32": (32, True),
}
MAC_DTYPES = ("u4", "s4", "u8", "s8", "u16", "s16")
MEM_DTYPES = tuple(DTYPES)

#: On-chip buffers. INP/WGT/OUT/PRM hold 32-bit words, ACC holds 64-bit words.
BUFFERS = ("INP", "WGT", "ACC", "OUT", "PRM")
REQUANT_MODES = ("fp32", "fixed_double", "fixed_single", "fixed_double_up", "fp64_away", "fixed_shared")
ADD_RECORD_WORDS = 9  # VADD: a_zp, b_zp, a_mult, a_shift, b_mult, b_shift, o_mult, o_shift, left_shift
MUL_RECORD_WORDS = 4  # VMUL: a_zp, b_zp, mult (fp32 mode: the bits of the float32 ratio), shift
LUT_WORDS = 256       # VLUT: one table entry per 8-bit code
WEIGHT_FORMATS = ("dense", "bitmask", "rle", "codebook")

Value = Union[int, str]


@dataclass(frozen=True)
class Field:
    """One bit field of an instruction.

    kind ``u``: unsigned, stored as ``value - lo`` (so sizes 1..2^bits need no wasted code);
    kind ``s``: two's complement; kind ``e``: enumeration, stored as the option's index
    (``None`` marks a code that is not valid).
    """

    name: str
    bits: int
    doc: str
    kind: str = "u"
    lo: int = 0
    hi: Optional[int] = None
    options: tuple = ()
    default: Optional[Value] = None

    @property
    def min(self) -> int:
        if self.kind == "s":
            return -(1 << (self.bits - 1))
        return self.lo

    @property
    def max(self) -> int:
        if self.kind == "s":
            return (1 << (self.bits - 1)) - 1
        top = self.lo + (1 << self.bits) - 1
        return top if self.hi is None else min(self.hi, top)

    def describe_range(self) -> str:
        if self.kind == "e":
            return ", ".join(str(o) for o in self.options if o is not None)
        return f"{self.min}..{self.max}"


@dataclass(frozen=True)
class Span:
    """A block an instruction reads or writes.

    ``buf``: a buffer name, ``"DRAM"``, or the field that names the buffer; ``at``: the field that
    holds the first word (DRAM: the byte address); ``size``: words (DRAM: bytes), an expression over
    the instruction's fields, the SETWIN register's fields and ``bytes(dtype, elements)`` (packed
    bytes), evaluated by isa.spans and printed in docs/isa.md.  ``access`` is "read" or "write".
    """

    access: str
    buf: str
    at: str
    size: str


@dataclass(frozen=True)
class Op:
    """One instruction: mnemonic, opcode, executing unit, fields, cross-field rules, the spans it
    touches and the rules on the machine state it needs (e.g. a SETWIN before LOADWIN)."""

    mnemonic: str
    opcode: int
    unit: str  # one of UNITS, or "any" (the instruction then has a ``unit`` field)
    doc: str
    fields: tuple[Field, ...]
    checks: tuple[Callable[[dict], Optional[str]], ...] = dc_field(default=())
    spans: tuple[Span, ...] = ()
    state_checks: tuple[Callable[[dict, Optional[dict]], Optional[str]], ...] = ()

    def field(self, name: str) -> Field:
        for f in self.fields:
            if f.name == name:
                return f
        raise KeyError(name)

    @property
    def field_bits(self) -> int:
        return sum(f.bits for f in self.fields)


# --------------------------------------------------------------------------- shared fields
def _buf(name: str, doc: str, allowed: tuple[str, ...] = BUFFERS) -> Field:
    opts = tuple(b if b in allowed else None for b in BUFFERS)
    return Field(name, 3, doc, kind="e", options=opts)


def _addr(name: str, doc: str) -> Field:
    return Field(name, 20, doc)


def _size(name: str, bits: int, doc: str) -> Field:
    return Field(name, bits, doc, lo=1)


def _dtype(name: str, doc: str, allowed: tuple[str, ...]) -> Field:
    opts = tuple(d if d in allowed else None for d in DTYPES)
    return Field(name, 3, doc, kind="e", options=opts)


def _flag(name: str, doc: str) -> Field:
    return Field(name, 1, doc, default=0)


def _zp(name: str, doc: str) -> Field:
    return Field(name, 17, doc, kind="s", default=0)


DRAM = Field("dram", 32, "DRAM byte address of element 0")
SRAM = _addr("sram", "buffer word address of element 0")
M_ROWS = _size("m", 12, "rows (output pixels) in the tile")
ACCUMULATE = _flag("accumulate", "1: add to the accumulators; 0: overwrite them")
WINDOW = _size("r", 10, "window positions per row (k_h * k_w of the gather)")
CHANNELS = _size("c", 12, "channels")


def _two_operands(prm_doc: str) -> tuple[Field, ...]:
    """The fields of VADD and VMUL: a, b (broadcast with period bn), destination, n, parameter record."""
    return (_buf("a_buf", "first input buffer"), _addr("a", "first input address"),
            _buf("b_buf", "second input buffer"), _addr("b", "second input address"),
            _buf("dst_buf", "destination buffer"), _addr("dst", "destination address"),
            _size("n", 17, "elements"),
            Field("bn", 12, "broadcast period of b: b[j % bn] (0: b has n elements)", default=0),
            _addr("prm", prm_doc))


# --------------------------------------------------------------------------- cross-field rules
def _tokens_for_unit(unit_of: Callable[[dict], str]) -> Callable[[dict], Optional[str]]:
    def check(v: dict) -> Optional[str]:
        unit = unit_of(v)
        if unit == "load" and (v["pop_prev"] or v["push_prev"]):
            return "the load unit has no previous unit: pop_prev/push_prev must be 0"
        if unit == "store" and (v["pop_next"] or v["push_next"]):
            return "the store unit has no next unit: pop_next/push_next must be 0"
        return None

    return check


def _zp_fits(zp_field: str, dtype_field: str) -> Callable[[dict], Optional[str]]:
    def check(v: dict) -> Optional[str]:
        bits, signed = DTYPES[v[dtype_field]]
        lo, hi = (-(1 << (bits - 1)), (1 << (bits - 1)) - 1) if signed else (0, (1 << bits) - 1)
        if not lo <= v[zp_field] <= hi:
            return f"{zp_field}={v[zp_field]} outside the range {lo}..{hi} of {dtype_field}={v[dtype_field]}"
        return None

    return check


def _ordered(lo_name: str, hi_name: str) -> Callable[[dict], Optional[str]]:
    def check(v: dict) -> Optional[str]:
        if v[lo_name] > v[hi_name]:
            return f"{lo_name}={v[lo_name]} > {hi_name}={v[hi_name]}"
        return None

    return check


def _codebook_bits(v: dict) -> Optional[str]:
    if v["format"] == "codebook" and v["param"] > DTYPES[v["dtype"]][0]:
        return f"codebook index bits param={v['param']} exceed the weight width of {v['dtype']}"
    return None


def _fixed_unit(unit: str) -> Callable[[dict], str]:
    return lambda v: unit


# --------------------------------------------------------------------------- spans
def _reads(buf: str, at: str, size: str) -> Span:
    return Span("read", buf, at, size)


def _writes(buf: str, at: str, size: str) -> Span:
    return Span("write", buf, at, size)


def dram_bytes(dtype: str, elements: int) -> int:
    """Bytes from the first element's byte to the last one's, for ``elements`` packed elements."""
    return (elements * DTYPES[dtype][0] + 7) // 8


def images(pixels: int, per_image: int) -> int:
    """How many images the output pixels 0 .. pixels-1 reach (per_image 0: one image)."""
    return max(1, -(-pixels // per_image)) if per_image else 1


def _needs_window(v: dict, w: Optional[dict]) -> Optional[str]:
    """a SETWIN earlier in the program"""
    return "LOADWIN before any SETWIN" if w is None else None


def _channels_in_pixel(v: dict, w: Optional[dict]) -> Optional[str]:
    """c0 + nc <= in_c of the SETWIN"""
    if w is not None and v["c0"] + v["nc"] > w["in_c"]:
        return f"channels {v['c0']}..{v['c0'] + v['nc'] - 1} exceed in_c={w['in_c']}"
    return None


_ELEMENTWISE = (_reads("a_buf", "a", "n"), _reads("b_buf", "b", "n"), _writes("dst_buf", "dst", "n"))
_BROADCAST = (_reads("a_buf", "a", "n"), _reads("b_buf", "b", "n if bn == 0 else bn"), _writes("dst_buf", "dst", "n"))
_POOL = (_reads("src_buf", "src", "m * r * c"), _writes("dst_buf", "dst", "m * c"))
_UNARY = (_reads("src_buf", "src", "n"), _writes("dst_buf", "dst", "n"))
_STRIDED = "bytes(dtype, (y - 1) * y_stride + x)"


# --------------------------------------------------------------------------- the table
OPS: tuple[Op, ...] = (
    Op("NOP", 0x00, "any", "Do nothing on the named unit; used to move dependency tokens.", (
        Field("unit", 2, "unit that executes it", kind="e", options=UNITS, default="compute"),
    ), checks=(_tokens_for_unit(lambda v: v["unit"]),)),
    Op("HALT", 0x01, "compute", "End of program: the machine stops once every unit has drained.", ()),
    Op("CONFIG", 0x02, "compute",
       "Set the layer state of the MAC array, requant and vector units.", (
        _dtype("a", "activation operand type", MAC_DTYPES),
        _dtype("w", "weight operand type", MAC_DTYPES),
        _dtype("o", "output type of REQUANT / VADD / VMUL / AVGPOOL", MAC_DTYPES),
        _zp("a_zp", "activation zero point"),
        _zp("w_zp", "weight zero point"),
        _zp("o_zp", "output zero point"),
        Field("acc_bits", 6, "accumulator width in bits (wrap-around)", lo=8, hi=48, default=32),
        Field("mode", 3, "requantization mode", kind="e", options=REQUANT_MODES, default="fp32"),
        Field("clamp_min", 17, "lower clamp of outputs (fused ReLU/ReLU6)", kind="s"),
        Field("clamp_max", 17, "upper clamp of outputs", kind="s"),
    ), checks=(_zp_fits("a_zp", "a"), _zp_fits("w_zp", "w"), _zp_fits("o_zp", "o"),
               _ordered("clamp_min", "clamp_max"))),
    Op("SETWIN", 0x03, "load", "Set the convolution-window geometry used by LOADWIN.", (
        Field("in_h", 12, "input height", lo=1),
        Field("in_w", 12, "input width", lo=1),
        Field("in_c", 14, "channels per input pixel in DRAM (pixel stride, elements)", lo=1),
        Field("k_h", 5, "kernel height", lo=1),
        Field("k_w", 5, "kernel width", lo=1),
        Field("stride_h", 4, "vertical stride", lo=1, default=1),
        Field("stride_w", 4, "horizontal stride", lo=1, default=1),
        Field("dil_h", 4, "vertical dilation", lo=1, default=1),
        Field("dil_w", 4, "horizontal dilation", lo=1, default=1),
        Field("pad_top", 5, "rows of padding above the input", default=0),
        Field("pad_left", 5, "columns of padding left of the input", default=0),
        Field("out_w", 12, "output width (maps a pixel index to its row and column)", lo=1),
        Field("pad_value", 17, "value read outside the input (the input zero point for conv)",
              kind="s", default=0),
        Field("out_h", 12, "output rows per image: a pixel index past out_h * out_w moves to the next image, "
              "in_h * in_w * in_c elements further (0: a single image)", default=0),
    )),
    Op("LOAD", 0x04, "load", "DMA a 2-D strided block DRAM -> buffer, unpacking elements to words.", (
        _buf("buf", "destination buffer"),
        _dtype("dtype", "element type in DRAM", MEM_DTYPES),
        DRAM, SRAM,
        _size("x", 14, "contiguous elements per row"),
        _size("y", 12, "rows"),
        Field("y_stride", 24, "DRAM elements from one row to the next"),
    ), checks=(_tokens_for_unit(_fixed_unit("load")),),
       spans=(_reads("DRAM", "dram", _STRIDED), _writes("buf", "sram", "x * y"))),
    Op("LOADWIN", 0x05, "load",
       "DMA convolution windows (im2col rows) DRAM -> buffer, with padding from SETWIN.", (
        _buf("buf", "destination buffer"),
        _dtype("dtype", "element type in DRAM", MEM_DTYPES),
        Field("dram", 32, "DRAM byte address of the input image (element y=0, x=0, c=0)"),
        SRAM,
        Field("pix0", 20, "index of the first output pixel (row-major over out_w)"),
        _size("npix", 12, "output pixels (rows of the gathered matrix)"),
        Field("c0", 14, "first input channel"),
        _size("nc", 12, "channels per window position"),
    ), checks=(_tokens_for_unit(_fixed_unit("load")),),
       spans=(_reads("DRAM", "dram", "bytes(dtype, in_h * in_w * in_c * images(pix0 + npix, out_h * out_w))"),
              _writes("buf", "sram", "npix * k_h * k_w * nc")),
       state_checks=(_needs_window, _channels_in_pixel)),
    Op("LOADW", 0x06, "load", "Fetch weights DRAM -> WGT, decompressing the given format.", (
        Field("sram", 20, "WGT word address of the first weight"),
        DRAM,
        Field("count", 20, "weights produced", lo=1),
        Field("format", 2, "compression format", kind="e", options=WEIGHT_FORMATS, default="dense"),
        _dtype("dtype", "weight element type", MAC_DTYPES),
        Field("param", 3, "codebook: index bits k; rle: run-length bits (else 1)", lo=1, default=1),
        Field("zero", 17, "value of the elements bitmask/rle leave out", kind="s", default=0),
    ), checks=(_tokens_for_unit(_fixed_unit("load")), _codebook_bits),
       spans=(_reads("DRAM", "dram", "bytes(dtype, count) if format == 'dense' else 1"),
              _writes("WGT", "sram", "count"))),
    Op("STORE", 0x07, "store", "DMA a 2-D strided block buffer -> DRAM, packing to the element type.", (
        _buf("buf", "source buffer"),
        _dtype("dtype", "element type in DRAM (the low bits of each word are written)", MEM_DTYPES),
        DRAM, SRAM,
        _size("x", 14, "contiguous elements per row"),
        _size("y", 12, "rows"),
        Field("y_stride", 24, "DRAM elements from one row to the next"),
    ), checks=(_tokens_for_unit(_fixed_unit("store")),),
       spans=(_reads("buf", "sram", "x * y"), _writes("DRAM", "dram", _STRIDED))),
    Op("GEMM", 0x08, "compute", "ACC[m,n] (+)= sum_k (INP[m,k] - a_zp) * (WGT[n,k] - w_zp).", (
        _addr("inp", "INP address of the m x k activation tile (row-major)"),
        _addr("wgt", "WGT address of the n x k weight tile (row-major)"),
        _addr("acc", "ACC address of the m x n result tile (row-major)"),
        M_ROWS,
        _size("n", 12, "columns (output channels)"),
        _size("k", 14, "reduction length"),
        ACCUMULATE,
    ), spans=(_reads("INP", "inp", "m * k"), _reads("WGT", "wgt", "n * k"), _reads("ACC", "acc", "m * n * accumulate"),
              _writes("ACC", "acc", "m * n"))),
    Op("DWCONV", 0x09, "compute",
       "Depthwise: ACC[m,c] (+)= sum_r (INP[m,r,c] - a_zp) * (WGT[r,c] - w_zp).", (
        _addr("inp", "INP address of the m x r x c gathered windows"),
        _addr("wgt", "WGT address of the r x c weights"),
        _addr("acc", "ACC address of the m x c result"),
        M_ROWS, WINDOW, CHANNELS, ACCUMULATE,
    ), spans=(_reads("INP", "inp", "m * r * c"), _reads("WGT", "wgt", "r * c"), _reads("ACC", "acc", "m * c * accumulate"),
              _writes("ACC", "acc", "m * c"))),
    Op("REQUANT", 0x0A, "compute",
       "Per-channel requantization ACC -> buffer: bias, scale, zero point, clamp.", (
        _addr("src", "ACC address of the m x n accumulators"),
        _buf("dst_buf", "destination buffer", ("INP", "OUT")),
        _addr("dst", "destination address of the m x n outputs"),
        _addr("prm", "PRM address of the table: bias[n], multiplier or fp32 scale[n], shift[n]"),
        M_ROWS,
        _size("n", 12, "channels"),
    ), spans=(_reads("ACC", "src", "m * n"), _reads("PRM", "prm", "3 * n"), _writes("dst_buf", "dst", "m * n"))),
    Op("VADD", 0x0B, "compute", "Elementwise add with per-input rescale (residual add).",
       _two_operands("PRM address of the 9-word add record"), checks=(_ordered("bn", "n"),),
       spans=_BROADCAST + (_reads("PRM", "prm", str(ADD_RECORD_WORDS)),)),
    Op("VMAX", 0x0C, "compute", "Elementwise maximum of two vectors.", (
        _buf("a_buf", "first input buffer"), _addr("a", "first input address"),
        _buf("b_buf", "second input buffer"), _addr("b", "second input address"),
        _buf("dst_buf", "destination buffer"), _addr("dst", "destination address"),
        Field("n", 20, "elements", lo=1),
    ), spans=_ELEMENTWISE),
    Op("VMIN", 0x0D, "compute", "Elementwise minimum of two vectors.", (
        _buf("a_buf", "first input buffer"), _addr("a", "first input address"),
        _buf("b_buf", "second input buffer"), _addr("b", "second input address"),
        _buf("dst_buf", "destination buffer"), _addr("dst", "destination address"),
        Field("n", 20, "elements", lo=1),
    ), spans=_ELEMENTWISE),
    Op("MAXPOOL", 0x0E, "compute", "dst[m,c] = max_r src[m,r,c] over gathered windows.", (
        _buf("src_buf", "source buffer"), _addr("src", "source address (m x r x c)"),
        _buf("dst_buf", "destination buffer"), _addr("dst", "destination address (m x c)"),
        M_ROWS, WINDOW, CHANNELS,
    ), spans=_POOL),
    Op("AVGPOOL", 0x0F, "compute",
       "dst[m,c] = round(sum_r src[m,r,c] / divisor), clamped: exact integer division rounded half away "
       "from zero (TFLite reference) or, with even=1, half to even (ONNX).", (
        _buf("src_buf", "source buffer"), _addr("src", "source address (m x r x c)"),
        _buf("dst_buf", "destination buffer"), _addr("dst", "destination address (m x c)"),
        M_ROWS, WINDOW, CHANNELS,
        Field("divisor", 10, "divisor (window elements counted)", lo=1),
        _flag("even", "1: ties round to even; 0: away from zero"),
    ), spans=_POOL),
    Op("SUMPOOL", 0x10, "compute", "ACC[m,c] (+)= sum_r (src[m,r,c] - a_zp): window sums for requant.", (
        _buf("src_buf", "source buffer"), _addr("src", "source address (m x r x c)"),
        _addr("acc", "ACC address (m x c)"),
        M_ROWS, WINDOW, CHANNELS, ACCUMULATE,
    ), spans=(_reads("src_buf", "src", "m * r * c"), _reads("ACC", "acc", "m * c * accumulate"),
              _writes("ACC", "acc", "m * c"))),
    Op("SHR", 0x11, "compute", "Arithmetic shift right of words, optionally rounding half up.", (
        _buf("src_buf", "source buffer"), _addr("src", "source address"),
        _buf("dst_buf", "destination buffer"), _addr("dst", "destination address"),
        Field("n", 20, "elements", lo=1),
        Field("shift", 6, "shift amount (0..63)"),
        _flag("round", "1: add 2^(shift-1) before shifting"),
    ), spans=_UNARY),
    Op("VLUT", 0x12, "compute",
       "Table lookup: dst[j] = PRM[prm + (src[j] & 255)] (requantize or map an 8-bit tensor).", (
        _buf("src_buf", "source buffer"), _addr("src", "source address"),
        _buf("dst_buf", "destination buffer"), _addr("dst", "destination address"),
        Field("n", 20, "elements", lo=1),
        _addr("prm", "PRM address of the 256-word table, indexed by the low 8 bits of each input"),
    ), spans=_UNARY + (_reads("PRM", "prm", str(LUT_WORDS)),)),
    Op("VMUL", 0x13, "compute", "Elementwise multiply with rescale: (a - a_zp) * (b - b_zp) requantized.",
       _two_operands("PRM address of the 4-word mul record"), checks=(_ordered("bn", "n"),),
       spans=_BROADCAST + (_reads("PRM", "prm", str(MUL_RECORD_WORDS)),)),
    Op("HOST", 0x14, "compute",
       "Hand DRAM to the host for host step `call` (an op the chip does not compute); the chip resumes "
       "with the next instruction once the host has written its output. Timing: a 1-cycle compute "
       "instruction; the host's own time is not chip cycles.", (
        Field("call", 16, "host step number (CompiledModel.host_steps)"),
    )),
)

BY_MNEMONIC: dict[str, Op] = {op.mnemonic: op for op in OPS}
BY_OPCODE: dict[int, Op] = {op.opcode: op for op in OPS}


def _validate_table() -> None:
    assert len(BY_MNEMONIC) == len(OPS), "duplicate mnemonic"
    assert len(BY_OPCODE) == len(OPS), "duplicate opcode"
    for op in OPS:
        assert 0 <= op.opcode < (1 << OPCODE_BITS), op.mnemonic
        assert op.unit in UNITS or op.unit == "any", op.mnemonic
        assert HEADER_BITS + op.field_bits <= WORD_BITS, f"{op.mnemonic} needs {HEADER_BITS + op.field_bits} bits"
        names = [f.name for f in op.fields]
        assert len(set(names)) == len(names), op.mnemonic
        assert not set(names) & set(TOKEN_NAMES), op.mnemonic
        window = {f.name for f in BY_MNEMONIC["SETWIN"].fields}
        for sp in op.spans:
            assert sp.access in ("read", "write"), op.mnemonic
            assert sp.at in names and (sp.buf in BUFFERS + ("DRAM",) or sp.buf in names), (op.mnemonic, sp)
            used = set(compile(sp.size, "<span>", "eval").co_names)
            assert used <= set(names) | window | {"bytes", "images"}, (op.mnemonic, sp.size, used)


_validate_table()
