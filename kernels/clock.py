"""A cycle counter readable inside Numba code (LLVM's ``readcyclecounter``: the TSC on x86), for
profiling the value loop per instruction type.  With the JIT disabled it is
``time.perf_counter_ns``."""

from __future__ import annotations

import time

from llvmlite import ir
from numba import types
from numba.core import config as numba_config
from numba.extending import intrinsic


@intrinsic
def _readcyclecounter(typingctx):
    sig = types.int64()

    def codegen(context, builder, signature, args):
        fn = ir.Function(builder.module, ir.FunctionType(ir.IntType(64), []), name="llvm.readcyclecounter") \
            if "llvm.readcyclecounter" not in builder.module.globals else builder.module.globals["llvm.readcyclecounter"]
        return builder.call(fn, [])

    return sig, codegen


def _ns() -> int:
    return time.perf_counter_ns()


#: ticks: CPU cycles when compiled, nanoseconds without the JIT (only ratios are reported)
ticks = _ns if numba_config.DISABLE_JIT else _readcyclecounter
