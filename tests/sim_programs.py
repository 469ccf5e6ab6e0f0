"""Random programs for a small chip, from a numpy generator (fast enough for ten thousand per run):
mostly in-bounds instructions of every kind, so that they run and their values can be compared
with the golden semantics; ``mutate`` then pushes one span of one instruction just past its
buffer or DRAM, and ``random_instruction`` draws any valid encoding."""

from __future__ import annotations

from typing import Optional

import numpy as np
from hypothesis import strategies as st

from accelsim.chip import ChipConfig
from accelsim.compiler.weights import encode_best
from isa import Instruction
from isa.spans import blocks, span_size
from isa.table import BUFFERS, MAC_DTYPES, MEM_DTYPES, OPS, REQUANT_MODES, TOKEN_NAMES

SMALL_CHIP = ChipConfig().replace(
    buffers={"inp_kib": 2, "wgt_kib": 2, "acc_kib": 4, "out_kib": 2, "prm_kib": 1},
    dram={"size_mib": 1, "latency": 20, "bandwidth": 8})
SIZES = SMALL_CHIP.buffer_words()
DRAM = SMALL_CHIP.dram_bytes()
DATA_BYTES = 1 << 16  # random data lives in the first 64 KiB of DRAM
KINDS = ("CONFIG", "LOAD", "STORE", "GEMM", "REQUANT", "LOADW", "LOADWIN", "VADD", "VMAX", "POOL", "SHR", "DWCONV",
         "VLUT", "VMUL")


def _range(dtype: str) -> tuple[int, int]:
    bits = int(dtype[1:])
    return (-(1 << (bits - 1)), (1 << (bits - 1)) - 1) if dtype[0] == "s" else (0, (1 << bits) - 1)


class _Gen:
    """One program being drawn: the generator, the DRAM image and the operand types."""

    def __init__(self, rng: np.random.Generator) -> None:
        self.rng = rng
        self.image = rng.integers(0, 256, DATA_BYTES).astype(np.uint8)
        self.a, self.w = self.pick(MAC_DTYPES), self.pick(MAC_DTYPES)

    def pick(self, options):
        return options[int(self.rng.integers(len(options)))]

    def int(self, lo: int, hi: int) -> int:
        return int(self.rng.integers(lo, hi + 1))

    def small(self, hi: int = 40) -> int:
        return self.int(1, hi)

    def addr(self, buf: str, n: int) -> int:
        top = max(0, SIZES[buf] - n)
        return top if self.rng.random() < 0.1 else self.int(0, top)  # the last fitting address, often

    def place(self, at: int, data: np.ndarray) -> None:
        if at + data.size > self.image.size:
            self.image = np.concatenate([self.image, np.zeros(at + data.size - self.image.size, np.uint8)])
        self.image[at:at + data.size] = data

    # ---- one instruction (or two) of each kind
    def mode(self) -> str:
        """A requant mode; fixed_shared (VADD's alone, a fault in REQUANT and VMUL) one time in ten."""
        return "fixed_shared" if self.int(0, 9) == 0 else self.pick([m for m in REQUANT_MODES if m != "fixed_shared"])

    def config(self) -> list[Instruction]:
        o = self.pick(MAC_DTYPES)
        lo, hi = _range(o)
        return [Instruction("CONFIG", a=self.a, w=self.w, o=o, acc_bits=self.pick([32, 16, 48, 24]),
                            mode=self.mode(), a_zp=self.int(*_range(self.a)) // 4,
                            w_zp=self.int(*_range(self.w)) // 4, o_zp=self.int(lo, hi) // 4,
                            clamp_min=lo, clamp_max=hi)]

    def load_store(self, kind: str) -> list[Instruction]:
        buf, dtype = self.pick(BUFFERS), self.pick(MEM_DTYPES)
        x, y = self.small(), self.int(1, 6)
        return [Instruction(kind, buf=buf, dtype=dtype, dram=self.int(0, DATA_BYTES - 2000), sram=self.addr(buf, x * y),
                            x=x, y=y, y_stride=self.int(0, 60))]

    def gemm(self) -> list[Instruction]:
        m, n, k = self.small(20), self.small(20), self.small(40)
        return [Instruction("GEMM", inp=self.addr("INP", m * k), wgt=self.addr("WGT", n * k), acc=self.addr("ACC", m * n),
                            m=m, n=n, k=k, accumulate=self.int(0, 1))]

    def dwconv(self) -> list[Instruction]:
        m, r, c = self.small(10), self.small(9), self.small(16)
        return [Instruction("DWCONV", inp=self.addr("INP", m * r * c), wgt=self.addr("WGT", r * c),
                            acc=self.addr("ACC", m * c), m=m, r=r, c=c, accumulate=self.int(0, 1))]

    def requant(self) -> list[Instruction]:
        m, n = self.small(20), self.small(20)
        prm = self.addr("PRM", 3 * n)
        dst_buf = self.pick(["INP", "OUT"])
        # a parameter table the fixed modes accept: bias, M0 in [2^30, 2^31), shift in [-20, 0]
        table = np.concatenate([self.rng.integers(-1000, 1000, n), self.rng.integers(1 << 30, 1 << 31, n),
                                self.rng.integers(-20, 1, n)]).astype(np.int32)
        at = self.int(DATA_BYTES, DATA_BYTES + 4000) & ~3
        self.place(at, table.view(np.uint8))
        return [Instruction("LOAD", buf="PRM", dtype="s32", dram=at, sram=prm, x=3 * n, y=1, y_stride=0),
                Instruction("REQUANT", src=self.addr("ACC", m * n), dst_buf=dst_buf, dst=self.addr(dst_buf, m * n),
                            prm=prm, m=m, n=n)]

    def loadw(self) -> list[Instruction]:
        dtype = self.pick(MAC_DTYPES)
        lo, hi = _range(dtype)
        count = self.small(300)
        vals = np.where(self.rng.random(count) < 0.6, 0, self.rng.integers(lo, hi + 1, count))
        stream = encode_best(vals, dtype)
        at = self.int(DATA_BYTES + 8000, DATA_BYTES + 20000)
        self.place(at, np.frombuffer(stream.data, np.uint8))
        return [Instruction("LOADW", sram=self.addr("WGT", count), dram=at, count=count, format=stream.format,
                            dtype=dtype, param=stream.param, zero=stream.zero)]

    def loadwin(self) -> list[Instruction]:
        in_h, in_w, in_c = self.small(6), self.small(6), self.small(8)
        k_h, k_w = self.small(3), self.small(3)
        nc, npix = self.small(in_c), self.small(12)
        return [Instruction("SETWIN", in_h=in_h, in_w=in_w, in_c=in_c, k_h=k_h, k_w=k_w, stride_h=self.small(2),
                            stride_w=self.small(2), dil_h=self.small(2), dil_w=self.small(2), pad_top=self.int(0, 2),
                            pad_left=self.int(0, 2), out_w=self.small(6), pad_value=self.int(-9, 9),
                            out_h=self.int(0, 3)),
                Instruction("LOADWIN", buf=self.pick(BUFFERS), dtype=self.pick(MEM_DTYPES), dram=self.int(0, 1000),
                            sram=0, pix0=self.int(0, 20), npix=npix, c0=self.int(0, in_c - nc), nc=nc)]

    def elementwise(self, kind: str) -> list[Instruction]:
        n = self.small(64)
        bn = self.pick([0, 0, 1, self.int(1, n)]) if kind in ("VADD", "VMUL") else 0
        bufs = [self.pick(BUFFERS) for _ in range(3)]
        fields = dict(a_buf=bufs[0], a=self.addr(bufs[0], n), b_buf=bufs[1], b=self.addr(bufs[1], bn or n),
                      dst_buf=bufs[2], dst=self.addr(bufs[2], n), n=n)
        if kind in ("VADD", "VMUL"):
            fields.update(bn=bn, prm=self.addr("PRM", 9 if kind == "VADD" else 4))
        return [Instruction(kind, **fields)]

    def pool(self) -> list[Instruction]:
        op = self.pick(["MAXPOOL", "AVGPOOL", "SUMPOOL"])
        m, r, c = self.small(8), self.small(9), self.small(8)
        src_buf = self.pick(BUFFERS)
        fields = dict(src_buf=src_buf, src=self.addr(src_buf, m * r * c), m=m, r=r, c=c)
        if op == "SUMPOOL":
            fields.update(acc=self.addr("ACC", m * c), accumulate=self.int(0, 1))
        else:
            dst_buf = self.pick(BUFFERS)
            fields.update(dst_buf=dst_buf, dst=self.addr(dst_buf, m * c))
            if op == "AVGPOOL":
                fields.update(divisor=self.small(20), even=self.int(0, 1))
        return [Instruction(op, **fields)]

    def unary(self, kind: str) -> list[Instruction]:
        n = self.small(64)
        src_buf, dst_buf = self.pick(BUFFERS), self.pick(BUFFERS)
        fields = dict(src_buf=src_buf, src=self.addr(src_buf, n), dst_buf=dst_buf, dst=self.addr(dst_buf, n), n=n)
        if kind == "VLUT":
            fields["prm"] = self.addr("PRM", 256)
        else:
            fields.update(shift=self.int(0, 40), round=self.int(0, 1))
        return [Instruction(kind, **fields)]

    def draw(self, kind: str) -> list[Instruction]:
        if kind in ("LOAD", "STORE"):
            return self.load_store(kind)
        if kind in ("VADD", "VMAX", "VMUL"):
            return self.elementwise(kind)
        if kind in ("SHR", "VLUT"):
            return self.unary(kind)
        return getattr(self, kind.lower())()


def _fix_loadwin_sram(prog: list[Instruction]) -> list[Instruction]:
    """Place each LOADWIN's gathered block inside its buffer (its size needs the SETWIN before it)."""
    out, window = [], None
    rng = np.random.default_rng(len(prog))
    for ins in prog:
        if ins.op == "SETWIN":
            window = ins.args
        if ins.op == "LOADWIN":
            size = ins.npix * window["k_h"] * window["k_w"] * ins.nc
            top = SIZES[ins.buf] - size
            if top < 0:
                continue
            ins = ins.replace(sram=int(rng.integers(0, top + 1)))
        out.append(ins)
    return out


def random_program(rng: np.random.Generator, max_len: int = 12) -> tuple[list[Instruction], np.ndarray]:
    """A program of in-bounds instructions of every kind (and its DRAM image), ending in HALT."""
    g = _Gen(rng)
    prog: list[Instruction] = []
    for _ in range(g.int(1, max_len)):
        prog += g.draw(g.pick(KINDS))
    return _fix_loadwin_sram(prog) + [Instruction("HALT")], g.image


def random_instruction(rng: np.random.Generator) -> Instruction:
    """Any valid encoding of a random op (fields uniform over their ranges, no tokens)."""
    op = OPS[int(rng.integers(len(OPS)))]
    for _ in range(50):
        values = {t: 0 for t in TOKEN_NAMES}
        for f in op.fields:
            if f.kind == "e":
                opts = [o for o in f.options if o is not None]
                values[f.name] = opts[int(rng.integers(len(opts)))]
            else:
                values[f.name] = int(rng.integers(f.min, f.max + 1)) if rng.random() < 0.8 else \
                    int(rng.choice([f.min, f.max]))
        if all(check(values) is None for check in op.checks):
            return Instruction(op.mnemonic, **values)
    return Instruction("NOP")


def _near_an_end(ins: Instruction, rng: np.random.Generator) -> Optional[Instruction]:
    """One address or size field of ``ins`` set just below the end of some buffer or of DRAM:
    chosen without the instruction table's spans, so that a span missing from the table shows
    up as the golden semantics (whose accessors check every access) refusing what the chip runs."""
    fields = [f for f in ins.spec.fields if f.kind == "u" and f.bits >= 12]
    if not fields:
        return None
    f = fields[int(rng.integers(len(fields)))]
    limits = list(SIZES.values()) + [DRAM]
    value = limits[int(rng.integers(len(limits)))] - int(rng.integers(0, 8))
    if not f.min <= value <= f.max:
        return None
    try:
        return ins.replace(**{f.name: value})
    except Exception:  # a cross-field rule of the encoding refuses it
        return None


def _past_a_span(prog: list[Instruction], rng: np.random.Generator) -> tuple[list[Instruction], int]:
    """One span of the table moved just past the end of its buffer or DRAM."""
    window, candidates = None, []
    for i, ins in enumerate(prog):
        if ins.op == "SETWIN":
            window = ins.args
        fields = [sp for sp in ins.spec.spans if span_size(sp, ins.args, window) > 0]
        if fields:
            candidates.append((i, fields, blocks(ins, window)))
    if not candidates:
        return prog, -1
    i, fields, spans = candidates[int(rng.integers(len(candidates)))]
    k = int(rng.integers(len(spans)))
    b, sp = spans[k], fields[k]
    limit = DRAM if b.buf == "DRAM" else SIZES[b.buf]
    start = limit - b.size + int(rng.integers(1, 4))
    field = prog[i].spec.field(sp.at)
    if not field.min <= start <= field.max:
        return prog, -1
    return prog[:i] + [prog[i].replace(**{sp.at: start})] + prog[i + 1:], i


def mutate(prog: list[Instruction], rng: np.random.Generator) -> tuple[list[Instruction], int]:
    """The program with one instruction changed; returns it and the index (-1: unchanged).

    Half the time a span of the instruction table is moved just past its buffer's end; otherwise
    an address or size field is set near the end of a buffer or DRAM, without the table, or (one
    time in six) an instruction is replaced by a random encoding."""
    r = rng.random()
    if r < 0.5:
        return _past_a_span(prog, rng)
    i = int(rng.integers(len(prog)))
    if r < 0.85:
        changed = _near_an_end(prog[i], rng)
        return (prog, -1) if changed is None else (prog[:i] + [changed] + prog[i + 1:], i)
    return prog[:i] + [random_instruction(rng)] + prog[i + 1:], i


@st.composite
def program_and_image(draw, max_len: int = 12):
    """Hypothesis strategy over :func:`random_program` (a seed, so shrinking finds a short seed)."""
    return random_program(np.random.default_rng(draw(st.integers(0, 2**32 - 1))), max_len)
