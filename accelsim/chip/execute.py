"""The chip's value loop: every instruction of a lowered program (accelsim.chip.rows), in program
order, executed by its kernel.  The values are exactly the golden semantics' (isa.semantics),
which define them in program order.  A HOST instruction ends the loop with the status HOST_CALL:
the simulator runs the host step and calls the loop again from the next instruction."""

from __future__ import annotations

import numpy as np
from numba import njit

import kernels as K
from kernels.clock import ticks
from kernels.state import CFG_A_BITS, CFG_MODE, CFG_W_BITS, HOST_CALL, MODE_FP32
from kernels.vnni import HAS_VNNI

from .rows import (OP_AVGPOOL, OP_CONFIG, OP_DWCONV, OP_GEMM, OP_HALT, OP_HOST, OP_LOAD, OP_LOADW, OP_LOADWIN,
                   OP_MAXPOOL, OP_NOP, OP_REQUANT, OP_SETWIN, OP_SHR, OP_STORE, OP_SUMPOOL, OP_VADD, OP_VLUT, OP_VMAX,
                   OP_VMIN, OP_VMUL)


#: the instructions of plain convolutional networks: a program that uses only these runs a loop
#: that links only their kernels (Numba prunes the others' branches), so a cold start compiles
#: 94 functions instead of 137
CONV_OPS = (OP_NOP, OP_HALT, OP_CONFIG, OP_SETWIN, OP_LOAD, OP_LOADWIN, OP_LOADW, OP_STORE, OP_GEMM, OP_REQUANT,
            OP_MAXPOOL, OP_AVGPOOL, OP_SUMPOOL, OP_HOST)


@njit(cache=True, inline="always")
def _execute(rows, i, cfgs, wins, dram, mem, wp, colsum, kept, conv_only, residual, narrow):
    """Row ``i`` by its kernel: (status, overflows).  ``wp`` and ``colsum`` are GEMM's weight
    workspace (``_workspace``), ``kept`` the store of packed weights kept across runs
    (``_packed``).  ``conv_only`` and ``residual`` (constants at each call site) leave the other
    kernels out of the compiled loop, ``narrow`` (every CONFIG has operands of at most 8 bits and
    the fp32 requant mode) GEMM's wider paths and REQUANT's fixed-point modes."""
    r = rows[i]
    op = r[0]
    st = 0
    over = 0
    if op == OP_LOAD:
        st = K.load(dram, mem, r[3], r[4], r[5], r[6], r[7], r[8], r[9], r[10])
    elif op == OP_LOADWIN:
        if not r[14]:  # a deferred one: its GEMMs gather the windows themselves (_window_bytes)
            st = K.loadwin(dram, mem, wins[r[13]], r[3], r[4], r[5], r[6], r[7], r[8], r[9], r[10], r[11])
    elif op == OP_LOADW:
        # a deferred one: its GEMMs decode the weights themselves (_weight_bytes); its readers' slots filled
        if not r[11] and not _filled(kept, r[12]):
            st = K.loadw(dram, mem, r[3], r[4], r[5], r[6], r[7], r[8], r[9], r[10])
    elif op == OP_STORE:
        st = K.store(mem, dram, r[3], r[4], r[5], r[6], r[7], r[8])
    elif op == OP_GEMM:
        slots = kept[0]
        slot = r[14] - 1 if r[14] <= slots.shape[0] else -1  # a store without slots keeps none
        wq, cq, reuse = _packed(wp, colsum, kept, slot, r[11])
        a_bytes = _window_bytes(rows, r[12], r[6] * r[8], wins, dram, mem)
        w_bytes = _weight_bytes(rows, r[13], reuse, dram, mem)
        dst, stage = _fused(rows, r[15], cfgs, mem)
        if narrow:
            over = K.gemm8(mem, cfgs[r[10]], r[3], r[4], r[5], r[6], r[7], r[8], r[9], wq, cq, reuse, a_bytes,
                           w_bytes, dst, stage)
        else:
            over = K.gemm_into(mem, cfgs[r[10]], r[3], r[4], r[5], r[6], r[7], r[8], r[9], wq, cq, reuse,
                               a_bytes, w_bytes, dst, stage)
        if HAS_VNNI and slot >= 0 and slots[slot, 4] == 0:  # only the VNNI byte path packs into slots
            slots[slot, 4] = 1
    elif not conv_only and op == OP_DWCONV:
        dst, stage = _fused(rows, r[13], cfgs, mem)
        over = K.dwconv_into(mem, cfgs[r[10]], r[3], r[4], r[5], r[6], r[7], r[8], r[9],
                             _window_bytes(rows, r[11], r[6] * r[7] * r[8], wins, dram, mem),
                             _weight_bytes(rows, r[12], np.int64(0), dram, mem), dst, stage)
    elif op == OP_REQUANT:
        if HAS_VNNI and r[11]:  # fused: the GEMM or DWCONV before it wrote its destination (_fused)
            pass
        elif narrow:
            st = K.requant_fp32(mem, cfgs[r[9]], r[3], r[4], r[5], r[6], r[7], r[8])
        else:
            st = K.requant(mem, cfgs[r[9]], r[3], r[4], r[5], r[6], r[7], r[8])
    elif (residual or not conv_only) and op == OP_VADD:
        st = K.vadd(mem, cfgs[r[10]], r[3], r[4], r[5], r[6], r[7], r[8], r[9])
    elif (residual or not conv_only) and op == OP_VMUL:
        st = K.vmul(mem, cfgs[r[10]], r[3], r[4], r[5], r[6], r[7], r[8], r[9])
    elif not conv_only and op == OP_VMAX:
        st = K.vmax(mem, r[3], r[4], r[5], r[6], r[7])
    elif not conv_only and op == OP_VMIN:
        st = K.vmin(mem, r[3], r[4], r[5], r[6], r[7])
    elif op == OP_MAXPOOL:
        st = K.maxpool(mem, r[3], r[4], r[5], r[6], r[7], r[8])
    elif op == OP_AVGPOOL:
        st = K.avgpool(mem, cfgs[r[10]], r[3], r[4], r[5], r[6], r[7], r[8], r[9], r[11])
    elif op == OP_SUMPOOL:
        over = K.sumpool(mem, cfgs[r[9]], r[3], r[4], r[5], r[6], r[7], r[8])
    elif not conv_only and op == OP_SHR:
        st = K.shr(mem, r[3], r[4], r[5], r[6], r[7], r[8])
    elif not conv_only and op == OP_VLUT:
        st = K.vlut(mem, r[3], r[4], r[5], r[6], r[7])
    elif op == OP_HOST:
        st = HOST_CALL
    return st, over


@njit(cache=True, inline="always")
def _packed(wp, colsum, kept, slot, reuse):
    """(weight bytes, row sums, reuse) of a GEMM: its slot in ``kept`` = (slots, bytes, sums, _) when
    its row names one (``slot`` >= 0) that the simulator keeps (state, column 4, not -1; only the
    VNNI byte path packs), with reuse when the slot is filled (state 1) already; else the
    workspace and the row's own ``reuse``."""
    slots, kw, ks, _ = kept
    if HAS_VNNI and slot >= 0 and slots[slot, 4] >= 0:
        s = slots[slot]
        return kw[s[0]:s[0] + s[1]], ks[s[2]:s[2] + s[3]], reuse | s[4]
    return wp[0:], colsum[0:], reuse  # slices too: one array type for both, one GEMM specialisation


@njit(cache=True)
def _fused(rows, requant, cfgs, mem):
    """(dst, stage) of the REQUANT that a GEMM's or DWCONV's row names (``requant``: 1 + its row;
    accelsim.chip.hints.fuse_requant) when this CPU fuses it (the VNNI byte path: kernels.mac), else
    (-1, an empty stage): the REQUANT then runs by itself."""
    if HAS_VNNI and requant:
        q = rows[requant - 1]
        return q[4], K.requant_stage(mem, cfgs[q[9]], q[5], q[7])
    return np.int64(-1), K.requant_stage(mem, cfgs[0], np.int64(0), np.int64(0))


@njit(cache=True, inline="always")
def _filled(kept, readers):
    """Whether every kept slot of a LOADW's record (``readers``: 1 + where it starts in kept[3],
    accelsim.chip.hints.kept_readers) is filled: then no instruction reads its words."""
    slots, lists = kept[0], kept[3]
    if readers == 0 or readers > lists.size:
        return False
    for q in range(lists[readers - 1]):
        s = lists[readers + q]
        if s >= slots.shape[0] or slots[s, 4] != 1:
            return False
    return True


@njit(cache=True)
def _window_bytes(rows, window, size, wins, dram, mem):
    """A GEMM's or DWCONV's activations (``size`` words) when its row names a deferred LOADWIN
    (``window``: 1 + its row): that LOADWIN's windows gathered from DRAM by its own kernel into a
    byte array (the words' low bytes, all the byte path reads).  Without VNNI the deferred LOADWIN
    runs here into INP instead (the same words it would have written: nothing between wrote them or
    its DRAM bytes).  Otherwise empty."""
    if window == 0:
        return np.empty(0, np.uint8)
    w = rows[window - 1]
    if HAS_VNNI:
        a = np.empty(size, np.uint8)
        K.loadwin(dram, a, wins[w[13]], w[3], np.int64(0), w[5], w[6], w[7], w[8], w[9], w[10], w[11])
        return a
    K.loadwin(dram, mem, wins[w[13]], w[3], w[4], w[5], w[6], w[7], w[8], w[9], w[10], w[11])
    return np.empty(0, np.uint8)


@njit(cache=True)
def _weight_bytes(rows, weights, reuse, dram, mem):
    """A GEMM's or DWCONV's weights when its row names a deferred (dense) LOADW (``weights``: 1 + its
    row) and it does not take packed ones (``reuse``): their low bytes, unpacked by LOADW's dense
    stream reader (kernels.weights.loadw: unpack_row).  Without VNNI the LOADW runs here into WGT
    instead.  Otherwise empty."""
    if weights == 0 or (reuse and HAS_VNNI):
        return np.empty(0, np.uint8)
    w = rows[weights - 1]
    if HAS_VNNI:
        b = np.empty(w[5], np.uint8)
        K.unpack_row(dram, w[4], np.int64(0), w[5], w[7], w[8], b, np.int64(0), np.int64(32))
        return b
    K.loadw(dram, mem, w[3], w[4], w[5], w[6], w[7], w[8], w[9], w[10])  # dense: cannot fault
    return np.empty(0, np.uint8)


@njit(cache=True)
def _workspace(rows):
    """GEMM's weight workspace for every GEMM of the program (kernels.mac.weight_workspace): packed
    weights that a GEMM whose row says ``reuse`` takes from the GEMM before it."""
    nbytes, words = 0, 1
    for i in range(rows.shape[0]):
        if rows[i, 0] == OP_GEMM:
            b, w = K.weight_workspace(rows[i, 7], rows[i, 8])
            nbytes, words = max(nbytes, b), max(words, w)
    return np.empty(nbytes, np.int8), np.zeros(words, np.int64)


@njit(cache=True, inline="always")
def _loop(rows, cfgs, wins, dram, mem, kept, start, conv_only, residual, narrow):
    """Execute in program order from ``start``; returns (index of the failing or HOST instruction or
    -1, status, overflows)."""
    overflows = 0
    wp, colsum = _workspace(rows)
    for i in range(start, rows.shape[0]):
        st, over = _execute(rows, i, cfgs, wins, dram, mem, wp, colsum, kept, conv_only, residual, narrow)
        overflows += over
        if st != 0:
            return i, st, overflows
    return -1, 0, overflows


@njit(cache=True, nogil=True)
def run_values(rows, cfgs, wins, dram, mem, kept, start=0):
    """The value loop over every instruction type (``_loop``).  ``kept`` = (slots, bytes, sums,
    readers): the packed weights kept across runs (``_packed``, ``_filled``; ``no_kept()`` for
    none).  It releases the GIL: simulators in several threads run at once."""
    return _loop(rows, cfgs, wins, dram, mem, kept, start, False, False, False)


@njit(cache=True, nogil=True)
def run_values_residual(rows, cfgs, wins, dram, mem, kept, start=0):
    """``run_values`` for programs of RESIDUAL_OPS only (the caller checks)."""
    return _loop(rows, cfgs, wins, dram, mem, kept, start, True, True, False)


@njit(cache=True, nogil=True)
def run_values_residual8(rows, cfgs, wins, dram, mem, kept, start=0):
    """``run_values_residual`` for programs whose every CONFIG has operands of at most 8 bits and
    the fp32 requant mode."""
    return _loop(rows, cfgs, wins, dram, mem, kept, start, True, True, True)


@njit(cache=True, nogil=True)
def run_values_conv(rows, cfgs, wins, dram, mem, kept, start=0):
    """``run_values`` for programs of CONV_OPS only (the caller checks)."""
    return _loop(rows, cfgs, wins, dram, mem, kept, start, True, False, False)


@njit(cache=True, nogil=True)
def run_values_conv8(rows, cfgs, wins, dram, mem, kept, start=0):
    """``run_values_conv`` for programs whose every CONFIG has operands of at most 8 bits and the
    fp32 requant mode."""
    return _loop(rows, cfgs, wins, dram, mem, kept, start, True, False, True)


def no_kept() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """An empty store of kept packed weights (no slot)."""
    return np.zeros((0, 5), np.int64), np.empty(0, np.int8), np.zeros(0, np.int64), np.zeros(0, np.int64)


#: and of residual networks (CONV_OPS and the vector unit's Add and Mul)
RESIDUAL_OPS = CONV_OPS + (OP_VADD, OP_VMUL)


def value_loop(rows, cfgs=None):
    """The value loop for a lowered program: the smallest that runs every instruction it uses and
    every CONFIG it sets (``cfgs``, the kernels' CONFIG table; None: any)."""
    used = set(np.unique(rows[:, 0]).tolist()) if len(rows) else set()
    narrow = cfgs is not None and bool(np.all((cfgs[:, CFG_A_BITS] <= 8) & (cfgs[:, CFG_W_BITS] <= 8)
                                              & (cfgs[:, CFG_MODE] == MODE_FP32)))
    if used <= set(CONV_OPS):
        return run_values_conv8 if narrow else run_values_conv
    if used <= set(RESIDUAL_OPS):
        return run_values_residual8 if narrow else run_values_residual
    return run_values


@njit(cache=True, nogil=True)
def run_values_profiled(rows, cfgs, wins, dram, mem, kept, start, ticks_per_row):
    """``run_values`` that also adds each instruction's host cycles (kernels.clock) to
    ``ticks_per_row[i]``: where the simulator's own time goes."""
    overflows = 0
    wp, colsum = _workspace(rows)
    for i in range(start, rows.shape[0]):
        t0 = ticks()
        st, over = _execute(rows, i, cfgs, wins, dram, mem, wp, colsum, kept, False, False, False)
        ticks_per_row[i] += ticks() - t0
        overflows += over
        if st != 0:
            return i, st, overflows
    return -1, 0, overflows
