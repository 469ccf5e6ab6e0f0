"""Issue 3, acceptance 3: the hot kernel loops compile to SIMD code.

Each target is compiled in a fresh process with an empty Numba cache (cached code cannot be
inspected): the host CPU (what CI and users run) and plain AVX2 (NUMBA_CPU_NAME=haswell without
AVX-512), the floor accelsim supports.  The test fails if any listed loop loses its vector form.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from kernels.mac import uses_int16_panels, uses_vnni, uses_wide16
from kernels.vnni import HAS_VNNI

ROOT = Path(__file__).resolve().parent.parent
AVX2 = ("+64bit,+avx,+avx2,+bmi,+bmi2,+cmov,+cx16,+f16c,+fma,+lzcnt,+mmx,+movbe,+pclmul,+popcnt,+sahf,"
        "+sse,+sse2,+sse3,+sse4.1,+sse4.2,+ssse3,+xsave,-avx512f,-avx512bw,-avx512vl,-avx512dq,-avx512cd,"
        "-avx512vnni,-avxvnni")

# kernel -> (LLVM IR vector operations that must appear, packed instructions one of which must appear)
REQUIRED = {
    "gemm_micro_int16_int32acc": ([r"sext <(\d+) x i16>", r"add <(\d+) x i32>"],
                                  r"^(vpmulld|vpmaddwd|vpdpwssd) [yz]mm"),
    "gemm_u8s8_panels": ([r"add <(\d+) x i32>"], r"^(vpdpbusd|vpmulld|vpmaddwd|vpdpwssd) [yz]mm"),
    "gemm_int16_digits": ([r"add <(\d+) x i64>"], r"^(vpdpwssd|vpmulld|vpmaddwd) [yz]mm"),
    "gemm_micro_int32_int64acc": ([r"mul <(\d+) x i64>", r"add <(\d+) x i64>"], r"^(vpmuldq|vpmullq|vpmuludq) [yz]mm"),
    "gemm_pack_operands": ([r"sub <(\d+) x i64>"], r"^vpsubq [yz]mm"),
    "requant_fp32": ([r"fmul <(\d+) x float>", r"fptosi <(\d+) x float>"], r"^vmulps [xyz]mm"),
    "requant_fixed": ([r"mul <(\d+) x i64>", r"ashr <(\d+) x i64>"], r"^(vpmuldq|vpmullq|vpmuludq) [yz]mm"),
    "unpack_row": ([r"[sz]ext <(\d+) x i8>"], r"^vpmov[sz]xb[dwq] [yz]mm"),
    "pack_row": ([r"trunc <(\d+) x i64>"], r"^(vpmovqb|vpshufb|vpackusdw|vpackuswb|vpermq|vpermd) [xyz]mm"),
    "loadw_decompress": ([r"zext <(\d+) x i8>"], r"^vpmov[sz]xb[dwq] [yz]mm"),
    "pool_window_reduce": ([r"add <(\d+) x i64>"], r"^vpaddq [yz]mm"),
}


def _report(extra_env: dict, tmp_path: Path) -> dict:
    env = {**os.environ, "NUMBA_CACHE_DIR": str(tmp_path / "numba"), **extra_env}
    r = subprocess.run([sys.executable, "-m", "kernels.simd", "--json"], cwd=ROOT, env=env,
                       capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-2000:]
    return json.loads(r.stdout.strip().splitlines()[-1])


def _has_avx2() -> bool:
    try:
        return "avx2" in Path("/proc/cpuinfo").read_text()
    except OSError:
        return False


NO_AVX2 = "this CPU lacks AVX2 (/proc/cpuinfo): the vectorization check did not run"
NO_VNNI = "this CPU lacks AVX512-VNNI: the vpdpbusd GEMM kernel was not checked"


@pytest.mark.skipif(not _has_avx2(), reason=NO_AVX2)
@pytest.mark.parametrize("target", ["host", "avx2"])
def test_hot_loops_are_vectorized(target, tmp_path):
    env = {} if target == "host" else {"NUMBA_CPU_NAME": "haswell", "NUMBA_CPU_FEATURES": AVX2}
    rep = _report(env, tmp_path)
    for kernel, (ir_patterns, asm_pattern) in REQUIRED.items():
        ir, asm = rep[kernel]["ir"], rep[kernel]["asm"]
        for pat in ir_patterns:
            lanes = [int(m.group(1)) for op in ir for m in [re.fullmatch(pat, op)] if m]
            assert lanes and max(lanes) >= 4, f"{target}: {kernel} lost its vector '{pat}' ({list(ir)[:10]})"
        assert any(re.match(asm_pattern, ins) for ins in asm), \
            f"{target}: {kernel} has no {asm_pattern} ({list(asm)[:12]})"
    if target == "avx2":  # and no AVX-512 leaked into the AVX2 build
        assert not any("zmm" in ins for k in rep for ins in rep[k]["asm"])


@pytest.mark.skipif(not HAS_VNNI, reason=NO_VNNI)
def test_u8s8_gemm_uses_vpdpbusd(tmp_path):
    """On a VNNI CPU the byte micro-kernel is the 4-products-per-lane instruction itself."""
    rep = _report({}, tmp_path)
    assert rep["gemm_u8s8_panels"]["asm"].get("vpdpbusd zmm", 0) >= 16
    assert rep["gemm_int16_digits"]["asm"].get("vpdpwssd zmm", 0) >= 16  # and the 16-bit tiles vpdpwssd


@pytest.mark.parametrize("a_bits, w_bits, int16", [(4, 4, True), (8, 4, True), (4, 8, True), (8, 8, True),
                                                   (16, 8, False), (16, 16, False)])
def test_gemm_precisions_take_the_checked_path(a_bits, w_bits, int16):
    """GEMM at 4x4, 8x4 and 8x8 runs the int16/int32 micro-kernel, 16-bit operands the int64 one."""
    assert uses_int16_panels(a_bits, w_bits) is int16
    # operands of at most 8 bits (any signedness, any zero points) take the vpdpbusd tiles on a VNNI CPU
    assert uses_vnni(a_bits, w_bits) is (int16 and HAS_VNNI)
    # 16-bit operands whose weights fit int16 (minus their zero point) take the vpdpwssd tiles
    assert uses_wide16(a_bits, w_bits, True, 0) is HAS_VNNI
    assert not uses_wide16(a_bits, 16, True, 5) and not uses_wide16(a_bits, 16, False, 0)
