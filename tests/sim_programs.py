"""Random programs for a small chip: mostly in-bounds instructions of every kind, so that they
run and their values can be compared with the golden semantics."""

from __future__ import annotations

import numpy as np
from hypothesis import strategies as st

from accelsim.chip import ChipConfig
from accelsim.compiler.weights import encode_best
from isa import Instruction
from isa.table import BUFFERS, MAC_DTYPES, MEM_DTYPES, REQUANT_MODES

SMALL_CHIP = ChipConfig().replace(
    buffers={"inp_kib": 2, "wgt_kib": 2, "acc_kib": 4, "out_kib": 2, "prm_kib": 1},
    dram={"size_mib": 1, "latency": 20, "bandwidth": 8})
SIZES = SMALL_CHIP.buffer_words()
DRAM = SMALL_CHIP.dram_bytes()
DATA_BYTES = 1 << 16  # random data lives in the first 64 KiB of DRAM


@st.composite
def program_and_image(draw, max_len: int = 12):
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    image = rng.integers(0, 256, DATA_BYTES).astype(np.uint8)
    prog: list[Instruction] = []
    a, w = draw(st.sampled_from(MAC_DTYPES)), draw(st.sampled_from(MAC_DTYPES))

    def addr(buf, n):
        return draw(st.integers(0, max(0, SIZES[buf] - n)))

    def small(hi=40):
        return draw(st.integers(1, hi))

    for _ in range(draw(st.integers(1, max_len))):
        kind = draw(st.sampled_from(["CONFIG", "LOAD", "STORE", "GEMM", "REQUANT", "LOADW", "LOADWIN",
                                     "VADD", "VMAX", "POOL", "SHR", "DWCONV", "VLUT"]))
        if kind == "CONFIG":
            o = draw(st.sampled_from(MAC_DTYPES))
            lo, hi = (-(1 << (int(o[1:]) - 1)), (1 << (int(o[1:]) - 1)) - 1) if o[0] == "s" else (0, (1 << int(o[1:])) - 1)
            prog.append(Instruction("CONFIG", a=a, w=w, o=o, acc_bits=draw(st.sampled_from([32, 16, 48, 24])),
                                    mode=draw(st.sampled_from(REQUANT_MODES)), clamp_min=lo, clamp_max=hi))
        elif kind in ("LOAD", "STORE"):
            buf, dtype = draw(st.sampled_from(BUFFERS)), draw(st.sampled_from(MEM_DTYPES))
            x, y = small(), draw(st.integers(1, 6))
            prog.append(Instruction(kind, buf=buf, dtype=dtype, dram=draw(st.integers(0, DATA_BYTES - 2000)),
                                    sram=addr(buf, x * y), x=x, y=y, y_stride=draw(st.integers(0, 60))))
        elif kind == "GEMM":
            m, n, k = small(20), small(20), small(40)
            prog.append(Instruction("GEMM", inp=addr("INP", m * k), wgt=addr("WGT", n * k), acc=addr("ACC", m * n),
                                    m=m, n=n, k=k, accumulate=draw(st.integers(0, 1))))
        elif kind == "DWCONV":
            m, r, c = small(10), small(9), small(16)
            prog.append(Instruction("DWCONV", inp=addr("INP", m * r * c), wgt=addr("WGT", r * c),
                                    acc=addr("ACC", m * c), m=m, r=r, c=c, accumulate=draw(st.integers(0, 1))))
        elif kind == "REQUANT":
            m, n = small(20), small(20)
            prm = addr("PRM", 3 * n)
            dst_buf = draw(st.sampled_from(["INP", "OUT"]))
            # a parameter table the fixed modes accept: bias, M0 in [2^30, 2^31), shift in [-20, 0]
            table = np.concatenate([rng.integers(-1000, 1000, n), rng.integers(1 << 30, 1 << 31, n),
                                    rng.integers(-20, 1, n)]).astype(np.int32)
            at = draw(st.integers(DATA_BYTES, DATA_BYTES + 4000)) & ~3
            image = np.concatenate([image, np.zeros(max(0, at + table.nbytes - image.size), np.uint8)])
            image[at:at + table.nbytes] = table.view(np.uint8)
            prog.append(Instruction("LOAD", buf="PRM", dtype="s32", dram=at, sram=prm, x=3 * n, y=1, y_stride=0))
            prog.append(Instruction("REQUANT", src=addr("ACC", m * n), dst_buf=dst_buf, dst=addr(dst_buf, m * n),
                                    prm=prm, m=m, n=n))
        elif kind == "LOADW":
            dtype = draw(st.sampled_from(MAC_DTYPES))
            bits = int(dtype[1:])
            lo, hi = (-(1 << (bits - 1)), (1 << (bits - 1)) - 1) if dtype[0] == "s" else (0, (1 << bits) - 1)
            count = small(300)
            vals = np.where(rng.random(count) < 0.6, 0, rng.integers(lo, hi + 1, count))
            stream = encode_best(vals, dtype)
            at = draw(st.integers(DATA_BYTES + 8000, DATA_BYTES + 20000))
            image = np.concatenate([image, np.zeros(max(0, at + stream.nbytes - image.size), np.uint8)])
            image[at:at + stream.nbytes] = np.frombuffer(stream.data, np.uint8)
            prog.append(Instruction("LOADW", sram=addr("WGT", count), dram=at, count=count, format=stream.format,
                                    dtype=dtype, param=stream.param, zero=stream.zero))
        elif kind == "LOADWIN":
            in_h, in_w, in_c = small(6), small(6), small(8)
            k_h, k_w = small(3), small(3)
            prog.append(Instruction("SETWIN", in_h=in_h, in_w=in_w, in_c=in_c, k_h=k_h, k_w=k_w,
                                    stride_h=small(2), stride_w=small(2), pad_top=draw(st.integers(0, 2)),
                                    pad_left=draw(st.integers(0, 2)), out_w=small(6), pad_value=draw(st.integers(-9, 9))))
            nc = small(in_c)
            npix = small(12)
            prog.append(Instruction("LOADWIN", buf="INP", dtype=draw(st.sampled_from(MEM_DTYPES)),
                                    dram=draw(st.integers(0, 1000)), sram=addr("INP", npix * k_h * k_w * nc),
                                    pix0=draw(st.integers(0, 20)), npix=npix, c0=in_c - nc, nc=nc))
        elif kind in ("VADD", "VMAX"):
            n = small(64)
            bufs = [draw(st.sampled_from(BUFFERS)) for _ in range(3)]
            fields = dict(a_buf=bufs[0], a=addr(bufs[0], n), b_buf=bufs[1], b=addr(bufs[1], n), dst_buf=bufs[2],
                          dst=addr(bufs[2], n), n=n)
            if kind == "VADD":
                fields["prm"] = addr("PRM", 9)
            prog.append(Instruction(kind, **fields))
        elif kind == "POOL":
            op = draw(st.sampled_from(["MAXPOOL", "AVGPOOL", "SUMPOOL"]))
            m, r, c = small(8), small(9), small(8)
            src_buf = draw(st.sampled_from(BUFFERS))
            fields = dict(src_buf=src_buf, src=addr(src_buf, m * r * c), m=m, r=r, c=c)
            if op == "SUMPOOL":
                fields.update(acc=addr("ACC", m * c))
            else:
                dst_buf = draw(st.sampled_from(BUFFERS))
                fields.update(dst_buf=dst_buf, dst=addr(dst_buf, m * c))
                if op == "AVGPOOL":
                    fields["divisor"] = small(20)
                    fields["even"] = draw(st.integers(0, 1))
            prog.append(Instruction(op, **fields))
        elif kind == "VLUT":
            n = small(64)
            src_buf, dst_buf = draw(st.sampled_from(BUFFERS)), draw(st.sampled_from(BUFFERS))
            prog.append(Instruction("VLUT", src_buf=src_buf, src=addr(src_buf, n), dst_buf=dst_buf,
                                    dst=addr(dst_buf, n), n=n, prm=addr("PRM", 256)))
        else:
            n = small(64)
            src_buf, dst_buf = draw(st.sampled_from(BUFFERS)), draw(st.sampled_from(BUFFERS))
            prog.append(Instruction("SHR", src_buf=src_buf, src=addr(src_buf, n), dst_buf=dst_buf,
                                    dst=addr(dst_buf, n), n=n, shift=draw(st.integers(0, 40)),
                                    round=draw(st.integers(0, 1))))
    prog.append(Instruction("HALT"))
    return prog, image
