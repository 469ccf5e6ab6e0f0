"""A u8 x s8 GEMM micro-kernel on AVX512-VNNI ``vpdpbusd`` (four byte products added into each
int32 lane, without saturation), for CPUs that have it; elsewhere GEMM keeps its int16 panels.

LLVM does not turn a plain byte dot product into ``vpdpbusd`` (it widens the bytes to int32 and
uses ``vpdpwssd``, at half the rate of the int16 panels), so the tile is written in LLVM IR
through a Numba intrinsic, in broadcast form: W is packed in strips of 16 output columns, each
step of 4 k a 64-byte vector (column c's 4 bytes in lane c); a row's 4 bytes of A are broadcast to
every lane; one ``vpdpbusd`` then adds 4 products to each of 16 column sums.  An ``mr`` x ``16 nv``
tile keeps ``mr * nv`` accumulators in registers and ends with vector adds into C (no horizontal
reduction, so short K costs no more per MAC than long K).  Exact: a lane adds at most K <= 16383
products of magnitude <= 255 * 128, below 2^31.  Compiled for a CPU without VNNI the intrinsic
emits the same arithmetic in portable vector IR, so code that calls it still compiles there (GEMM
then keeps its int16 panels).
"""

from __future__ import annotations

import llvmlite.binding as llvm_binding
from llvmlite import ir
from numba import types
from numba.core import cgutils
from numba.core import config as numba_config
from numba.extending import intrinsic

LANES = 16   # int32 lanes (output columns) per vector: one strip of W
QUAD = 4     # bytes per lane per step: 4 k of u8 x s8, or 2 k of int16
STRIP_STEP = LANES * QUAD  # bytes of a strip per step


def target_has_vnni() -> bool:
    """True when Numba compiles for a CPU with AVX512-VNNI and AVX512-BW (and the JIT is on)."""
    if numba_config.DISABLE_JIT:
        return False
    if numba_config.CPU_FEATURES:  # an explicit target (e.g. NUMBA_CPU_NAME=haswell with its features)
        feats = numba_config.CPU_FEATURES
        return "+avx512vnni" in feats and "+avx512bw" in feats
    if numba_config.CPU_NAME and numba_config.CPU_NAME != "host":
        return False
    host = llvm_binding.get_host_cpu_features()
    return bool(host.get("avx512vnni") and host.get("avx512bw") and host.get("avx512f"))


HAS_VNNI = target_has_vnni()


def _dot_codegen(builder, kind: str):
    """acc, a, w (<16 x i32> each) -> acc + per-lane dot products: ``u8s8`` adds a lane's 4 u8 x s8
    byte products (``vpdpbusd``), ``s16s16`` its 2 int16 products (``vpdpwssd``); both without
    saturation.  Without VNNI the same arithmetic in portable vector IR."""
    i32 = ir.IntType(32)
    v16 = ir.VectorType(i32, LANES)
    if HAS_VNNI:
        name = "llvm.x86.avx512.vpdpbusd.512" if kind == "u8s8" else "llvm.x86.avx512.vpdpwssd.512"
        fn = cgutils.get_or_insert_function(builder.module, ir.FunctionType(v16, [v16, v16, v16]), name)
        return lambda acc, a, w: builder.call(fn, [acc, a, w])
    per = QUAD if kind == "u8s8" else 2  # operands per lane
    narrow = ir.VectorType(ir.IntType(32 // per), LANES * per)
    wide = ir.VectorType(i32, LANES * per)
    extend_a = builder.zext if kind == "u8s8" else builder.sext

    def dot(acc, a, w):  # GEMM does not choose these tiles without VNNI: this keeps callers compiling
        prod = builder.mul(extend_a(builder.bitcast(a, narrow), wide), builder.sext(builder.bitcast(w, narrow), wide))
        for r in range(per):  # lane q adds the products of operands per*q .. per*q + per - 1
            lanes = ir.Constant(ir.VectorType(i32, LANES), [per * q + r for q in range(LANES)])
            acc = builder.add(acc, builder.shuffle_vector(prod, prod, lanes))
        return acc
    return dot


def make_tile(mr: int, nv: int, kind: str = "u8s8"):
    """An intrinsic ``tile(Ap, Wp, C, i, s0, steps, strip_bytes)``:
    C[i + r, 16 (s0 + v) + c] += sum_q sum_t Ap[i + r, g q + t] * strip (s0 + v)[q, c, t]
    for r < mr, v < nv, c < 16, q < steps, t < g, where a step holds 4 bytes of k per lane:
    g = 4 uint8 of Ap times int8 of Wp (``u8s8``) or g = 2 int16 of each (``s16s16``).  Ap is m x K
    (C-contiguous rows), Wp flat (strip s at byte s * strip_bytes, step q at 64 q, column c at 4 c),
    C int32 (rows of whole strips).  ``s16s16`` tiles take Ap's rows as digit pairs (row 2h the high
    digit, 2h + 1 the low one, ``i`` even) and add 256 * sum_hi + sum_lo to the int64 C row i/2 + h
    (so a chunk's int32 sums leave the registers combined and widened)."""
    a_type, w_type = (types.uint8, types.int8) if kind == "u8s8" else (types.int16, types.int16)
    c_type = types.int32 if kind == "u8s8" else types.int64

    @intrinsic
    def tile(typingctx, ap, wp, c, i, s0, steps, strip_bytes):
        if not (isinstance(ap, types.Array) and ap.dtype == a_type and isinstance(wp, types.Array)
                and wp.dtype == w_type and isinstance(c, types.Array) and c.dtype == c_type):
            return None
        sig = types.void(ap, wp, c, i, s0, steps, strip_bytes)

        def codegen(context, builder, signature, args):
            i64, i32, i8 = ir.IntType(64), ir.IntType(32), ir.IntType(8)
            v16 = ir.VectorType(i32, LANES)
            dot4 = _dot_codegen(builder, kind)
            a_arr = context.make_array(signature.args[0])(context, builder, args[0])
            w_arr = context.make_array(signature.args[1])(context, builder, args[1])
            c_arr = context.make_array(signature.args[2])(context, builder, args[2])
            ii, ss, nq, sb = (context.cast(builder, v, t, types.int64) for v, t in zip(args[3:], signature.args[3:]))
            lda = builder.extract_value(a_arr.strides, 0)
            ldc = builder.extract_value(c_arr.strides, 0)
            a_base = builder.bitcast(a_arr.data, i8.as_pointer())
            w_base = builder.bitcast(w_arr.data, i8.as_pointer())
            c_base = builder.bitcast(c_arr.data, i8.as_pointer())

            def const(v):
                return ir.Constant(i64, v)

            def at(base, off):
                return builder.gep(base, [off], source_etype=i8)

            a_rows = [builder.mul(builder.add(ii, const(r)), lda) for r in range(mr)]
            w_strips = [builder.mul(builder.add(ss, const(v)), sb) for v in range(nv)]
            zero = ir.Constant(v16, None)
            entry = builder.block
            loop = builder.append_basic_block("tile.loop")
            done = builder.append_basic_block("tile.done")
            builder.cbranch(builder.icmp_signed(">", nq, const(0)), loop, done)
            builder.position_at_end(loop)
            q = builder.phi(i64)
            q.add_incoming(const(0), entry)
            accs = []
            for _ in range(mr * nv):
                phi = builder.phi(v16)
                phi.add_incoming(zero, entry)
                accs.append(phi)
            w_off = builder.mul(q, const(STRIP_STEP))
            ws = [builder.load(builder.bitcast(at(w_base, builder.add(w_strips[v], w_off)), v16.as_pointer()),
                               align=1, typ=v16) for v in range(nv)]
            a_off = builder.mul(q, const(QUAD))
            new = []
            for r in range(mr):
                a32 = builder.load(builder.bitcast(at(a_base, builder.add(a_rows[r], a_off)), i32.as_pointer()),
                                   align=1, typ=i32)
                splat = builder.shuffle_vector(builder.insert_element(ir.Constant(v16, ir.Undefined), a32, const(0)),
                                               ir.Constant(v16, ir.Undefined), ir.Constant(v16, [0] * LANES))
                new += [dot4(accs[r * nv + v], splat, ws[v]) for v in range(nv)]
            q_next = builder.add(q, const(1))
            body_end = builder.block
            q.add_incoming(q_next, body_end)
            for phi, v in zip(accs, new):
                phi.add_incoming(v, body_end)
            builder.cbranch(builder.icmp_signed("<", q_next, nq), loop, done)
            builder.position_at_end(done)
            results = []
            for v in new:  # every phi first: LLVM wants them at the top of the block
                res = builder.phi(v16)
                res.add_incoming(zero, entry)
                res.add_incoming(v, body_end)
                results.append(res)
            if kind == "u8s8":
                for r in range(mr):
                    for v in range(nv):
                        off = builder.add(builder.mul(builder.add(ii, const(r)), ldc),
                                          builder.mul(builder.add(ss, const(v)), const(4 * LANES)))
                        ptr = builder.bitcast(at(c_base, off), v16.as_pointer())
                        builder.store(builder.add(builder.load(ptr, align=1, typ=v16), results[r * nv + v]), ptr,
                                      align=1)
                return context.get_dummy_value()
            v8l = ir.VectorType(i64, 8)  # digit rows 2h, 2h + 1 -> C row (i / 2 + h): 256 * hi + lo in int64
            for h in range(mr // 2):
                for v in range(nv):
                    for half in range(2):
                        lanes = ir.Constant(ir.VectorType(i32, 8), list(range(8 * half, 8 * half + 8)))

                        def part(x):
                            return builder.sext(builder.shuffle_vector(x, x, lanes), v8l)
                        val = builder.add(builder.shl(part(results[2 * h * nv + v]), ir.Constant(v8l, [8] * 8)),
                                          part(results[(2 * h + 1) * nv + v]))
                        row = builder.add(builder.ashr(ii, const(1)), const(h))
                        col = builder.add(builder.mul(builder.add(ss, const(v)), const(LANES)), const(8 * half))
                        ptr = builder.bitcast(at(c_base, builder.add(builder.mul(row, ldc), builder.mul(col, const(8)))),
                                              v8l.as_pointer())
                        builder.store(builder.add(builder.load(ptr, align=1, typ=v8l), val), ptr, align=1)
            return context.get_dummy_value()

        return sig, codegen

    return tile


#: the tiles GEMM uses: 8 rows (4 at the bottom edge) x 2 strips (1 at the right edge), u8 x s8 ...
tile_8x2, tile_8x1, tile_4x2, tile_4x1 = make_tile(8, 2), make_tile(8, 1), make_tile(4, 2), make_tile(4, 1)
#: ... and int16 x int16 (the 16-bit path: activations split in two digits, kernels.mac)
wtile_8x2, wtile_8x1, wtile_4x2, wtile_4x1 = (make_tile(8, 2, "s16s16"), make_tile(8, 1, "s16s16"),
                                              make_tile(4, 2, "s16s16"), make_tile(4, 1, "s16s16"))
