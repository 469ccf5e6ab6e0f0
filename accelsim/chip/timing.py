"""The chip's timing loop and cost model over a lowered program (accelsim.chip.rows).

:func:`run_timing` schedules the instructions on the load, compute and store units: each unit
runs its instructions in order; one starts when its unit is free and every token it pops has
been pushed (tokens are FIFO semaphores between neighbouring units); cycles = the makespan.  A
pop whose push never comes is a deadlock, reported with the blocked instruction.
:func:`instruction_cost` is one instruction's cycles, traffic and MACs (docs/chip.md).
"""

from __future__ import annotations

import numpy as np
from numba import njit

from kernels.state import CFG_A_BITS, CFG_W_BITS

from .counters import (C_ARRAY_BUSY, C_ARRAY_SLOTS, C_BUSY_LOAD, C_CYCLES, C_DRAM_RD_INPUT, C_DRAM_RD_OTHER,
                       C_DRAM_RD_PARAM, C_DRAM_RD_WEIGHT, C_DRAM_WR_OUTPUT, C_INSTRUCTIONS, C_MAC_4x4, C_MAC_8x4,
                       C_MAC_8x8, C_MAC_16x8, C_MAC_16x16, C_SRAM_RD_ACC, C_SRAM_RD_INP, C_SRAM_RD_PRM,
                       C_SRAM_RD_WGT, C_SRAM_WR_ACC, C_SRAM_WR_INP, C_SRAM_WR_WGT, C_STALL_LOAD, C_WEIGHT_COUNT,
                       P_BASE_BITS, P_COLS, P_DATAFLOW, P_DEC_DENSE, P_DRAM_BW, P_DRAM_LAT, P_MIN_BITS, P_OVERLAP,
                       P_ROWS, P_RQ_LANES, P_RQ_PIPE, P_VEC_LANES, P_VEC_PIPE)
from .rows import (OP_CONFIG, OP_DWCONV, OP_GEMM, OP_HALT, OP_LOAD, OP_LOADW, OP_LOADWIN, OP_NOP, OP_REQUANT,
                   OP_SETWIN, OP_SHR, OP_STORE, OP_VADD, OP_VLUT, OP_VMAX, OP_VMIN, OP_VMUL, OP_HOST)


@njit(cache=True)
def _ceil_div(a, b):
    return -(-a // b)


@njit(cache=True)
def precision_rate(w_bits, a_bits, base, lo):
    """Products per PE per cycle (Bit Fusion rule) as a (numerator, denominator) pair."""
    num, den = 1, 1
    for b in (w_bits, a_bits):
        if b <= base:
            num *= base // max(b, lo)
        else:
            den *= b // base
    while num % 2 == 0 and den % 2 == 0:  # 16x4 = one product per cycle, as 8x8
        num //= 2
        den //= 2
    return num, den


@njit(cache=True)
def gemm_cycles(m, n, k, num, den, p):
    """Analytical cycles of an m x n x k tile on the array (docs/chip.md).

    A fold maps one array-sized block; a partial block still costs a whole fold (the data skews
    through the whole physical array).  Per fold, with T the streamed length:
    output stationary (m x n outputs on the array, k streams): T + rows + cols - 2;
    weight stationary (k x n weights held, ``num`` per PE; m rows stream): T + 2 rows + cols - 2;
    input stationary (k x m inputs held; the n filters stream): T + 2 rows + cols - 2.
    These are SCALE-Sim v3's per-fold counts.  ``num / den`` products per PE per cycle: narrow
    operands shorten the reduction (more per PE), 16-bit operands take ``den`` cycles each.
    """
    rows, cols = p[P_ROWS], p[P_COLS]
    dataflow = p[P_DATAFLOW]
    if dataflow == 1:  # output stationary
        folds = _ceil_div(m, rows) * _ceil_div(n, cols)
        stream = _ceil_div(k * den, num)
        fill = rows + cols - 2
    elif dataflow == 0:  # weight stationary
        folds = _ceil_div(k, rows * num) * _ceil_div(n, cols)
        stream = m * den
        fill = 2 * rows + cols - 2  # load the weights (rows cycles), then skew fill and drain
    else:  # input stationary
        folds = _ceil_div(k, rows * num) * _ceil_div(m, cols)
        stream = n * den
        fill = 2 * rows + cols - 2
    if p[P_OVERLAP] == 1:
        return folds * stream + fill
    return folds * (stream + fill)


@njit(cache=True)
def _stream_bytes(dram, addr, count, fmt, bits, param):
    """Bytes a LOADW stream occupies (read from the initial image for the timing pass)."""
    if fmt == 0:
        return (count * bits + 7) // 8
    if fmt == 3:
        return ((1 << param) * bits + 7) // 8 + (count * param + 7) // 8
    if fmt == 1:
        mask = (count + 7) // 8
        nnz = 0
        for j in range(min(mask, dram.size - addr)):
            b = dram[addr + j]
            if j == mask - 1 and count % 8:
                b &= (1 << (count % 8)) - 1
            while b:
                nnz += b & 1
                b >>= 1
        return mask + (nnz * bits + 7) // 8
    produced = 0  # rle
    bitpos = 0
    entry = param + bits
    while produced < count and addr + (bitpos + entry + 7) // 8 <= dram.size:
        run = 0
        for t in range(param):
            q = bitpos + t
            run |= ((dram[addr + (q >> 3)] >> (q & 7)) & 1) << t
        produced += run + 1
        bitpos += entry
    return (bitpos + 7) // 8


@njit(cache=True, inline="always")
def _load_cost(r, p, counters):
    """LOAD: DRAM bytes of the block (counted by destination buffer), latency + bytes / bandwidth."""
    nbytes = _ceil_div(r[5] * r[6] * r[8], np.int64(8))
    buf = r[11]
    slot = C_DRAM_RD_INPUT if buf == 0 or buf == 3 else (C_DRAM_RD_PARAM if buf == 4 else C_DRAM_RD_OTHER)
    if buf == 1:
        slot = C_DRAM_RD_WEIGHT
    counters[slot] += nbytes
    counters[C_SRAM_WR_INP + buf] += r[5] * r[6]
    return p[P_DRAM_LAT] + _ceil_div(nbytes, p[P_DRAM_BW])


@njit(cache=True)
def _box_pixels(w, p0, p1):
    """Input pixels of the bounding box that output pixels p0..p1 of one image read."""
    in_h, in_w, k_h, k_w, out_w = w[0], w[1], w[3], w[4], w[11]
    oy0, oy1 = p0 // out_w, p1 // out_w
    ox0, ox1 = (p0 % out_w, p1 % out_w) if oy0 == oy1 else (0, out_w - 1)
    y0 = max(0, oy0 * w[5] - w[9])
    y1 = min(in_h - 1, oy1 * w[5] - w[9] + (k_h - 1) * w[7])
    x0 = max(0, ox0 * w[6] - w[10])
    x1 = min(in_w - 1, ox1 * w[6] - w[10] + (k_w - 1) * w[8])
    return max(0, y1 - y0 + 1) * max(0, x1 - x0 + 1)


@njit(cache=True, inline="always")
def _loadwin_cost(r, wins, p, counters):
    """LOADWIN: the bounding box of the windows is fetched once per image; the buffer writes every
    window."""
    w = wins[r[13]]
    k_h, k_w = w[3], w[4]
    per_image = w[13] * w[11]
    first, last = r[5], r[5] + r[6] - 1
    pixels = 0
    if per_image == 0:
        pixels = _box_pixels(w, first, last)
    else:
        for image in range(first // per_image, last // per_image + 1):
            lo = max(first, image * per_image) - image * per_image
            hi = min(last, (image + 1) * per_image - 1) - image * per_image
            pixels += _box_pixels(w, lo, hi)
    nbytes = _ceil_div(pixels * r[8] * r[9], np.int64(8))
    counters[C_DRAM_RD_INPUT] += nbytes
    counters[C_SRAM_WR_INP + r[12]] += r[6] * k_h * k_w * r[8]
    bw = p[P_DRAM_BW]
    return p[P_DRAM_LAT] + max(_ceil_div(nbytes, bw), _ceil_div(r[6] * k_h * k_w * r[8], max(1, bw)))


@njit(cache=True, inline="always")
def _loadw_cost(r, dram, p, counters):
    """LOADW: compressed bytes over DRAM or weights through the decompressor, the slower."""
    nbytes = _stream_bytes(dram, r[4], r[5], r[6], r[7], r[9])
    counters[C_DRAM_RD_WEIGHT] += nbytes
    counters[C_WEIGHT_COUNT] += r[5]
    counters[C_SRAM_WR_WGT] += r[5]
    return p[P_DRAM_LAT] + max(_ceil_div(nbytes, p[P_DRAM_BW]), _ceil_div(r[5], p[P_DEC_DENSE + r[6]]))


@njit(cache=True, inline="always")
def _store_cost(r, p, counters):
    nbytes = _ceil_div(r[5] * r[6] * r[8], np.int64(8))
    counters[C_DRAM_WR_OUTPUT] += nbytes
    counters[C_SRAM_RD_INP + r[9]] += r[5] * r[6]
    return p[P_DRAM_LAT] + _ceil_div(nbytes, p[P_DRAM_BW])


@njit(cache=True)
def _mac_slot(wb, ab):
    """The MAC counter of a precision pair."""
    if wb <= 4 and ab <= 4:
        return C_MAC_4x4
    if wb <= 8 and ab <= 8 and (wb <= 4 or ab <= 4):
        return C_MAC_8x4
    if wb > 8 and ab > 8:
        return C_MAC_16x16
    if wb > 8 or ab > 8:
        return C_MAC_16x8
    return C_MAC_8x8


@njit(cache=True, inline="always")
def _mac_cost(r, cfgs, p, counters):
    """GEMM (the tile formula) or DWCONV (one channel per column, the window through the column's PEs)."""
    cfg = cfgs[r[10]]
    wb, ab = cfg[CFG_W_BITS], cfg[CFG_A_BITS]
    num, den = precision_rate(wb, ab, p[P_BASE_BITS], p[P_MIN_BITS])
    if r[0] == OP_GEMM:
        m, n, k = r[6], r[7], r[8]
        macs = m * n * k
        cycles = gemm_cycles(m, n, k, num, den, p)
        counters[C_SRAM_RD_INP] += m * k
        counters[C_SRAM_RD_WGT] += n * k
        counters[C_SRAM_WR_ACC] += m * n
    else:
        m, rr, c = r[6], r[7], r[8]
        macs = m * rr * c
        cycles = _ceil_div(c, p[P_COLS]) * (m * _ceil_div(rr * den, p[P_ROWS] * num)) + p[P_ROWS] + p[P_COLS]
        counters[C_SRAM_RD_INP] += m * rr * c
        counters[C_SRAM_RD_WGT] += rr * c
        counters[C_SRAM_WR_ACC] += m * c
    if r[9] == 1:
        counters[C_SRAM_RD_ACC] += macs // max(1, (r[8] if r[0] == OP_GEMM else r[7]))
    counters[_mac_slot(wb, ab)] += macs
    counters[C_ARRAY_BUSY] += cycles
    counters[C_ARRAY_SLOTS] += macs * den / num  # PE-cycles the work needs at full rate
    return cycles


@njit(cache=True, inline="always")
def _vector_cost(r, p, counters):
    """REQUANT on its lanes; the vector unit's elementwise ops, table lookups and pools."""
    op = r[0]
    if op == OP_REQUANT:
        n_out = r[6] * r[7]
        counters[C_SRAM_RD_ACC] += n_out
        counters[C_SRAM_RD_PRM] += 3 * r[7]
        counters[C_SRAM_WR_INP + r[10]] += n_out
        return _ceil_div(n_out, p[P_RQ_LANES]) + p[P_RQ_PIPE]
    vec, pipe = p[P_VEC_LANES], p[P_VEC_PIPE]
    if op == OP_VADD or op == OP_VMUL or op == OP_VMAX or op == OP_VMIN or op == OP_SHR:
        n = r[6] if op != OP_SHR else r[5]
        return _ceil_div(n, vec) + pipe
    if op == OP_VLUT:  # one table read per element
        counters[C_SRAM_RD_INP + r[10]] += r[5]
        counters[C_SRAM_RD_PRM] += r[5]
        counters[C_SRAM_WR_INP + r[9]] += r[5]
        return _ceil_div(r[5], vec) + pipe
    return _ceil_div(r[5] * r[6] * r[7], vec) + pipe  # MAXPOOL, AVGPOOL, SUMPOOL


@njit(cache=True, inline="always")
def instruction_cost(r, cfgs, wins, dram, p, counters):
    """Cycles of one instruction on its unit; adds its traffic and MACs to the counters.

    It and the per-unit cost functions have one call site each and are inlined into run_timing:
    compiled as separate cached functions they took 6 s of a cold start, inlined 1.8 s."""
    op = r[0]
    if op == OP_LOAD:
        return _load_cost(r, p, counters)
    if op == OP_LOADWIN:
        return _loadwin_cost(r, wins, p, counters)
    if op == OP_LOADW:
        return _loadw_cost(r, dram, p, counters)
    if op == OP_STORE:
        return _store_cost(r, p, counters)
    if op == OP_GEMM or op == OP_DWCONV:
        return _mac_cost(r, cfgs, p, counters)
    if op == OP_NOP or op == OP_HALT or op == OP_CONFIG or op == OP_SETWIN or op == OP_HOST:
        return 1
    return _vector_cost(r, p, counters)  # REQUANT and the vector unit


@njit(cache=True, nogil=True)
def run_timing(rows, cfgs, wins, dram, p, counters, segment, finish_at):
    """Schedule the three units; returns the index of a deadlocked instruction or -1.

    ``counters`` is (segments, N_COUNTERS): instruction i's traffic, MACs and unit activity go to
    row ``segment[i]`` (a layer, for per-layer reports); ``finish_at[i]`` gets its finish cycle.
    Cycles and the instruction count go to row 0.
    """
    n = rows.shape[0]
    # per-unit instruction lists, in program order
    order = np.empty((3, n), np.int64)
    count = np.zeros(3, np.int64)
    for i in range(n):
        u = rows[i, 2]
        order[u, count[u]] = i
        count[u] += 1
    # token queues: 0 load->compute, 1 compute->load, 2 compute->store, 3 store->compute
    push_time = np.empty((4, n + 1), np.float64)
    pushes = np.zeros(4, np.int64)
    pops = np.zeros(4, np.int64)
    head = np.zeros(3, np.int64)
    free = np.zeros(3, np.float64)
    done = 0
    while done < n:
        progressed = False
        for u in range(3):
            while head[u] < count[u]:
                i = order[u, head[u]]
                tok = rows[i, 1]
                pop_prev, pop_next = tok & 1, (tok >> 1) & 1
                q_prev = 0 if u == 1 else 2  # queue a pop_prev reads (compute: from load; store: from compute)
                q_next = 1 if u == 0 else 3  # queue a pop_next reads (load: from compute; compute: from store)
                if pop_prev == 1 and pops[q_prev] >= pushes[q_prev]:
                    break
                if pop_next == 1 and pops[q_next] >= pushes[q_next]:
                    break
                ready = free[u]
                if pop_prev == 1:
                    ready = max(ready, push_time[q_prev, pops[q_prev]])
                    pops[q_prev] += 1
                if pop_next == 1:
                    ready = max(ready, push_time[q_next, pops[q_next]])
                    pops[q_next] += 1
                seg = counters[segment[i]]
                cost = instruction_cost(rows[i], cfgs, wins, dram, p, seg)
                seg[C_STALL_LOAD + u] += ready - free[u]
                seg[C_BUSY_LOAD + u] += cost
                finish = ready + cost
                finish_at[i] = finish
                free[u] = finish
                if (tok >> 2) & 1:  # push_prev: compute -> load (1), store -> compute (3)
                    q = 1 if u == 1 else 3
                    push_time[q, pushes[q]] = finish
                    pushes[q] += 1
                if (tok >> 3) & 1:  # push_next: load -> compute (0), compute -> store (2)
                    q = 0 if u == 0 else 2
                    push_time[q, pushes[q]] = finish
                    pushes[q] += 1
                head[u] += 1
                done += 1
                progressed = True
        if not progressed:
            blocked = n
            for u in range(3):
                if head[u] < count[u]:
                    blocked = min(blocked, order[u, head[u]])
            return blocked
    counters[0, C_CYCLES] = max(free[0], max(free[1], free[2]))
    counters[0, C_INSTRUCTIONS] = n
    return -1
