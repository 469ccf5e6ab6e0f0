"""Golden semantics: what each instruction does to the machine state, in plain numpy.

The machine state is DRAM (bytes), five on-chip buffers of words and two register sets:

* ``INP``, ``WGT``, ``OUT``, ``PRM``: 32-bit words (a write keeps the low 32 bits, signed);
* ``ACC``: 64-bit words;
* ``config``: the fields of the last CONFIG (reset values: :data:`RESET_CONFIG`);
* ``window``: the fields of the last SETWIN (none at reset: LOADWIN needs one).

Instructions execute in program order; every operand is read before any result is written, and
every address is checked before anything is written, so an :class:`ExecError` leaves the state
unchanged.  Dependency tokens do not change values, only timing.  Each golden function below is
named after its instruction (``gemm`` for GEMM) and its kernel in ``kernels/`` carries the same name.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Iterable, Optional, Union

import numpy as np

from .asm import format_instruction
from .encoding import Instruction, decode_program
from .errors import ExecError
from .quant import qrange
from .requant import (add_fp32, add_shared, fp64_from_words, mul_fp32, multiply_by_quantized_multiplier, requant_fp32,
                      requant_fp64_away, wrap)
from .spans import outside, state_fault
from .table import ADD_RECORD_WORDS, BUFFERS, DTYPES, LUT_WORDS, MUL_RECORD_WORDS
from .weights import WeightStreamError, decode_weights

WORD_BITS = {"INP": 32, "WGT": 32, "ACC": 64, "OUT": 32, "PRM": 32}
DEFAULT_SIZES = {"INP": 1 << 16, "WGT": 1 << 16, "ACC": 1 << 14, "OUT": 1 << 16, "PRM": 1 << 12}
RESET_CONFIG = Instruction("CONFIG", a="s8", w="s8", o="s8", clamp_min=-(1 << 16),
                           clamp_max=(1 << 16) - 1).args


class _Fault(Exception):
    """Raised inside a golden function; :func:`step` turns it into an ExecError."""


@dataclass
class MachineState:
    """DRAM bytes, buffer words and the CONFIG / SETWIN registers."""

    dram: np.ndarray
    buffers: dict[str, np.ndarray]
    config: dict = field(default_factory=lambda: dict(RESET_CONFIG))
    window: Optional[dict] = None
    halted: bool = False
    #: runs HOST call k on the DRAM bytes (None: a HOST instruction faults)
    host: Optional[Callable[[int, np.ndarray], None]] = None

    @classmethod
    def create(cls, dram: Union[int, bytes, np.ndarray] = 1 << 20,
               sizes: Optional[dict[str, int]] = None) -> "MachineState":
        """A zeroed machine: ``dram`` is a size in bytes or initial contents."""
        if isinstance(dram, (int, np.integer)):
            image = np.zeros(int(dram), dtype=np.uint8)
        else:
            image = np.frombuffer(bytes(dram), dtype=np.uint8).copy() if isinstance(dram, (bytes, bytearray)) \
                else np.array(dram, dtype=np.uint8).ravel()
        sizes = {**DEFAULT_SIZES, **(sizes or {})}
        return cls(image, {b: np.zeros(sizes[b], dtype=np.int64) for b in BUFFERS})

    def copy(self) -> "MachineState":
        return MachineState(self.dram.copy(), {k: v.copy() for k, v in self.buffers.items()},
                            dict(self.config), dict(self.window) if self.window else None, self.halted, self.host)


# --------------------------------------------------------------------------- state accessors
def read(s: MachineState, buf: str, addr: int, n: int) -> np.ndarray:
    """Words ``addr .. addr+n-1`` of a buffer (a copy)."""
    size = s.buffers[buf].size
    if addr < 0 or addr + n > size:
        raise _Fault(f"{buf}[{addr}:{addr + n}] is outside the buffer of {size} words")
    return s.buffers[buf][addr:addr + n].copy()


def check_span(s: MachineState, buf: str, addr: int, n: int) -> None:
    """Fault unless words ``addr .. addr+n-1`` lie inside the buffer."""
    size = s.buffers[buf].size
    if addr < 0 or addr + n > size:
        raise _Fault(f"{buf}[{addr}:{addr + n}] is outside the buffer of {size} words")


def write(s: MachineState, buf: str, addr: int, values: np.ndarray) -> None:
    """Store values (wrapped to the buffer's word width) at ``addr``."""
    values = np.asarray(values, dtype=np.int64).ravel()
    check_span(s, buf, addr, values.size)
    s.buffers[buf][addr:addr + values.size] = wrap(values, WORD_BITS[buf])


def operand(x: np.ndarray, dtype: str) -> np.ndarray:
    """A word as the MAC array sees it: its low ``bits`` bits, sign- or zero-extended."""
    bits, signed = DTYPES[dtype]
    return wrap(x, bits) if signed else np.asarray(x, dtype=np.int64) & ((1 << bits) - 1)


def _dram_positions(s: MachineState, addr: int, elems: np.ndarray, bits: int) -> tuple[np.ndarray, np.ndarray]:
    bitpos = np.int64(addr) * 8 + elems.astype(np.int64) * bits
    byte = bitpos // 8
    nbytes = (bits + 7) // 8
    if elems.size and (byte.min() < 0 or byte.max() + nbytes > s.dram.size):
        raise _Fault(f"DRAM bytes {int(byte.min())}..{int(byte.max()) + nbytes - 1} "
                     f"are outside DRAM of {s.dram.size} bytes")
    return byte, bitpos % 8


def dram_read(s: MachineState, addr: int, elems: np.ndarray, dtype: str) -> np.ndarray:
    """Elements ``elems`` (indices from ``addr``) of a packed DRAM tensor of type ``dtype``."""
    bits, signed = DTYPES[dtype]
    byte, shift = _dram_positions(s, addr, elems, bits)
    v = np.zeros(elems.shape, dtype=np.int64)
    for j in range((bits + 7) // 8):
        v |= s.dram[byte + j].astype(np.int64) << (8 * j)
    v = (v >> shift) & ((1 << bits) - 1)
    return wrap(v, bits) if signed else v


def dram_write(s: MachineState, addr: int, elems: np.ndarray, values: np.ndarray, dtype: str) -> None:
    """Write the low bits of ``values`` as elements of a packed DRAM tensor (later ones win)."""
    bits, _ = DTYPES[dtype]
    byte, shift = _dram_positions(s, addr, elems, bits)
    v = np.asarray(values, dtype=np.int64) & ((1 << bits) - 1)
    if bits == 4:
        for nib in (0, 4):
            sel = shift == nib
            b = byte[sel]
            s.dram[b] = (s.dram[b] & (0xF0 >> nib)) | (v[sel] << nib).astype(np.uint8)
        return
    for j in range(bits // 8):
        s.dram[byte + j] = ((v >> (8 * j)) & 0xFF).astype(np.uint8)


def _out_range(cfg: dict) -> tuple[int, int]:
    return qrange(cfg["o"])


def _clamp_output(y: np.ndarray, cfg: dict) -> np.ndarray:
    """The activation clamp of CONFIG, then saturation to the output type."""
    lo, hi = _out_range(cfg)
    return np.clip(np.clip(y, cfg["clamp_min"], cfg["clamp_max"]), lo, hi)


def _as_float32(words: np.ndarray) -> np.ndarray:
    return (np.asarray(words, dtype=np.int64) & 0xFFFFFFFF).astype(np.uint32).view(np.float32)


def _windows(s: MachineState, buf: str, addr: int, m: int, r: int, c: int) -> np.ndarray:
    return read(s, buf, addr, m * r * c).reshape(m, r, c)


# --------------------------------------------------------------------------- golden functions
def nop(s: MachineState, i: Instruction) -> None:
    """NOP: no state change."""


def host(s: MachineState, i: Instruction) -> None:
    """HOST: the host computes step ``call`` on DRAM (every earlier instruction has finished)."""
    if s.host is None:
        raise _Fault(f"HOST call {i.call}: no host is attached to run it")
    dram = s.dram.copy()
    s.host(i.call, dram)
    s.dram[:] = dram


def halt(s: MachineState, i: Instruction) -> None:
    """HALT: stop."""
    s.halted = True


def config(s: MachineState, i: Instruction) -> None:
    """CONFIG: latch the layer state."""
    s.config = {k: v for k, v in i.args.items() if k in RESET_CONFIG}


def setwin(s: MachineState, i: Instruction) -> None:
    """SETWIN: latch the window geometry."""
    s.window = {f.name: i.args[f.name] for f in i.spec.fields}


def load(s: MachineState, i: Instruction) -> None:
    """LOAD: buf[sram + y*x + j] = dram element (y*y_stride + j), j < x, y < rows."""
    elems = (np.arange(i.y)[:, None] * i.y_stride + np.arange(i.x)[None, :]).ravel()
    check_span(s, i.buf, i.sram, elems.size)
    write(s, i.buf, i.sram, dram_read(s, i.dram, elems, i.dtype))


def loadwin(s: MachineState, i: Instruction) -> None:
    """LOADWIN: gathered windows, buf[sram + ((p*k_h + ky)*k_w + kx)*nc + c]; pad outside; with out_h,
    pixel p of image p // (out_h*out_w) reads that image."""
    w = s.window
    if w is None:
        raise _Fault("LOADWIN before any SETWIN")
    if i.c0 + i.nc > w["in_c"]:
        raise _Fault(f"channels {i.c0}..{i.c0 + i.nc - 1} exceed in_c={w['in_c']}")
    pix = i.pix0 + np.arange(i.npix)
    per_image = w["out_h"] * w["out_w"]
    image, pix = (pix // per_image, pix % per_image) if per_image else (np.zeros_like(pix), pix)
    oy, ox = pix // w["out_w"], pix % w["out_w"]
    ky, kx = np.arange(w["k_h"]), np.arange(w["k_w"])
    iy = (oy * w["stride_h"] - w["pad_top"])[:, None, None] + (ky * w["dil_h"])[None, :, None]
    ix = (ox * w["stride_w"] - w["pad_left"])[:, None, None] + (kx * w["dil_w"])[None, None, :]
    iy, ix = np.broadcast_arrays(iy, ix)  # (npix, k_h, k_w)
    inside = (iy >= 0) & (iy < w["in_h"]) & (ix >= 0) & (ix < w["in_w"])
    chan = i.c0 + np.arange(i.nc)
    first = image * (w["in_h"] * w["in_w"] * w["in_c"])  # each image's first element
    elems = (first[:, None, None] + (iy * w["in_w"] + ix) * w["in_c"])[..., None] + chan  # (npix, k_h, k_w, nc)
    total = elems.size
    check_span(s, i.buf, i.sram, total)
    vals = np.full(elems.shape, w["pad_value"], dtype=np.int64)
    mask = np.broadcast_to(inside[..., None], elems.shape)
    vals[mask] = dram_read(s, i.dram, elems[mask], i.dtype)
    write(s, i.buf, i.sram, vals)


def loadw(s: MachineState, i: Instruction) -> None:
    """LOADW: WGT[sram + j] = weight j decoded from the compressed stream (isa.weights)."""
    bits, signed = DTYPES[i.dtype]
    check_span(s, "WGT", i.sram, i.count)
    try:
        vals, _ = decode_weights(s.dram, i.dram, i.count, i.format, bits, signed, i.param, i.zero)
    except WeightStreamError as e:
        raise _Fault(str(e)) from None
    write(s, "WGT", i.sram, vals)


def store(s: MachineState, i: Instruction) -> None:
    """STORE: dram element (y*y_stride + j) = low bits of buf[sram + y*x + j]."""
    vals = read(s, i.buf, i.sram, i.x * i.y)
    elems = (np.arange(i.y)[:, None] * i.y_stride + np.arange(i.x)[None, :]).ravel()
    _dram_positions(s, i.dram, elems, DTYPES[i.dtype][0])
    dram_write(s, i.dram, elems, vals, i.dtype)


def _accumulate(s: MachineState, i: Instruction, addr: int, result: np.ndarray) -> None:
    bits = s.config["acc_bits"]
    if i.accumulate:
        result = result + read(s, "ACC", addr, result.size).reshape(result.shape)
    write(s, "ACC", addr, wrap(result, bits))


def gemm(s: MachineState, i: Instruction) -> None:
    """GEMM: ACC[m,n] (+)= sum_k (a[m,k] - a_zp) * (w[n,k] - w_zp), wrapped to acc_bits."""
    cfg = s.config
    a = operand(read(s, "INP", i.inp, i.m * i.k), cfg["a"]).reshape(i.m, i.k) - cfg["a_zp"]
    w = operand(read(s, "WGT", i.wgt, i.n * i.k), cfg["w"]).reshape(i.n, i.k) - cfg["w_zp"]
    check_span(s, "ACC", i.acc, i.m * i.n)
    _accumulate(s, i, i.acc, a @ w.T)


def dwconv(s: MachineState, i: Instruction) -> None:
    """DWCONV: ACC[m,c] (+)= sum_r (a[m,r,c] - a_zp) * (w[r,c] - w_zp)."""
    cfg = s.config
    a = operand(_windows(s, "INP", i.inp, i.m, i.r, i.c), cfg["a"]) - cfg["a_zp"]
    w = operand(read(s, "WGT", i.wgt, i.r * i.c), cfg["w"]).reshape(i.r, i.c) - cfg["w_zp"]
    check_span(s, "ACC", i.acc, i.m * i.c)
    _accumulate(s, i, i.acc, (a * w[None]).sum(axis=1))


def requant(s: MachineState, i: Instruction) -> None:
    """REQUANT: dst[m,n] = clamp(requantize(ACC[m,n] + bias[n]) + o_zp), mode from CONFIG."""
    cfg = s.config
    acc = read(s, "ACC", i.src, i.m * i.n).reshape(i.m, i.n)
    prm = read(s, "PRM", i.prm, 3 * i.n).reshape(3, i.n)
    check_span(s, i.dst_buf, i.dst, i.m * i.n)
    bias, mult, shift = wrap(prm[0], 32), wrap(prm[1], 32), wrap(prm[2], 32)
    lo, hi = _out_range(cfg)
    x = wrap(acc + bias, cfg["acc_bits"])
    if cfg["mode"] == "fixed_shared":
        raise _Fault("REQUANT has no requant mode fixed_shared (a VADD mode)")
    if cfg["mode"] == "fp32":
        y = requant_fp32(x, _as_float32(prm[1]), cfg["o_zp"], lo, hi)
    elif cfg["mode"] == "fp64_away":
        m = fp64_from_words(mult, shift)
        bad = ~(np.isfinite(m) & (m >= 0))
        if bad.any():
            raise _Fault(f"fp64 multiplier {float(m[bad][0])} is not finite and non-negative")
        y = wrap(requant_fp64_away(x, m) + cfg["o_zp"], 32)
    else:
        wide = cfg["acc_bits"] > 32
        _check_multipliers(mult, shift, wide)
        y = multiply_by_quantized_multiplier(x, mult, shift, single_rounding=cfg["mode"] == "fixed_single",
                                             wide=wide, shift_up=cfg["mode"] == "fixed_double_up")
        y = wrap(y + cfg["o_zp"], 32)
    write(s, i.dst_buf, i.dst, _clamp_output(y, cfg))


VECTOR_MODES = ("fp32", "fixed_double", "fixed_single")


def _vector_mode(cfg: dict, op: str) -> None:
    """VMUL has the fp32 and the two TFLite fixed-point modes only; VADD also fixed_shared."""
    modes = VECTOR_MODES + (("fixed_shared",) if op == "VADD" else ())
    if cfg["mode"] not in modes:
        raise _Fault(f"{op} has no requant mode {cfg['mode']} (only {', '.join(modes)})")


def _check_multipliers(mult: np.ndarray, shift: np.ndarray, wide: bool) -> None:
    top = 14 if wide else 30
    if (mult < 0).any():
        raise _Fault(f"negative fixed-point multiplier {int(mult[mult < 0][0])}")
    bad = (shift < -31) | (shift > top)
    if bad.any():
        raise _Fault(f"shift {int(shift[bad][0])} outside -31..{top}")


def _broadcast_operands(s: MachineState, i: Instruction) -> tuple[np.ndarray, np.ndarray]:
    """VADD's and VMUL's a (n words) and b: the j-th b operand is b[j % bn], or b[j] when bn == 0."""
    a = read(s, i.a_buf, i.a, i.n)
    b = read(s, i.b_buf, i.b, i.bn or i.n)
    return a, b[np.arange(i.n) % b.size]


def vadd(s: MachineState, i: Instruction) -> None:
    """VADD: dst = clamp(rescale(a - a_zp) + rescale(b - b_zp) + o_zp); b[j % bn] when bn > 0;
    record at PRM[prm].

    fp32 mode is ONNX Runtime's QLinearAdd (isa.requant.add_fp32): a_mult and b_mult hold the
    float32 ratios s_a/s_o and s_b/s_o; fixed_double / fixed_single follow TFLite's AddElementwise;
    fixed_shared is XNNPACK's add (isa.requant.add_shared: a_mult, b_mult at the shift in o_shift).
    """
    cfg = s.config
    a, b = _broadcast_operands(s, i)
    rec = wrap(read(s, "PRM", i.prm, ADD_RECORD_WORDS), 32)
    check_span(s, i.dst_buf, i.dst, i.n)
    a_zp, b_zp, a_m, a_sh, b_m, b_sh, o_m, o_sh, left = (int(v) for v in rec)
    _vector_mode(cfg, "VADD")
    lo, hi = _out_range(cfg)
    if cfg["mode"] == "fp32":
        y = add_fp32(a, b, _as_float32(rec[2]), _as_float32(rec[4]), a_zp, b_zp, cfg["o_zp"], lo, hi)
    elif cfg["mode"] == "fixed_shared":  # XNNPACK: a_m, b_m at the shared shift o_sh (1..31)
        if a_m < 0 or b_m < 0 or not 1 <= o_sh <= 31:
            raise _Fault(f"fixed_shared multipliers {a_m}, {b_m} must be non-negative, shift {o_sh} in 1..31")
        y = wrap(add_shared(a - a_zp, b - b_zp, a_m, b_m, o_sh) + cfg["o_zp"], 32)
    else:
        if not 0 <= left <= 30:
            raise _Fault(f"left_shift {left} outside 0..30")
        _check_multipliers(np.array([a_m, b_m, o_m]), np.array([a_sh, b_sh, o_sh]), False)
        single = cfg["mode"] == "fixed_single"
        sa = multiply_by_quantized_multiplier(wrap((a - a_zp) << left, 32), a_m, a_sh, single_rounding=single)
        sb = multiply_by_quantized_multiplier(wrap((b - b_zp) << left, 32), b_m, b_sh, single_rounding=single)
        y = multiply_by_quantized_multiplier(wrap(sa + sb, 32), o_m, o_sh, single_rounding=single)
        y = wrap(y + cfg["o_zp"], 32)
    write(s, i.dst_buf, i.dst, _clamp_output(y, cfg))


def vmul(s: MachineState, i: Instruction) -> None:
    """VMUL: dst = clamp(rescale((a - a_zp) * (b - b_zp)) + o_zp); b[j % bn] when bn > 0;
    record at PRM[prm]: a_zp, b_zp, mult, shift.

    fp32 mode is ONNX Runtime's QLinearMul (isa.requant.mul_fp32): mult holds the float32 ratio
    s_a*s_b/s_o; fixed modes follow TFLite's MulElementwise: MultiplyByQuantizedMultiplier of the
    int32 product.
    """
    cfg = s.config
    a, b = _broadcast_operands(s, i)
    rec = wrap(read(s, "PRM", i.prm, MUL_RECORD_WORDS), 32)
    check_span(s, i.dst_buf, i.dst, i.n)
    a_zp, b_zp, mult, shift = (int(v) for v in rec)
    _vector_mode(cfg, "VMUL")
    lo, hi = _out_range(cfg)
    if cfg["mode"] == "fp32":
        y = mul_fp32(a, b, _as_float32(rec[2]), a_zp, b_zp, cfg["o_zp"], lo, hi)
    else:
        _check_multipliers(np.array([mult]), np.array([shift]), False)
        p = wrap((a - a_zp) * (b - b_zp), 32)
        y = multiply_by_quantized_multiplier(p, mult, shift, single_rounding=cfg["mode"] == "fixed_single")
        y = wrap(y + cfg["o_zp"], 32)
    write(s, i.dst_buf, i.dst, _clamp_output(y, cfg))


def _elementwise(fn: Callable[[np.ndarray, np.ndarray], np.ndarray]) -> Callable[[MachineState, Instruction], None]:
    def golden(s: MachineState, i: Instruction) -> None:
        a, b = read(s, i.a_buf, i.a, i.n), read(s, i.b_buf, i.b, i.n)
        check_span(s, i.dst_buf, i.dst, i.n)
        write(s, i.dst_buf, i.dst, fn(a, b))

    return golden


vmax = _elementwise(np.maximum)
vmax.__doc__ = "VMAX: dst[j] = max(a[j], b[j])."
vmin = _elementwise(np.minimum)
vmin.__doc__ = "VMIN: dst[j] = min(a[j], b[j])."


def maxpool(s: MachineState, i: Instruction) -> None:
    """MAXPOOL: dst[m,c] = max_r src[m,r,c]."""
    x = _windows(s, i.src_buf, i.src, i.m, i.r, i.c)
    check_span(s, i.dst_buf, i.dst, i.m * i.c)
    write(s, i.dst_buf, i.dst, x.max(axis=1))


def avgpool(s: MachineState, i: Instruction) -> None:
    """AVGPOOL: dst[m,c] = clamp(sum_r src / divisor), rounded half away from zero or half to even."""
    total = _windows(s, i.src_buf, i.src, i.m, i.r, i.c).sum(axis=1)
    check_span(s, i.dst_buf, i.dst, i.m * i.c)
    d = i.divisor
    if i.even:  # floor division, then the remainder decides; a tie goes to the even quotient
        q, rem = total // d, total % d
        q = q + ((2 * rem > d) | ((2 * rem == d) & (q % 2 == 1)))
    else:  # C: acc > 0 ? (acc + d/2) / d : (acc - d/2) / d, with truncating division.
        q = np.where(total > 0, (total + d // 2) // d, -((-total + d // 2) // d))
    write(s, i.dst_buf, i.dst, _clamp_output(q, s.config))


def sumpool(s: MachineState, i: Instruction) -> None:
    """SUMPOOL: ACC[m,c] (+)= sum_r (src[m,r,c] - a_zp), wrapped to acc_bits."""
    x = _windows(s, i.src_buf, i.src, i.m, i.r, i.c) - s.config["a_zp"]
    check_span(s, "ACC", i.acc, i.m * i.c)
    _accumulate(s, i, i.acc, x.sum(axis=1))


def shr(s: MachineState, i: Instruction) -> None:
    """SHR: dst[j] = src[j] >> shift (arithmetic), or (src[j] + 2^(shift-1)) >> shift if round."""
    x = read(s, i.src_buf, i.src, i.n)
    check_span(s, i.dst_buf, i.dst, i.n)
    if i.round and i.shift:
        x = x + (np.int64(1) << (i.shift - 1))
    write(s, i.dst_buf, i.dst, x >> i.shift)


def vlut(s: MachineState, i: Instruction) -> None:
    """VLUT: dst[j] = PRM[prm + (src[j] & 255)]; the code of an 8-bit (or 4-bit) element indexes
    the table, so one table holds any function of the element (e.g. dequantize, f, quantize)."""
    x = read(s, i.src_buf, i.src, i.n)
    table = read(s, "PRM", i.prm, LUT_WORDS)
    check_span(s, i.dst_buf, i.dst, i.n)
    write(s, i.dst_buf, i.dst, table[x & 255])


GOLDEN: dict[str, Callable[[MachineState, Instruction], None]] = {
    "NOP": nop, "HALT": halt, "CONFIG": config, "SETWIN": setwin, "LOAD": load, "LOADWIN": loadwin,
    "LOADW": loadw, "STORE": store, "GEMM": gemm, "DWCONV": dwconv, "REQUANT": requant, "VADD": vadd,
    "VMAX": vmax, "VMIN": vmin, "MAXPOOL": maxpool, "AVGPOOL": avgpool, "SUMPOOL": sumpool, "SHR": shr,
    "VLUT": vlut, "VMUL": vmul, "HOST": host,
}


def check_spans(s: MachineState, ins: Instruction) -> None:
    """The instruction's spans and state rules from the table (isa.spans), before it runs."""
    msg = state_fault(ins, s.window)
    if msg:
        raise _Fault(msg)
    b = outside(ins, s.window, {k: v.size for k, v in s.buffers.items()}, s.dram.size)
    if b is not None:
        where = f"DRAM bytes {b.start}..{b.end - 1}" if b.buf == "DRAM" else f"{b.buf}[{b.start}:{b.end}]"
        limit = f"DRAM of {s.dram.size} bytes" if b.buf == "DRAM" else f"the buffer of {s.buffers[b.buf].size} words"
        raise _Fault(f"{b.access}s {where}, outside {limit}")


def step(s: MachineState, ins: Instruction, index: int = 0) -> None:
    """Execute one instruction; on a fault raise :class:`ExecError` with ``s`` unchanged.

    The table's spans are checked first; every golden function then checks each address again
    through its accessors (so a wrong description in the table shows up as a disagreement between
    the chip and these semantics) and all its parameters, before its single write.
    """
    try:
        check_spans(s, ins)
        GOLDEN[ins.op](s, ins)
    except _Fault as e:
        raise ExecError(index, format_instruction(ins), str(e)) from None


def run(program: Union[np.ndarray, Iterable[Instruction]], state: MachineState,
        max_steps: Optional[int] = None) -> MachineState:
    """Run a program (word array or instructions) in order until HALT or its end."""
    instructions = decode_program(program) if isinstance(program, np.ndarray) else list(program)
    for index, ins in enumerate(instructions):
        if max_steps is not None and index >= max_steps:
            break
        step(state, ins, index)
        if state.halted:
            break
    return state
