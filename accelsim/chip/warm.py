"""A second process that fills an empty Numba cache while this one starts (cold starts on two cores).

Numba compiles on one core.  The value loops (accelsim.chip.execute) link a kernel for every
instruction type; typing a loop compiles those kernels one after another, in the order the loop
calls them, and each lands in the cache (kernels._cache) as it is done.  ``start`` launches
``python -m accelsim.chip.warm``, which compiles the same kernels, with the exact argument types
the loops pass, in the opposite order: when this process's loop reaches a kernel the other one
has finished, Numba loads it from the cache instead of compiling it.  Nothing waits for anything
and nothing depends on the warm-up finishing: it only moves compile work to the other core.

It starts only when the JIT is on, more than one CPU is usable, ``ACCELSIM_NO_WARM`` is unset
and this build's cache has no mark of an earlier warm-up; a lock file keeps it to one process
per cache directory at a time.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
from numba import typeof, types
from numba.core import config as numba_config

from kernels._cache import cache_dir

DONE, LOCK = "warmed", "warming"
STALE_S = 600  # a lock older than this is a warm-up that died


def _mark(name: str) -> Path:
    return cache_dir() / name


def wanted() -> bool:
    """Whether a warm-up would help here (see the module's docstring)."""
    if numba_config.DISABLE_JIT or os.environ.get("ACCELSIM_NO_WARM"):
        return False
    if len(os.sched_getaffinity(0) if hasattr(os, "sched_getaffinity") else range(os.cpu_count() or 1)) < 2:
        return False
    if _mark(DONE).exists():
        return False
    lock = _mark(LOCK)
    return not (lock.exists() and time.time() - lock.stat().st_mtime < STALE_S)


def start() -> subprocess.Popen | None:
    """Launch the warm-up process when ``wanted()``; returns it (or None).  It runs detached, at a
    lower priority, with no output."""
    if not wanted():
        return None
    try:
        cache_dir().mkdir(parents=True, exist_ok=True)
        _mark(LOCK).touch()
        return subprocess.Popen([sys.executable, "-m", "accelsim.chip.warm"], stdin=subprocess.DEVNULL,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
                                env={**os.environ, "ACCELSIM_NO_WARM": "1"})
    except OSError:
        return None


def entries() -> list[tuple[object, tuple]]:
    """(dispatcher, sample arguments) for every kernel the value loops call, with the types the
    loops pass (C-contiguous arrays, int64 scalars, the requant stage's tuple type), in
    the order the warm-up compiles them: the opposite of the loops' (accelsim.chip.execute._execute),
    the 8-bit conv loops' kernels first, the timing loop last."""
    import kernels as K
    from kernels.state import CFG_SIZE, WIN_SIZE

    from . import execute as E
    from . import timing as T
    from .rows import ROW

    i = np.int64(0)
    mem, dram, b8 = np.zeros(4, np.int64), np.zeros(4, np.uint8), np.zeros(4, np.uint8)
    rows, cfgs, wins = np.zeros((1, ROW), np.int64), np.zeros((1, CFG_SIZE), np.int64), np.zeros((1, WIN_SIZE), np.int64)
    cfg, win = cfgs[0], wins[0]
    stage = _return_type(K.requant_stage, (mem, cfg, i, i))  # boxed, its float32 / int32 fields would turn wider
    wq, cq = np.zeros(4, np.int8), np.zeros(4, np.int64)
    conv8 = [
        (K.sumpool, (mem, cfg) + (i,) * 6), (K.avgpool, (mem, cfg) + (i,) * 8), (K.maxpool, (mem,) + (i,) * 6),
        (K.requant_fp32, (mem, cfg) + (i,) * 6),
        (K.gemm8, (mem, cfg) + (i,) * 7 + (wq, cq, i, b8, b8, i, stage)),
        (E._fused, (rows, i, cfgs, mem)), (E._weight_bytes, (rows, i, i, dram, mem)),
        (E._window_bytes, (rows, i, i, wins, dram, mem)), (E._workspace, (rows,)),
        (K.store, (mem, dram) + (i,) * 6), (K.loadw, (dram, mem) + (i,) * 8),
        (K.loadwin, (dram, mem, win) + (i,) * 9), (K.load, (dram, mem) + (i,) * 8),
    ]
    others = [
        (K.vlut, (mem,) + (i,) * 5), (K.shr, (mem,) + (i,) * 6), (K.vmin, (mem,) + (i,) * 5),
        (K.vmax, (mem,) + (i,) * 5), (K.vmul, (mem, cfg) + (i,) * 7), (K.vadd, (mem, cfg) + (i,) * 7),
        (K.requant, (mem, cfg) + (i,) * 6),
        (K.dwconv_into, (mem, cfg) + (i,) * 7 + (b8, b8, i, stage)),
        (K.gemm_into, (mem, cfg) + (i,) * 7 + (wq, cq, i, b8, b8, i, stage)),
    ]
    f64 = np.zeros(4, np.float64)
    timing = [(T.run_timing, (rows, cfgs, wins, dram, f64, np.zeros((1, 4), np.float64), cq, f64))]
    return conv8 + others + timing


def _return_type(disp, args: tuple) -> types.Type:
    """What ``disp`` returns for these arguments (compiled, or loaded from the cache, first)."""
    sig = signature(args)
    disp.compile(sig)
    return disp.overloads[sig].signature.return_type


def signature(args: tuple) -> tuple:
    """The Numba argument types of sample arguments (a Numba type stands for itself)."""
    return tuple(a if isinstance(a, types.Type) else typeof(a) for a in args)


def main() -> int:
    """Compile every entry (or load it from the cache), then leave the mark and drop the lock."""
    try:
        os.nice(5)  # behind the process it helps and anything else the user runs
    except (AttributeError, OSError):
        pass
    try:
        for disp, args in entries():
            disp.compile(signature(args))
        _mark(DONE).touch()
    finally:
        try:
            _mark(LOCK).unlink()
        except OSError:
            pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
