"""A u8 x s8 GEMM micro-kernel on AVX512-VNNI ``vpdpbusd`` (four byte products added into each
int32 lane, without saturation), for CPUs that have it; elsewhere GEMM keeps its int16 panels.

LLVM does not turn a plain byte dot product into ``vpdpbusd`` (it widens the bytes to int32 and
uses ``vpdpwssd``, at half the rate of the int16 panels), so the 4 x 4 block is written in LLVM IR
through a Numba intrinsic: 16 accumulators of 16 int32 lanes, one 64-byte load per row of A and
of W per step, 16 ``vpdpbusd`` per step, and a horizontal add at the end.  Exact: a lane adds at
most 4 * K / 64 products of magnitude <= 255 * 128, far below 2^31 for K <= 16384.  Compiled for
a CPU without VNNI the intrinsic emits the same arithmetic in portable vector IR, so code that
calls it still compiles there (GEMM then keeps its int16 panels).
"""

from __future__ import annotations

import llvmlite.binding as llvm_binding
from llvmlite import ir
from numba import types
from numba.core import cgutils
from numba.core import config as numba_config
from numba.extending import intrinsic

STEP = 64  # bytes of K per vpdpbusd


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


@intrinsic
def vnni_block(typingctx, ap, wp, c, i, j, cj, kc):
    """C[i:i+4, cj:cj+4] += Ap[i:i+4, :kc] @ Wp[j:j+4, :kc].T for uint8 Ap, int8 Wp (C-contiguous
    rows, ``kc`` a multiple of 64, rows readable up to kc) and an int32 C."""
    if not (isinstance(ap, types.Array) and ap.dtype == types.uint8 and isinstance(wp, types.Array)
            and wp.dtype == types.int8 and isinstance(c, types.Array) and c.dtype == types.int32):
        return None
    sig = types.void(ap, wp, c, i, j, cj, kc)

    def codegen(context, builder, signature, args):
        i64, i32, i8 = ir.IntType(64), ir.IntType(32), ir.IntType(8)
        v16 = ir.VectorType(i32, 16)
        a_arr = context.make_array(signature.args[0])(context, builder, args[0])
        w_arr = context.make_array(signature.args[1])(context, builder, args[1])
        c_arr = context.make_array(signature.args[2])(context, builder, args[2])
        ii, jj, cjj, kcc = (context.cast(builder, v, t, types.int64) for v, t in zip(args[3:], signature.args[3:]))
        lda = builder.extract_value(a_arr.strides, 0)
        ldw = builder.extract_value(w_arr.strides, 0)
        ldc = builder.extract_value(c_arr.strides, 0)
        a_base = builder.bitcast(a_arr.data, i8.as_pointer())
        w_base = builder.bitcast(w_arr.data, i8.as_pointer())
        c_base = builder.bitcast(c_arr.data, i8.as_pointer())
        if HAS_VNNI:
            vnni = cgutils.get_or_insert_function(builder.module, ir.FunctionType(v16, [v16, v16, v16]),
                                                  "llvm.x86.avx512.vpdpbusd.512")

            def dot4(acc, a, w):
                return builder.call(vnni, [acc, a, w])
        else:  # the same arithmetic in portable vector IR (GEMM does not choose this path without VNNI)
            v64b, v64 = ir.VectorType(i8, 64), ir.VectorType(i32, 64)

            def dot4(acc, a, w):
                prod = builder.mul(builder.zext(builder.bitcast(a, v64b), v64), builder.sext(builder.bitcast(w, v64b), v64))
                for r in range(4):  # lane q adds the products of bytes 4q .. 4q+3
                    lanes = ir.Constant(ir.VectorType(i32, 16), [4 * q + r for q in range(16)])
                    acc = builder.add(acc, builder.shuffle_vector(prod, prod, lanes))
                return acc
        reduce_add = cgutils.get_or_insert_function(builder.module, ir.FunctionType(i32, [v16]),
                                                    "llvm.vector.reduce.add.v16i32")

        def const(v):
            return ir.Constant(i64, v)

        def vec_at(base, row, ld, off):
            ptr = builder.gep(base, [builder.add(builder.mul(row, ld), off)], source_etype=i8)
            return builder.load(builder.bitcast(ptr, v16.as_pointer()), align=1, typ=v16)

        zero = ir.Constant(v16, None)
        entry = builder.block
        loop = builder.append_basic_block("vnni.loop")
        done = builder.append_basic_block("vnni.done")
        builder.cbranch(builder.icmp_signed(">", kcc, const(0)), loop, done)
        builder.position_at_end(loop)
        p = builder.phi(i64)
        p.add_incoming(const(0), entry)
        accs = []
        for _ in range(16):
            phi = builder.phi(v16)
            phi.add_incoming(zero, entry)
            accs.append(phi)
        a_rows = [vec_at(a_base, builder.add(ii, const(r)), lda, p) for r in range(4)]
        w_rows = [vec_at(w_base, builder.add(jj, const(s)), ldw, p) for s in range(4)]
        new = [dot4(accs[4 * r + s], a_rows[r], w_rows[s]) for r in range(4) for s in range(4)]
        p_next = builder.add(p, const(STEP))
        body_end = builder.block
        p.add_incoming(p_next, body_end)
        for phi, v in zip(accs, new):
            phi.add_incoming(v, body_end)
        builder.cbranch(builder.icmp_signed("<", p_next, kcc), loop, done)
        builder.position_at_end(done)
        results = []
        for v in new:  # every phi first: LLVM wants them at the top of the block
            res = builder.phi(v16)
            res.add_incoming(zero, entry)
            res.add_incoming(v, body_end)
            results.append(res)
        for r in range(4):
            for s in range(4):
                res = results[4 * r + s]
                off = builder.add(builder.mul(builder.add(ii, const(r)), ldc),
                                  builder.mul(builder.add(cjj, const(s)), const(4)))
                ptr = builder.bitcast(builder.gep(c_base, [off], source_etype=i8), i32.as_pointer())
                total = builder.call(reduce_add, [res])
                builder.store(builder.add(builder.load(ptr, typ=i32), total), ptr)
        return context.get_dummy_value()

    return sig, codegen
