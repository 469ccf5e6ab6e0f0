"""Plant bugs one at a time in a temporary copy of the project and report which tests catch each.

    python -m tests.mutants [--only NAME ...] [--write docs/testing.md]

Each mutant is one textual change (it must match exactly once); its copy runs the tests listed
for it (pytest, at most three failures) with a shared Numba cache directory, which the cache's
source digest keeps honest.  A mutant no test catches is a hole in the suite; the script exits 1
if there is one.  ``--write`` replaces the table in docs/testing.md with this run's.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
FUZZ = ["tests/test_fuzz.py"]
TIMING = ["tests/test_timing.py", "tests/test_systolic_model.py"]
REUSE = ("tests/test_gemm_weight_reuse.py",)
DEFERRED = ("tests/test_deferred_loads.py",)
DRAM_RESET = ("tests/test_sim_reuse.py",)
KEPT = ("tests/test_kept_weights.py",)
FUSED = ("tests/test_fused_requant.py",)


@dataclass(frozen=True)
class Mutant:
    name: str
    path: str
    old: str
    new: str
    tests: tuple[str, ...]


MUTANTS = [
    Mutant("VADD destination span deleted", "isa/table.py",
           'spans=_BROADCAST + (_reads("PRM", "prm", str(ADD_RECORD_WORDS)),)',
           'spans=_BROADCAST[:2] + (_reads("PRM", "prm", str(ADD_RECORD_WORDS)),)', tuple(FUZZ)),
    Mutant("GEMM accumulator write span deleted", "isa/table.py",
           '''_reads("ACC", "acc", "m * n * accumulate"),
              _writes("ACC", "acc", "m * n")''', '''_reads("ACC", "acc", "m * n * accumulate"),''', tuple(FUZZ)),
    Mutant("LOAD buffer span deleted", "isa/table.py",
           'spans=(_reads("DRAM", "dram", _STRIDED), _writes("buf", "sram", "x * y"))',
           'spans=(_reads("DRAM", "dram", _STRIDED),)', tuple(FUZZ)),
    Mutant("STORE DRAM span deleted", "isa/table.py",
           'spans=(_reads("buf", "sram", "x * y"), _writes("DRAM", "dram", _STRIDED))',
           'spans=(_reads("buf", "sram", "x * y"),)', tuple(FUZZ)),
    Mutant("LOADWIN buffer span deleted", "isa/table.py",
           '''              _writes("buf", "sram", "npix * k_h * k_w * nc")''', '''              ''', tuple(FUZZ)),
    Mutant("REQUANT parameter span deleted", "isa/table.py",
           '_reads("PRM", "prm", "3 * n"), ', '', tuple(FUZZ)),
    Mutant("VLUT table span deleted", "isa/table.py",
           'spans=_UNARY + (_reads("PRM", "prm", str(LUT_WORDS)),)', 'spans=_UNARY', tuple(FUZZ)),
    Mutant("DWCONV weight span deleted", "isa/table.py",
           '_reads("WGT", "wgt", "r * c"), ', '', tuple(FUZZ)),
    Mutant("pool source span deleted", "isa/table.py",
           '_POOL = (_reads("src_buf", "src", "m * r * c"), _writes("dst_buf", "dst", "m * c"))',
           '_POOL = (_writes("dst_buf", "dst", "m * c"),)', tuple(FUZZ)),
    Mutant("Numba cache guard off", "kernels/__init__.py", "_install_cache()  #", "pass  #",
           ("tests/test_numba_cache.py",)),
    Mutant("LOADW DRAM latency dropped", "accelsim/chip/timing.py",
           "return p[P_DRAM_LAT] + max(_ceil_div(nbytes, p[P_DRAM_BW]), _ceil_div(r[5], p[P_DEC_DENSE + r[6]]))",
           "return max(_ceil_div(nbytes, p[P_DRAM_BW]), _ceil_div(r[5], p[P_DEC_DENSE + r[6]]))", tuple(TIMING)),
    Mutant("LOADWIN DRAM latency dropped", "accelsim/chip/timing.py",
           "return p[P_DRAM_LAT] + max(_ceil_div(nbytes, bw), _ceil_div(r[6] * k_h * k_w * r[8], max(1, bw)))",
           "return max(_ceil_div(nbytes, bw), _ceil_div(r[6] * k_h * k_w * r[8], max(1, bw)))", tuple(TIMING)),
    Mutant("DWCONV fill dropped", "accelsim/chip/timing.py",
           "cycles = _ceil_div(c, p[P_COLS]) * (m * _ceil_div(rr * den, p[P_ROWS] * num)) + p[P_ROWS] + p[P_COLS]",
           "cycles = _ceil_div(c, p[P_COLS]) * (m * _ceil_div(rr * den, p[P_ROWS] * num))", tuple(TIMING)),
    Mutant("fold overlap ignored", "accelsim/chip/timing.py", "if p[P_OVERLAP] == 1:", "if False:", tuple(TIMING)),
    Mutant("4x4 rate halved", "accelsim/chip/timing.py",
           "    while num % 2 == 0 and den % 2 == 0:  # 16x4",
           "    if w_bits <= 4 and a_bits <= 4:\n        num //= 2\n    while num % 2 == 0 and den % 2 == 0:  # 16x4",
           tuple(TIMING)),
    Mutant("depthwise padding reads 0, not the zero point", "accelsim/compiler/lower/depthwise.py",
           "body, chunks, cc = dwconv_program(layer, b.chip, layer_config(node, b, mode), x.zero_point,",
           "body, chunks, cc = dwconv_program(layer, b.chip, layer_config(node, b, mode), 0,",
           ("tests/test_rounding.py", "tests/test_compiler.py")),
    Mutant("fp32 requant kernel rounds half away from zero", "kernels/requant.py",
           "y = np.int32(np.int32(np.rint(v)) + zp)",
           "y = np.int32(np.int32(np.sign(v) * np.floor(np.abs(v) + np.float32(0.5))) + zp)",
           ("tests/test_rounding.py", "tests/test_kernels_exact.py")),
    Mutant("GEMM weight reuse ignores writes to the weights", "accelsim/chip/hints.py",
           'if ins.op == "HOST" or any(b.access == "write"', 'if ins.op == "HOST" or False and any(b.access == "write"',
           REUSE),
    Mutant("GEMM weight reuse ignores the weight signedness", "accelsim/chip/hints.py",
           'a["k"], int(cfg[CFG_W_BITS]), int(cfg[CFG_W_SIGNED]))\n        reuse', 'a["k"], int(cfg[CFG_W_BITS]))\n        reuse',
           REUSE),
    Mutant("reused GEMM weights without their row sums", "kernels/mac.py",
           "elif ca != 0 and colsum[colsum.size - 1] == 0:", "elif False:", REUSE),
    Mutant("DRAM reset skips the restore of what the last run wrote", "accelsim/chip/simulator.py",
           "                _restore(dram, image, lo, min(hi, size))", "                pass", DRAM_RESET),
    Mutant("DRAM reset forgets the tensors' bytes", "accelsim/chip/simulator.py",
           "merged_ranges(list(low.dram_writes) + tensors)", "merged_ranges(list(low.dram_writes))", DRAM_RESET),
    Mutant("DRAM reused after a HOST step", "accelsim/chip/simulator.py",
           "        if low.has_host:  # a host step", "        if False:  # a host step", DRAM_RESET),
    Mutant("deferred load read by another instruction", "accelsim/chip/hints.py",
           "        elif _reads_any(sp, buf, left):", "        elif False:", DEFERRED),
    Mutant("deferred load's DRAM bytes written before its GEMMs", "accelsim/chip/hints.py",
           '        if any(b.access == "write" and _overlaps(b, source) for b in sp):', "        if False:", DEFERRED),
    Mutant("deferred load replaced by a partial write", "accelsim/chip/hints.py",
           "            parts = _subtract(parts, b)", "            parts = []", DEFERRED + FUSED),
    Mutant("byte operands flipped by signedness, not by the offset", "kernels/mac.py",
           "flip = np.uint8(128 if sa != 0 else 0)", "flip = np.uint8(128 if signed else 0)", DEFERRED),
    Mutant("kept weights whose DRAM stream an instruction writes", "accelsim/chip/hints.py",
           "    if any(_overlaps(b, source) for b in dram_writes):", "    if False:", KEPT),
    Mutant("kept weights after a HOST step", "accelsim/chip/hints.py",
           'if ins.op == "HOST":\n            break', 'if False:\n            break', KEPT),
    Mutant("kept weights whose words are overwritten before the GEMM", "accelsim/chip/hints.py",
           "for j in [j for j, blk in live.items() if any(_overlaps(b, blk) for b in writes)]:", "for j in []:", KEPT),
    Mutant("kept weights shared across weight types", "accelsim/chip/hints.py",
           'a["n"], a["k"], int(cfg[CFG_W_BITS]), int(cfg[CFG_W_SIGNED]))\n    if key', 'a["n"], a["k"])\n    if key', KEPT),
    Mutant("kept weights over an input tensor", "accelsim/chip/simulator.py",
           "state[(table[:, 4] < hi) & (lo < table[:, 5])] = -1", "pass", KEPT),
    Mutant("kept weights on a writeable image", "accelsim/chip/simulator.py",
           "0 if not program.dram_image.flags.writeable else -1", "0", KEPT),
    Mutant("a LOADW skipped before its readers' slots are filled", "accelsim/chip/execute.py",
           "if s >= slots.shape[0] or slots[s, 4] != 1:", "if s >= slots.shape[0] or slots[s, 4] < 0:", KEPT),
    Mutant("a LOADW skipped although a GEMM without a kept slot reads its words", "accelsim/chip/hints.py",
           'return ins.op == "GEMM" and rows[j, _GEMM_PACKED] > 0 and', 'return ins.op == "GEMM" and', KEPT),
    Mutant("kept slots marked filled on the portable GEMM path", "accelsim/chip/execute.py",
           "if HAS_VNNI and slot >= 0 and slots[slot, 4] == 0:", "if slot >= 0 and slots[slot, 4] == 0:",
           ("tests/test_kernels_portable.py::test_value_loop_hints_hold_compiled_for_avx2",)),
    Mutant("codebook indices decoded eight at a time from one byte too few", "kernels/weights.py",
           "        for t in range(k):\n            v |=", "        for t in range(k - 1):\n            v |=",
           ("tests/test_kernels_exact.py",)),
    Mutant("QLinearAdd FMA nesting swapped (kernel and golden)", "kernels/vector.py",
           "v = fma_f32(np.float32(a[j0 + t]), fa, fma_f32(np.float32(b[t]), fb, fixed))",
           "v = fma_f32(np.float32(b[t]), fb, fma_f32(np.float32(a[j0 + t]), fa, fixed))",
           ("tests/test_rounding.py", "tests/test_requant_vs_ort.py")),
    Mutant("DWCONV int32 byte path skips the wrap for narrow accumulators", "kernels/mac.py",
           "    if s.itemsize == 4 and not accumulate and acc_bits >= 32:", "    if s.itemsize == 4 and not accumulate:",
           DEFERRED),
    Mutant("DWCONV int32 byte path drops the operand's sign", "kernels/mac.py",
           "    sign = np.int32(1 << (a_bits - 1)) if cfg[CFG_A_SIGNED] else np.int32(0)",
           "    sign = np.int32(0)", DEFERRED),
    Mutant("DWCONV int32 byte path drops the last tap", "kernels/mac.py",
           "        while t < r:\n            _dw_tap(", "        while t < r - 1:\n            _dw_tap(", DEFERRED),
    Mutant("fp32 requant's int32 path drops the bias", "kernels/requant.py",
           "x = np.int32(np.int32(src[uintp(s + c)]) + b32[uintp(c)])", "x = np.int32(src[uintp(s + c)])",
           ("tests/test_kernels_exact.py",)),
    Mutant("accumulator copy without wrap taken for int64 sums", "kernels/mac.py",
           "    if C.itemsize == 4 and not accumulate and acc_bits >= 32:", "    if not accumulate and acc_bits >= 32:",
           ("tests/test_kernels_exact.py",)),
    Mutant("VNNI zero-point correction's column term taken once too little", "kernels/mac.py",
           "            col[uintp(j)] = np.int32(ca * colsum[uintp(j)])", "            col[uintp(j)] = np.int32((ca - 1) * colsum[uintp(j)])",
           ("tests/test_kernels_exact.py",)),
    Mutant("VADD's direct fp32 path taken over a shifted overlap", "kernels/vector.py",
           "    return a_ok and b_ok", "    return True", ("tests/test_kernels_exact.py",)),
    Mutant("VADD's direct fp32 path ignores b's broadcast", "kernels/vector.py",
           "fma_f32(np.float32(mem[uintp(b_at + t)]), fb, fixed)", "fma_f32(np.float32(mem[uintp(b_at) + j]), fb, fixed)",
           ("tests/test_kernels_exact.py",)),
    Mutant("fused requant though a later instruction reads the sums", "accelsim/chip/hints.py",
           "        if _reads_any(spans[j], block.buf, left):\n            return False",
           "        if False:\n            return False", FUSED),
    Mutant("fused requant though the sums are still there at HALT", "accelsim/chip/hints.py",
           '        if instructions[j].op in ("HOST", "HALT"):\n            return False\n        sp = spans[j]',
           '        if instructions[j].op == "HOST":\n            return False\n        sp = spans[j]', FUSED),
    Mutant("fused requant over accumulating MACs", "accelsim/chip/hints.py",
           ' or ins.args["accumulate"]:\n        return False', ':\n        return False', FUSED),
    Mutant("fused requant at accumulators narrower than 32 bits", "accelsim/chip/hints.py",
           "cfg[CFG_ACC_BITS] >= 32 and cfg[CFG_MODE]", "cfg[CFG_ACC_BITS] >= 16 and cfg[CFG_MODE]", FUSED),
    Mutant("fused requant in a fixed-point mode", "accelsim/chip/hints.py",
           "and cfg[CFG_MODE] == MODE_FP32):", "):", FUSED),
    Mutant("fused GEMM requant reads the tile at the output's row stride", "kernels/mac.py",
           "np.int64(0), np.int64(C32.shape[1]), mem, dst", "np.int64(0), n, mem, dst", FUSED),
    Mutant("fused DWCONV requant writes every row over the first", "kernels/mac.py",
           "c, mem, dst + i * c, np.int64(1), stage)", "c, mem, dst, np.int64(1), stage)", FUSED),
    Mutant("fused REQUANT skipped on the portable path", "accelsim/chip/execute.py",
           "        if HAS_VNNI and r[11]:", "        if r[11]:",
           ("tests/test_kernels_portable.py::test_value_loop_hints_hold_compiled_for_avx2",)),
]
# the golden twin of the nesting swap goes with it, so the kernel-vs-golden tests cannot see it
EXTRA = {"QLinearAdd FMA nesting swapped (kernel and golden)": (
    "isa/requant.py", "v = fma_f32(np.asarray(a, np.float32), ra, fma_f32(np.asarray(b, np.float32), rb, fixed))",
    "v = fma_f32(np.asarray(b, np.float32), rb, fma_f32(np.asarray(a, np.float32), ra, fixed))")}


def _copy(dst: Path) -> None:
    files = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True).stdout.split()
    for f in files:
        target = dst / f
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / f, target)


def _apply(root: Path, path: str, old: str, new: str) -> None:
    p = root / path
    text = p.read_text()
    count = text.count(old)
    if count != 1:
        raise SystemExit(f"mutant text found {count} times in {path}: {old[:60]!r}")
    p.write_text(text.replace(old, new))


def run_mutant(m: Mutant, cache: Path) -> tuple[list[str], float]:
    with tempfile.TemporaryDirectory() as d:
        root = Path(d)
        _copy(root)
        _apply(root, m.path, m.old, m.new)
        if m.name in EXTRA:
            _apply(root, *EXTRA[m.name])
        env = {**os.environ, "PYTHONPATH": str(root), "ACCELSIM_CACHE_DIR": str(cache)}
        env.pop("NUMBA_CACHE_DIR", None)
        t = time.perf_counter()
        r = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--maxfail=3",
                            *m.tests], cwd=root, env=env, capture_output=True, text=True)
        failed = sorted(set(re.findall(r"^FAILED (.+?)(?: - .*)?$", r.stdout, re.M)))
        if r.returncode < 0:  # the kernels wrote past their arrays and the process died
            failed = failed + [f"{' '.join(m.tests)} crashes (signal {-r.returncode})"]
        elif r.returncode not in (0, 1):
            failed = failed or [f"(pytest exited {r.returncode})"]
        return failed, time.perf_counter() - t


def _table(rows: list[tuple[Mutant, list[str], float]]) -> str:
    lines = ["| planted bug | file | caught by | s |", "|---|---|---|---|"]
    for m, failed, secs in rows:
        caught = "<br>".join(f"`{f}`" for f in failed[:3]) if failed else "**not caught**"
        lines.append(f"| {m.name} | `{m.path}` | {caught} | {secs:.0f} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--only", nargs="*", help="run the mutants whose names contain one of these words")
    ap.add_argument("--write", help="markdown file whose mutation table is replaced (between the markers)")
    args = ap.parse_args(argv)
    chosen = [m for m in MUTANTS if not args.only or any(w.lower() in m.name.lower() for w in args.only)]
    cache = Path(tempfile.mkdtemp(prefix="accelsim-mutants-cache-"))
    rows = []
    for m in chosen:
        failed, secs = run_mutant(m, cache)
        rows.append((m, failed, secs))
        print(f"{'caught' if failed else 'NOT CAUGHT':10s} {m.name}: {', '.join(failed[:3])}  ({secs:.0f} s)", flush=True)
    table = _table(rows)
    print(table)
    if args.write:
        doc = Path(args.write)
        text = doc.read_text()
        start, end = "<!-- mutants -->", "<!-- /mutants -->"
        before, _, rest = text.partition(start)
        _, _, after = rest.partition(end)
        doc.write_text(f"{before}{start}\n{table}\n{end}{after}")
    shutil.rmtree(cache, ignore_errors=True)
    return 0 if all(f for _, f, _ in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
