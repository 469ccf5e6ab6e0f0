"""What the hot kernel loops compile to: vector instructions on 256/512-bit registers.

``python -m kernels.simd [--json]`` compiles each hot kernel on small representative arguments
and prints, per kernel, the packed instructions in its assembly and the vector operations in
its LLVM IR.  Run it in a fresh process with an empty ``NUMBA_CACHE_DIR`` (code
loaded from Numba's cache cannot be inspected) and, to see the AVX2 code, ``NUMBA_CPU_NAME=haswell``.
tests/test_kernels_simd.py does both.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections import Counter

import numpy as np

from .state import CFG_A_BITS, CFG_ACC_BITS, CFG_SIZE, CFG_W_BITS, CFG_W_SIGNED

# Packed (not scalar) AVX instructions: integer vp*, or floating point ending in ps/pd.
_ASM_VEC = re.compile(r"\n\s+(vp[a-z0-9]+|v[a-z0-9]*p[sd])\s+[^\n]*%([xyz])mm")
# Vector operations in the LLVM IR: "%x = mul nsw <8 x i32> ..." -> "mul <8 x i32>"
_IR_VEC = re.compile(r"= (add|sub|mul|fmul|fadd|shl|ashr|lshr|and|or|sext|zext|trunc|sitofp|fptosi|select|icmp|fcmp)"
                     r"(?: [a-z]+)*? <(\d+) x (i8|i16|i32|i64|float)>")


def _compile_all() -> dict:
    """Call each hot kernel once so that a specialization exists; return name -> (dispatcher, sig)."""
    mac = sys.modules["kernels.mac"]
    rq = sys.modules["kernels.requant"]
    dma = sys.modules["kernels.dma"]
    wt = sys.modules["kernels.weights"]
    vec = sys.modules["kernels.vector"]
    mem = np.zeros(4096, np.int64)
    dram = np.zeros(4096, np.uint8)
    bias = np.zeros(8, np.int64)
    mac._micro_i32(np.zeros((8, 64), np.int16), np.zeros((8, 64), np.int16), np.zeros((8, 8), np.int32),
                   0, 0, 0, 64)
    cfg = np.zeros(CFG_SIZE, np.int64)
    cfg[CFG_A_BITS], cfg[CFG_W_BITS], cfg[CFG_W_SIGNED], cfg[CFG_ACC_BITS] = 8, 8, 1, 32
    nbytes, words = mac.weight_workspace(4, 64)
    mac._gemm_vnni(mem, cfg, 0, 512, 4, 4, 64, np.zeros((4, 16), np.int32), np.zeros(nbytes, np.int8),
                   np.zeros(words, np.int64), False, np.empty(0, np.uint8), np.empty(0, np.uint8))
    mac._gemm_wide16(mem, cfg, 0, 512, 4, 4, 64, np.zeros((4, 16), np.int64))
    mac._micro_i64(np.zeros((8, 64), np.int32), np.zeros((8, 64), np.int32), np.zeros((8, 8), np.int64),
                   0, 0, 0, 64)
    mac._pack(mem, 0, 4, 64, 0, 64, 8, True, 0, np.zeros((4, 64), np.int16))
    rq._requant_fp32(mem, 0, 100, 4, 8, bias, np.ones(8, np.float32), 32, 0, -128, 127, -128, 127)
    rq._requant_fixed(mem, 0, 100, 4, 8, bias, bias + (1 << 30), bias - 3, 32, 0, -128, 127, -128, 127,
                      False, False, False)
    dma.unpack_row(dram, 0, 0, 64, 8, True, mem, 0, 32)
    dma.pack_row(mem, 0, 64, dram, 0, 0, 8)
    wt.loadw(dram, mem, 0, 0, 64, 3, 8, True, 2, 0)
    vec._window_reduce(mem, 0, 2, 3, 16, 0, 0)
    return {
        "gemm_micro_int16_int32acc": mac._micro_i32,  # 4x4, 8x4, 8x8 operands
        "gemm_u8s8_panels": mac._gemm_vnni,  # symmetric weights: vpdpbusd with AVX512-VNNI
        "gemm_int16_digits": mac._gemm_wide16,  # 16-bit operands: vpdpwssd with AVX512-VNNI
        "gemm_micro_int32_int64acc": mac._micro_i64,  # 16-bit operands
        "gemm_pack_operands": mac._pack,
        "requant_fp32": rq._requant_fp32,
        "requant_fixed": rq._requant_fixed,
        "unpack_row": dma.unpack_row,
        "pack_row": dma.pack_row,
        "loadw_decompress": wt.loadw,
        "pool_window_reduce": vec._window_reduce,
    }


def report() -> dict[str, dict]:
    """name -> {"asm": {"mnemonic xmm|ymm|zmm": count}, "ir": {"op <N x type>": count}}."""
    import kernels  # noqa: F401  (registers the submodules)

    out = {}
    for name, disp in _compile_all().items():
        sig = disp.signatures[0]
        asm = disp.inspect_asm(sig)
        ir = disp.inspect_llvm(sig)
        asm_ops = Counter(f"{m} {r}mm" for m, r in _ASM_VEC.findall(asm))
        ir_ops = Counter(f"{op} <{n} x {t}>" for op, n, t in _IR_VEC.findall(ir))
        out[name] = {"asm": dict(asm_ops.most_common()), "ir": dict(ir_ops.most_common())}
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)
    rep = report()
    if args.json:
        print(json.dumps(rep))
        return 0
    for name, r in rep.items():
        key = [k for k in r["asm"] if not k.startswith(("vpbroadcast", "vmov", "vpextr", "vpinsr"))]
        print(f"{name:28s} asm: {', '.join(key[:10]) or '(no packed instructions)'}")
        print(f"{'':28s} ir:  {', '.join(list(r['ir'])[:8])}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
