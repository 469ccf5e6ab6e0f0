"""Golden semantics of each instruction on hand-checked cases, and the error contract."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import isa
from isa import ExecError
from isa import Instruction as I
from isa.quant import pack_bits
from isa.semantics import MachineState, step

from .strategies import instructions


def machine(dram_bytes=b"", size=256, **sizes):
    d = np.zeros(size, dtype=np.uint8)
    d[:len(dram_bytes)] = np.frombuffer(bytes(dram_bytes), dtype=np.uint8)
    return MachineState.create(d, sizes={"INP": 64, "WGT": 64, "ACC": 64, "OUT": 64, "PRM": 32, **sizes})


def run(s, *prog):
    return isa.run(list(prog), s)


def cfg(**kw):
    base = dict(a="s8", w="s8", o="s8", clamp_min=-128, clamp_max=127)
    return I("CONFIG", **{**base, **kw})


# --------------------------------------------------------------------------- DMA
def test_load_4bit_strided_rows():
    # u4 elements 0..15 packed low nibble first: bytes 0x10, 0x32, 0x54, ...
    s = machine(pack_bits(np.arange(16), 4).tobytes())
    run(s, I("LOAD", buf="INP", dtype="u4", dram=0, sram=2, x=3, y=2, y_stride=5))
    # rows start at elements 0 and 5: [0, 1, 2], [5, 6, 7]
    assert s.buffers["INP"][:9].tolist() == [0, 0, 0, 1, 2, 5, 6, 7, 0]
    run(s, I("LOAD", buf="INP", dtype="s4", dram=4, sram=0, x=2, y=1, y_stride=0))
    # byte 4 holds elements 8 (low) and 9 (high): as s4, 8 -> -8 and 9 -> -7
    assert s.buffers["INP"][:2].tolist() == [-8, -7]


def test_load_16_and_32_bit_little_endian():
    s = machine(bytes([0x34, 0x12, 0xFF, 0xFF, 0x78, 0x56, 0x34, 0x92]))
    run(s, I("LOAD", buf="INP", dtype="u16", dram=0, sram=0, x=2, y=1, y_stride=0),
        I("LOAD", buf="OUT", dtype="s16", dram=0, sram=0, x=2, y=1, y_stride=0),
        I("LOAD", buf="ACC", dtype="u32", dram=4, sram=0, x=1, y=1, y_stride=0),
        I("LOAD", buf="PRM", dtype="u32", dram=4, sram=0, x=1, y=1, y_stride=0))
    assert s.buffers["INP"][:2].tolist() == [0x1234, 0xFFFF]
    assert s.buffers["OUT"][:2].tolist() == [0x1234, -1]
    assert s.buffers["ACC"][0] == 0x92345678  # 64-bit word keeps the unsigned value
    assert s.buffers["PRM"][0] == 0x92345678 - (1 << 32)  # 32-bit word: same bits, signed


def test_store_packs_low_bits_and_keeps_neighbouring_nibbles():
    s = machine(bytes([0xAB, 0xCD, 0xEF]))
    s.buffers["OUT"][:4] = [1, -1, 300, 7]
    # u4 rows of 1 element at element offsets 0 and 3: byte 0 low nibble <- 0x1 (0xAB -> 0xA1),
    # byte 1 high nibble <- low 4 bits of -1 = 0xF (0xCD -> 0xFD); byte 2 untouched
    run(s, I("STORE", buf="OUT", dtype="u4", dram=0, sram=0, x=1, y=2, y_stride=3))
    assert s.dram[:3].tolist() == [0xA1, 0xFD, 0xEF]
    run(s, I("STORE", buf="OUT", dtype="s8", dram=2, sram=2, x=1, y=1, y_stride=0))
    assert s.dram[2] == 300 & 0xFF  # low 8 bits of 300 = 44
    run(s, I("STORE", buf="OUT", dtype="s16", dram=0, sram=1, x=1, y=1, y_stride=0))
    assert s.dram[:2].tolist() == [0xFF, 0xFF]  # -1 little-endian


def test_loadwin_gathers_windows_with_padding_stride_and_dilation():
    # 3x3 image, 2 channels, u8: value = 10*(y*3+x) + c
    img = np.array([[[10 * (y * 3 + x) + c for c in range(2)] for x in range(3)] for y in range(3)])
    s = machine(img.astype(np.uint8).tobytes())
    run(s, I("SETWIN", in_h=3, in_w=3, in_c=2, k_h=2, k_w=2, stride_h=2, stride_w=2, dil_h=2, dil_w=1,
             pad_top=1, pad_left=1, out_w=2, pad_value=99),
        I("LOADWIN", buf="INP", dtype="u8", dram=0, sram=0, pix0=1, npix=2, c0=1, nc=1))
    # pixel 1 = (oy 0, ox 1): rows iy = -1, 1; cols ix = 1, 2 -> pad, pad, (1,1), (1,2) channel 1
    # pixel 2 = (oy 1, ox 0): rows iy = 1, 3(out); cols ix = -1(out), 0 -> pad, (1,0), pad, pad
    assert s.buffers["INP"][:8].tolist() == [99, 99, 41, 51, 99, 31, 99, 99]


def test_loadwin_batches_images_with_out_h():
    # two 2x2 images of 1 channel, u8: image 0 = 1..4, image 1 = 11..14; 1x1 windows, out 2x2
    s = machine(bytes([1, 2, 3, 4, 11, 12, 13, 14]))
    run(s, I("SETWIN", in_h=2, in_w=2, in_c=1, k_h=1, k_w=1, out_w=2, out_h=2),
        I("LOADWIN", buf="INP", dtype="u8", dram=0, sram=0, pix0=3, npix=3, c0=0, nc=1))
    # pixel 3 = image 0 (1, 1); pixel 4 = image 1 (0, 0); pixel 5 = image 1 (0, 1)
    assert s.buffers["INP"][:3].tolist() == [4, 11, 12]
    with pytest.raises(ExecError, match="reads DRAM bytes 0..303, outside DRAM of 256 bytes"):  # image 75
        step(s, I("LOADWIN", buf="INP", dtype="u8", dram=0, sram=0, pix0=300, npix=1, c0=0, nc=1))


def test_loadwin_needs_setwin_and_checks_channels():
    s = machine()
    with pytest.raises(ExecError, match="LOADWIN before any SETWIN"):
        step(s, I("LOADWIN", buf="INP", dtype="u8", dram=0, sram=0, pix0=0, npix=1, c0=0, nc=1), 3)
    step(s, I("SETWIN", in_h=1, in_w=1, in_c=2, k_h=1, k_w=1, out_w=1))
    with pytest.raises(ExecError, match="channels 1..2 exceed in_c=2"):
        step(s, I("LOADWIN", buf="INP", dtype="u8", dram=0, sram=0, pix0=0, npix=1, c0=1, nc=2))


# --------------------------------------------------------------------------- weight formats
W = [0, 3, 0, 0, -2, 0, 0, 0, 0, 0, 0, 5]


def _loadw(stream, fmt, dtype="s4", param=1, zero=0, count=len(W)):
    s = machine(stream)
    run(s, I("LOADW", sram=1, dram=0, count=count, format=fmt, dtype=dtype, param=param, zero=zero))
    return s.buffers["WGT"][1:1 + count].tolist()


def test_loadw_dense():
    assert _loadw(pack_bits(W, 4).tobytes(), "dense") == W


def test_loadw_bitmask():
    # mask bits for W: elements 1, 4, 11 set -> 0b1000_0001_0010 -> bytes 0x12, 0x08; then 3, -2, 5 as s4
    stream = bytes([0x12, 0x08]) + pack_bits([3, -2, 5], 4).tobytes()
    assert _loadw(stream, "bitmask") == W
    assert _loadw(stream, "bitmask", zero=-1) == [-1 if w == 0 else w for w in W]


def _rle_stream(entries, run_bits, value_bits):
    bits = []
    for run_len, value in entries:
        bits += [(run_len >> b) & 1 for b in range(run_bits)] + [(value >> b) & 1 for b in range(value_bits)]
    return np.packbits(np.array(bits, dtype=np.uint8), bitorder="little").tobytes()


def test_loadw_rle():
    # 2-bit runs (max 3), s4 values: (1, 3), (2, -2), (3, 0) = 3 zeros then a literal zero, (2, 5)
    stream = _rle_stream([(1, 3), (2, -2), (3, 0), (2, 5)], 2, 4)
    assert _loadw(stream, "rle", param=2) == W
    # asking for 11 weights: the last entry would make weight 12 -> refused, WGT untouched
    with pytest.raises(ExecError, match="makes 12 > 11 weights"):
        _loadw(stream, "rle", param=2, count=11)


def test_loadw_codebook():
    # k = 2: palette [0, 3, -2, 5] (s4), indices of W: 0 1 0 0 2 0 0 0 0 0 0 3
    palette = pack_bits([0, 3, -2, 5], 4).tobytes()
    idx = pack_bits([0, 1, 0, 0, 2, 0, 0, 0, 0, 0, 0, 3], 2).tobytes()
    assert _loadw(palette + idx, "codebook", param=2) == W


def test_loadw_stream_past_dram_end_is_refused():
    s = machine(size=4)
    with pytest.raises(ExecError, match="reads DRAM bytes 2..9, outside DRAM of 4 bytes"):  # dense: the table's span
        step(s, I("LOADW", sram=0, dram=2, count=8, dtype="s8"), 7)
    s.dram[2] = 0xFF  # a bitmask of 8 stored values: their 8 bytes after the mask run past the end
    with pytest.raises(ExecError, match="run past DRAM"):
        step(s, I("LOADW", sram=0, dram=2, count=8, format="bitmask", dtype="s8"), 7)


# --------------------------------------------------------------------------- compute
def test_gemm_with_zero_points_operand_truncation_and_accumulate():
    s = machine()
    s.buffers["INP"][:4] = [130, 0, 255, 1]        # u8 activations, a_zp = 128; 2 x 2
    s.buffers["WGT"][:4] = [1, -1, 2, 0x1FF]        # s8 weights, 0x1FF reads as its low byte 0xFF = -1
    run(s, cfg(a="u8", a_zp=128), I("GEMM", inp=0, wgt=0, acc=0, m=2, n=2, k=2))
    # a - zp = [[2, -128], [127, -127]]; w = [[1, -1], [2, -1]]
    # acc = [[2*1 + -128*-1, 2*2 + -128*-1], [127 - -127... ]] worked: row0: [130, 132]; row1: [254, 381]
    assert s.buffers["ACC"][:4].tolist() == [130, 132, 254, 381]
    run(s, I("GEMM", inp=0, wgt=0, acc=0, m=2, n=2, k=2, accumulate=1))
    assert s.buffers["ACC"][:4].tolist() == [260, 264, 508, 762]


def test_gemm_accumulator_wraps_at_acc_bits():
    s = machine()
    s.buffers["INP"][:2] = [127, 127]
    s.buffers["WGT"][:2] = [127, 127]
    run(s, cfg(acc_bits=12), I("GEMM", inp=0, wgt=0, acc=0, m=1, n=1, k=2))
    # 2 * 127^2 = 32258; mod 4096 = 3586 -> as signed 12-bit: 3586 - 4096 = -510
    assert s.buffers["ACC"][0] == -510


def test_dwconv_and_sumpool():
    s = machine()
    s.buffers["INP"][:8] = [1, 2, 3, 4, 5, 6, 7, 8]   # m=2, r=2, c=2
    s.buffers["WGT"][:4] = [1, 10, 100, 1000]         # r x c
    run(s, cfg(a_zp=1, w="s16"), I("DWCONV", inp=0, wgt=0, acc=0, m=2, r=2, c=2))
    # pixel 0: c0 = (1-1)*1 + (3-1)*100 = 200; c1 = (2-1)*10 + (4-1)*1000 = 3010
    # pixel 1: c0 = 4*1 + 6*100 = 604;         c1 = 5*10 + 7*1000 = 7050
    assert s.buffers["ACC"][:4].tolist() == [200, 3010, 604, 7050]
    run(s, I("SUMPOOL", src_buf="INP", src=0, acc=4, m=2, r=2, c=2))
    # (1-1)+(3-1) = 2, (2-1)+(4-1) = 4, (5-1)+(7-1) = 10, (6-1)+(8-1) = 12
    assert s.buffers["ACC"][4:8].tolist() == [2, 4, 10, 12]


def _prm(s, at, *rows):
    flat = np.concatenate([np.asarray(r, dtype=np.int64) for r in rows])
    s.buffers["PRM"][at:at + flat.size] = flat


def test_requant_fp32_and_fixed_modes_per_channel():
    s = machine()
    s.buffers["ACC"][:4] = [90, -110, 5, 7]          # 2 x 2
    scales = np.array([0.25, 0.5], dtype=np.float32).view(np.int32)
    _prm(s, 0, [11, 9], scales, [0, 0])
    run(s, cfg(o="u8", o_zp=3, clamp_min=0, clamp_max=255),
        I("REQUANT", src=0, dst_buf="OUT", dst=0, prm=0, m=2, n=2))
    # (90+11)*0.25 = 25.25 -> 25 +3 = 28; (-110+9)*0.5 = -50.5 -> -50 + 3 = -47 -> clamp 0
    # (5+11)*0.25 = 4 -> 7;  (7+9)*0.5 = 8 -> 11
    assert s.buffers["OUT"][:4].tolist() == [28, 0, 7, 11]
    _prm(s, 8, [11, 9], [1 << 30, 1 << 30], [-1, -1])
    run(s, cfg(o="s8", o_zp=3, mode="fixed_double", clamp_min=-128, clamp_max=127),
        I("REQUANT", src=0, dst_buf="INP", dst=0, prm=8, m=1, n=2))
    # 101 * 0.25 double-rounded = 26 -> 29; -101 * 0.25 = -25.25 -> -25 -> -22
    assert s.buffers["INP"][:2].tolist() == [29, -22]
    run(s, cfg(o="s8", o_zp=3, mode="fixed_single", clamp_min=0, clamp_max=6),
        I("REQUANT", src=0, dst_buf="INP", dst=0, prm=8, m=1, n=2))
    assert s.buffers["INP"][:2].tolist() == [6, 0]   # 28 and -22 under the ReLU6-style clamp [0, 6]


def test_requant_refuses_bad_fixed_point_parameters():
    s = machine()
    _prm(s, 0, [0], [1 << 30], [31])
    with pytest.raises(ExecError, match="shift 31 outside -31..30"):
        run(s, cfg(mode="fixed_double"), I("REQUANT", src=0, dst_buf="OUT", dst=0, prm=0, m=1, n=1))
    _prm(s, 0, [0], [-5], [0])
    with pytest.raises(ExecError, match="negative fixed-point multiplier"):
        run(s, I("REQUANT", src=0, dst_buf="OUT", dst=0, prm=0, m=1, n=1))
    assert not s.buffers["OUT"].any()


def test_vadd_fp32_and_fixed():
    s = machine()
    s.buffers["INP"][:3] = [10, 20, -128]
    s.buffers["OUT"][:3] = [5, 7, 127]
    f = lambda x: int(np.float32(x).view(np.int32))
    # fp32 record: a_zp 2, b_zp 1, a scale 0.5, b scale 0.25
    _prm(s, 0, [2, 1, f(0.5), 0, f(0.25), 0, 0, 0, 0])
    run(s, cfg(o_zp=-1), I("VADD", a_buf="INP", a=0, b_buf="OUT", b=0, dst_buf="OUT", dst=4, n=3, prm=0))
    # ONNX Runtime's QLinearAdd: F = o_zp - fma(rA, a_zp, rB * b_zp) = -1 - (1 + 0.25) = -2.25,
    # v = fma(a, rA, fma(b, rB, F)) on the raw integers, round half to even:
    # 10*.5 + (5*.25 - 2.25) = 4 -> 4;  20*.5 + (7*.25 - 2.25) = 9.5 -> 10 (the zero point is added
    # before rounding: subtracting it after rounding 10.5 would give 9);  -64 + 29.5 = -34.5 -> -34
    assert s.buffers["OUT"][4:7].tolist() == [4, 10, -34]
    # TFLite-style fixed: left_shift 20, a and b multipliers 0.5 (2^30, 0), output 2^-20 (2^30, -19)
    _prm(s, 9, [0, 0, 1 << 30, 0, 1 << 30, 0, 1 << 30, -19, 20])
    run(s, cfg(mode="fixed_double"),
        I("VADD", a_buf="INP", a=0, b_buf="OUT", b=0, dst_buf="OUT", dst=8, n=3, prm=9))
    # (a*2^20*0.5 + b*2^20*0.5) * 2^-20 = (a + b) / 2: 7.5 -> 8; 13.5 -> 14; -0.5 -> -1 (away)
    assert s.buffers["OUT"][8:11].tolist() == [8, 14, -1]



def test_vadd_broadcast_period_3_and_1():
    s = machine()
    s.buffers["INP"][:7] = [10, 20, -128, 1, 2, 3, 4]
    s.buffers["OUT"][:3] = [5, 7, 127]
    _prm(s, 0, [0, 0, 1 << 30, 0, 1 << 30, 0, 1 << 30, -19, 20])  # (a + b) / 2, halves away from zero
    run(s, cfg(mode="fixed_double"),
        I("VADD", a_buf="INP", a=0, b_buf="OUT", b=0, dst_buf="OUT", dst=8, n=7, bn=3, prm=0),
        I("VADD", a_buf="INP", a=0, b_buf="OUT", b=0, dst_buf="OUT", dst=16, n=7, bn=1, prm=0))
    # b' = 5, 7, 127, 5, 7, 127, 5: 7.5, 13.5, -0.5, 3, 4.5, 65, 4.5
    assert s.buffers["OUT"][8:15].tolist() == [8, 14, -1, 3, 5, 65, 5]
    # b' = 5 everywhere: 7.5, 12.5, -61.5, 3, 3.5, 4, 4.5
    assert s.buffers["OUT"][16:23].tolist() == [8, 13, -62, 3, 4, 4, 5]


def test_broadcast_b_span_is_bn_words_and_bn_cannot_exceed_n():
    s = machine()
    s.buffers["WGT"][62:64] = [3, 4]  # b: the last 2 words of WGT; n = 5 would run past it
    _prm(s, 0, [0, 0, 1 << 30, 0])
    run(s, cfg(mode="fixed_single"), I("VMUL", a_buf="INP", a=0, b_buf="WGT", b=62, dst_buf="OUT", dst=0, n=5,
                                       bn=2, prm=0))
    with pytest.raises(ExecError, match=r"reads WGT\[62:67\]"):
        run(s, I("VMUL", a_buf="INP", a=0, b_buf="WGT", b=62, dst_buf="OUT", dst=0, n=5, prm=0))
    with pytest.raises(isa.EncodeError, match="bn=6 > n=5"):
        I("VADD", a_buf="INP", a=0, b_buf="WGT", b=0, dst_buf="OUT", dst=0, n=5, bn=6, prm=0)


def test_vmul_fp32_and_fixed():
    s = machine()
    s.buffers["INP"][:4] = [10, 20, -128, 3]
    s.buffers["OUT"][:4] = [5, 7, 127, -3]
    f = lambda x: int(np.float32(x).view(np.int32))
    # a_zp 2, b_zp 1: p = (a - 2) * (b - 1) = 32, 108, -16380, -4
    _prm(s, 0, [2, 1, f(0.125), 0])
    run(s, cfg(o_zp=-1), I("VMUL", a_buf="INP", a=0, b_buf="OUT", b=0, dst_buf="OUT", dst=4, n=4, prm=0))
    # ONNX Runtime's QLinearMul: float32(p * 0.125) + o_zp, then round half to even:
    # 4 - 1 = 3;  13.5 - 1 = 12.5 -> 12 (rounding 13.5 first, then adding -1, would give 13);
    # -2047.5 - 1 saturates to -128;  -0.5 - 1 = -1.5 -> -2
    assert s.buffers["OUT"][4:8].tolist() == [3, 12, -128, -2]
    # TFLite MulElementwise: MultiplyByQuantizedMultiplier(p, 2^30, -2) = p / 8, + o_zp
    _prm(s, 8, [2, 1, 1 << 30, -2])
    run(s, cfg(o_zp=-1, mode="fixed_double"),
        I("VMUL", a_buf="INP", a=0, b_buf="OUT", b=0, dst_buf="OUT", dst=8, n=4, prm=8))
    # double rounding (half away from zero): 4, 13.5 -> 14, -2047.5 -> -2048, -0.5 -> -1; then -1
    assert s.buffers["OUT"][8:12].tolist() == [3, 13, -128, -2]
    run(s, cfg(o_zp=-1, mode="fixed_single"),
        I("VMUL", a_buf="INP", a=0, b_buf="OUT", b=0, dst_buf="OUT", dst=12, n=4, prm=8))
    # single rounding (half up): 4, 14, -2047, -0.5 -> 0; then -1
    assert s.buffers["OUT"][12:16].tolist() == [3, 13, -128, -1]


def test_vmul_broadcast_period_3_and_1():
    s = machine()
    s.buffers["INP"][:7] = [10, 20, -128, 5, 6, 7, 8]
    s.buffers["OUT"][:3] = [5, 7, 127]
    _prm(s, 0, [2, 1, int(np.float32(0.25).view(np.int32)), 0])
    run(s, cfg(o_zp=3), I("VMUL", a_buf="INP", a=0, b_buf="OUT", b=0, dst_buf="OUT", dst=8, n=7, bn=3, prm=0),
        I("VMUL", a_buf="INP", a=0, b_buf="OUT", b=0, dst_buf="OUT", dst=16, n=7, bn=1, prm=0))
    # a - 2 = 8, 18, -130, 3, 4, 5, 6;  b' - 1 = 4, 6, 126, 4, 6, 126, 4;  p / 4 + 3:
    # 11, 30, -4092 -> -128, 6, 9, 160.5 -> 127, 9
    assert s.buffers["OUT"][8:15].tolist() == [11, 30, -128, 6, 9, 127, 9]
    # b' - 1 = 4 everywhere: p / 4 + 3 = 11, 21, -127, 6, 7, 8, 9
    assert s.buffers["OUT"][16:23].tolist() == [11, 21, -127, 6, 7, 8, 9]


def test_vmul_refuses_bad_fixed_point_parameters():
    s = machine()
    _prm(s, 0, [0, 0, -5, 0])
    with pytest.raises(ExecError, match="negative fixed-point multiplier"):
        run(s, cfg(mode="fixed_double"), I("VMUL", a_buf="INP", a=0, b_buf="OUT", b=0, dst_buf="OUT", dst=0, n=2,
                                           prm=0))
    _prm(s, 0, [0, 0, 1 << 30, 31])
    with pytest.raises(ExecError, match="shift 31 outside -31..30"):
        run(s, I("VMUL", a_buf="INP", a=0, b_buf="OUT", b=0, dst_buf="OUT", dst=0, n=2, prm=0))
    assert not s.buffers["OUT"].any()

def test_pools_minmax_shr_and_vlut():
    s = machine(PRM=256)
    s.buffers["INP"][:8] = [1, -5, 4, 6, -3, -5, 2, 1]   # m=2, r=2, c=2
    run(s, I("MAXPOOL", src_buf="INP", src=0, dst_buf="OUT", dst=0, m=2, r=2, c=2))
    assert s.buffers["OUT"][:4].tolist() == [4, 6, 2, 1]
    run(s, I("AVGPOOL", src_buf="INP", src=0, dst_buf="OUT", dst=0, m=2, r=2, c=2, divisor=2))
    # sums 5, 1, -1, -4 over 2: 2.5 -> 3, 0.5 -> 1, -0.5 -> -1, -2 -> -2 (half away from zero)
    assert s.buffers["OUT"][:4].tolist() == [3, 1, -1, -2]
    run(s, I("AVGPOOL", src_buf="INP", src=0, dst_buf="OUT", dst=0, m=2, r=2, c=2, divisor=3))
    # 5/3 = 1.67 -> 2, 1/3 -> 0, -1/3 -> 0, -4/3 -> -1
    assert s.buffers["OUT"][:4].tolist() == [2, 0, 0, -1]
    run(s, I("AVGPOOL", src_buf="INP", src=0, dst_buf="OUT", dst=0, m=2, r=2, c=2, divisor=2, even=1))
    # 2.5 -> 2, 0.5 -> 0, -0.5 -> 0, -2 -> -2 (ties to even)
    assert s.buffers["OUT"][:4].tolist() == [2, 0, 0, -2]
    s.buffers["INP"][8:12] = [7, -7, 9, -9]  # m=4, r=1, c=1 over divisor 6: 1.17, -1.17, 1.5, -1.5
    run(s, I("AVGPOOL", src_buf="INP", src=8, dst_buf="OUT", dst=0, m=4, r=1, c=1, divisor=6, even=1))
    assert s.buffers["OUT"][:4].tolist() == [1, -1, 2, -2]
    run(s, I("VMAX", a_buf="INP", a=0, b_buf="INP", b=4, dst_buf="OUT", dst=0, n=4),
        I("VMIN", a_buf="INP", a=0, b_buf="INP", b=4, dst_buf="OUT", dst=4, n=4))
    assert s.buffers["OUT"][:8].tolist() == [1, -5, 4, 6, -3, -5, 2, 1]
    s.buffers["ACC"][:4] = [7, -7, 6, -6]
    run(s, I("SHR", src_buf="ACC", src=0, dst_buf="OUT", dst=0, n=4, shift=2),
        I("SHR", src_buf="ACC", src=0, dst_buf="OUT", dst=4, n=4, shift=2, round=1))
    # floor: 1, -2, 1, -2;  round half up (x + 2) >> 2: 2, -2, 2, -1
    assert s.buffers["OUT"][:8].tolist() == [1, -2, 1, -2, 2, -2, 2, -1]
    s.buffers["PRM"][:256] = np.arange(256) * 3 - 100     # table[i] = 3i - 100
    s.buffers["INP"][:4] = [0, 255, -1, -128]              # -1 -> code 255, -128 -> code 128
    run(s, I("VLUT", src_buf="INP", src=0, dst_buf="OUT", dst=0, n=4, prm=0))
    assert s.buffers["OUT"][:4].tolist() == [-100, 665, 665, 284]


def test_program_stops_at_halt_and_errors_name_the_instruction():
    s = machine()
    prog = isa.encode_program([I("HALT"), I("GEMM", inp=0, wgt=0, acc=0, m=100, n=1, k=1)])
    isa.run(prog, s)  # the GEMM after HALT never runs
    s = machine()
    with pytest.raises(ExecError) as e:
        isa.run([cfg(), I("GEMM", inp=0, wgt=0, acc=0, m=100, n=1, k=1)], s)
    assert e.value.index == 1 and e.value.insn_text.startswith("GEMM inp=0")
    assert "reads INP[0:100], outside the buffer of 64 words" in str(e.value)


@given(st.lists(instructions(), min_size=1, max_size=8), st.integers(0, 2**32 - 1))
def test_random_programs_complete_or_fault_without_changing_state(prog, seed):
    """Golden functions check everything before writing: a fault leaves the state untouched."""
    rng = np.random.default_rng(seed)
    s = MachineState.create(rng.integers(0, 256, 4096).astype(np.uint8),
                            sizes={"INP": 4096, "WGT": 4096, "ACC": 1024, "OUT": 4096, "PRM": 256})
    for b in s.buffers.values():
        b[:] = rng.integers(-300, 300, b.size)
    for index, ins in enumerate(prog):
        before = s.copy()
        try:
            step(s, ins, index)
        except ExecError as e:
            assert e.index == index
            assert np.array_equal(s.dram, before.dram)
            assert all(np.array_equal(s.buffers[k], before.buffers[k]) for k in s.buffers)
            assert s.config == before.config and s.window == before.window
