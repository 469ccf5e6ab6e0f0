"""MAC-array kernels: GEMM and DWCONV (twins of isa.semantics.gemm / dwconv).

GEMM takes one of four paths, chosen per instruction from CONFIG (only this CPU's are compiled):
* AVX512-VNNI, operands of at most 8 bits: u8 x s8 tiles on ``vpdpbusd`` (kernels.vnni),
  activations shifted to unsigned bytes and unsigned weights to signed ones (``gemm8`` is this path
  alone, for value loops whose program has no wider CONFIG);
* AVX512-VNNI, activations of up to 16 bits and weights that fit int16 minus their zero point:
  int16 tiles on ``vpdpwssd``, activations split in two digits;
* without VNNI, operands of at most 8 bits: a 4 x 4 register-blocked micro-kernel on int16 panels
  whose loop over k LLVM vectorizes, int32 sums (``vpmaddwd`` / ``vpmulld``);
* otherwise int32 panels and exact int64 sums (``vpmuldq``).

Exactness: an 8-bit operand minus its zero point lies in [-255, 255], so one product is at most
65025 in magnitude and K <= 16383 of them stay below 2^31: the int32 sums are exact.  17-bit
operands give products below 2^34 and sums below 2^48: exact in int64 (the digit path's bounds
are in _gemm_wide16).  The result is then wrapped to CONFIG.acc_bits, which equals wrapping at
every step because wrap-around is a ring homomorphism.

Fused requantization: given ``dst`` >= 0 and a REQUANT's fp32 stage (kernels.requant.fp32_stage),
the VNNI GEMM and DWCONV's byte path requantize their int32 sums straight into dst, as the REQUANT
after them would from ACC, and leave ACC as it was (the value loop passes them only when the lowering
found that nothing reads those ACC words before later writes replace them: accelsim.chip.hints).
"""

from __future__ import annotations

import numpy as np
from numba import njit, uintp

from .common import operand, type_range, wrap
from .requant import requant_stage, requant_sums
from .vnni import (HAS_VNNI, LANES, QUAD, STRIP_STEP, tile_4x1, tile_4x2, tile_8x1, tile_8x2, wtile_4x1, wtile_4x2,
                   wtile_8x1, wtile_8x2)
from .state import (CFG_A_BITS, CFG_A_SIGNED, CFG_A_ZP, CFG_ACC_BITS, CFG_W_BITS, CFG_W_SIGNED,
                    CFG_W_ZP)

KC = 1024  # K-chunk of the packed panels
KC16 = 254  # K-chunk of the 16-bit path (exact int32 sums of digit x weight products)
NC = 64    # weight rows per packed weight panel (kept in L2)
MR = NR = 4


def _make_micro(acc: str):
    """The 4 x 4 micro-kernel C[i:i+4, cj:cj+4] += Ap[i:i+4, :kc] @ Wp[j:j+4, :kc].T.

    ``acc`` is the accumulation type (``int32`` or ``int64``).  Operands are widened to it before
    the multiply (plain numpy, with the JIT disabled, would multiply int16 by int16 in int16), and
    each product and partial sum is cast back to it: Numba widens integer products to int64, and
    the casts let LLVM keep the arithmetic in narrow lanes (``vpmulld``/``vpaddd`` on int32).
    Written out by code so that the sixteen accumulators stay scalars (registers) in Numba.
    """
    pairs = [(r, s) for r in range(MR) for s in range(NR)]
    src = ["def micro(Ap, Wp, C, i, j, cj, kc):"]
    src += [f"    s{r}{s} = T(0)" for r, s in pairs]
    src += ["    for p in range(kc):"]
    src += [f"        a{r} = T(Ap[i + {r}, p])" for r in range(MR)]
    src += [f"        w{s} = T(Wp[j + {s}, p])" for s in range(NR)]
    src += [f"        s{r}{s} = T(s{r}{s} + T(a{r} * w{s}))" for r, s in pairs]
    src += [f"    C[i + {r}, cj + {s}] += s{r}{s}" for r, s in pairs]
    namespace = {"T": getattr(np, acc)}
    exec("\n".join(src), namespace)  # noqa: S102 - generated from the constants above only
    # Not cached by itself (generated code has no file): it is inlined into _gemm_panels, which is.
    return njit(inline="always", boundscheck=False)(namespace["micro"])


_micro_i32 = _make_micro("int32")
_micro_i64 = _make_micro("int64")


@njit(cache=True, inline="always")
def _ceil(x, q):
    """x rounded up to a multiple of q."""
    return -(-x // q) * q


@njit(cache=True, boundscheck=False)
def _pack(mem, at, rows, row_len, k0, kc, bits, signed, zp, panel):
    """panel[r, p] = operand(mem[at + r*row_len + k0 + p]) - zp, for r < rows and p < kc."""
    for r in range(rows):
        src = at + r * row_len + k0
        for p in range(kc):
            panel[uintp(r), uintp(p)] = operand(mem[uintp(src + p)], bits, signed) - zp


@njit(cache=True, boundscheck=False)
def _pack_bytes(a_bytes, rows, row_len, k0, kc, bits, signed, sa, panel):
    """panel[r, p] = operand(a_bytes[r*row_len + k0 + p]) + sa (mod 256; ``panel`` is uint8, sa is
    0 or +-128): ``_pack`` from the low bytes of the operand words, all an operand of at most 8
    bits depends on."""
    if bits == 8:  # adding +-128 mod 256 flips the top bit: byte lanes
        flip = np.uint8(128 if sa != 0 else 0)
        for r in range(rows):
            src = r * row_len + k0
            for p in range(kc):
                panel[uintp(r), uintp(p)] = a_bytes[uintp(src + p)] ^ flip
        return
    for r in range(rows):
        src = r * row_len + k0
        for p in range(kc):
            panel[uintp(r), uintp(p)] = (operand(np.int64(a_bytes[uintp(src + p)]), bits, signed) + sa) & 255


@njit(cache=True, boundscheck=False)
def _gemm_panels(mem, cfg, inp_at, wgt_at, m, n, k, C, Ap, Wp, wide):
    """C (m x n, at least rounded up to 4 x 4) += A @ W.T over packed K-chunks; ``wide`` selects the
    int64 micro-kernel.  Ap and Wp have whole 4-row blocks, so the edges run the vector micro-kernel
    too: the extra rows (whatever they hold) make sums outside m x n."""
    a_bits, a_signed, a_zp = cfg[CFG_A_BITS], cfg[CFG_A_SIGNED], cfg[CFG_A_ZP]
    w_bits, w_signed, w_zp = cfg[CFG_W_BITS], cfg[CFG_W_SIGNED], cfg[CFG_W_ZP]
    m_pad = _ceil(m, MR)
    for k0 in range(0, k, KC):
        kc = min(KC, k - k0)
        _pack(mem, inp_at, m, k, k0, kc, a_bits, a_signed, a_zp, Ap)
        for j0 in range(0, n, NC):
            nc = min(NC, n - j0)
            _pack(mem, wgt_at + j0 * k, nc, k, k0, kc, w_bits, w_signed, w_zp, Wp)
            for i in range(0, m_pad, MR):
                for j in range(0, nc, NR):
                    if wide:
                        _micro_i64(Ap, Wp, C, i, j, j0 + j, kc)
                    else:
                        _micro_i32(Ap, Wp, C, i, j, j0 + j, kc)


@njit(cache=True, boundscheck=False)
def _to_strips(Wr, rows, steps, Wp, strip_bytes):
    """Row-packed weights Wr (rows x ``steps`` groups of 4 bytes) into the VNNI tiles' strips
    (kernels.vnni): the group (row j, step q) at byte (j // 16) * strip_bytes + 64 q + 4 (j % 16).
    Groups move as int32, a strip's step (one cache line) at a time."""
    src = Wr.reshape(-1).view(np.int32)
    dst = Wp.view(np.int32)
    row32 = src.size // Wr.shape[0]
    for s in range(-(-rows // LANES)):
        lanes = min(LANES, rows - s * LANES)
        for q in range(steps):
            out = s * (strip_bytes // QUAD) + q * LANES
            for c in range(lanes):
                dst[uintp(out + c)] = src[uintp((s * LANES + c) * row32 + q)]


@njit(cache=True, inline="always", boundscheck=False)
def _row_sums(Wr, rows, width, colsum, j0):
    """colsum[j0 + j] += sum of Wr[j, :width] (byte rows: the u8 x s8 path's zero-point terms)."""
    for j in range(rows):
        total = 0
        for p in range(width):
            total += np.int64(Wr[uintp(j), uintp(p)])
        colsum[j0 + j] += total


def _make_tiles(t8x2, t8x1, t4x2, t4x1):
    """tiles(Ap, Wp, C, rows, strips, steps, strip_bytes): C[:rows, :16 strips] += the VNNI tiles
    of Ap's rows (a multiple of 4) and Wp's strips over ``steps`` steps.  Not cached by itself (a
    closure): inlined into the cached GEMM drivers."""

    def tiles(Ap, Wp, C, rows, strips, steps, strip_bytes):
        for i in range(0, rows, 8):
            if i + 8 <= rows:
                for s in range(0, strips - 1, 2):
                    t8x2(Ap, Wp, C, i, s, steps, strip_bytes)
                if strips % 2:
                    t8x1(Ap, Wp, C, i, strips - 1, steps, strip_bytes)
            else:
                for s in range(0, strips - 1, 2):
                    t4x2(Ap, Wp, C, i, s, steps, strip_bytes)
                if strips % 2:
                    t4x1(Ap, Wp, C, i, strips - 1, steps, strip_bytes)
    return njit(inline="always", boundscheck=False)(tiles)


_tiles = _make_tiles(tile_8x2, tile_8x1, tile_4x2, tile_4x1)
_wtiles = _make_tiles(wtile_8x2, wtile_8x1, wtile_4x2, wtile_4x1)


@njit(cache=True, inline="always")
def _chunk(k, kc):
    """The K chunk of the byte path: balanced chunks of at most ``kc``, whole steps of 4."""
    return _ceil(-(-k // -(-k // kc)), QUAD)


@njit(cache=True, inline="always")
def weight_workspace(n, k):
    """(bytes, words) of the workspace the byte path packs an n x k weight operand into: its strips
    (every K chunk) and its row sums plus one flag word (``_pack_weights``)."""
    steps = _chunk(k, KC) // QUAD
    return -(-k // (steps * QUAD)) * (_ceil(n, LANES) // LANES) * steps * STRIP_STEP, n + 1


@njit(cache=True, boundscheck=False)
def _pack_weights(mem, cfg, wgt_at, n, k, Wp, colsum, sums, w_bytes):
    """W (n x k words, or their low bytes ``w_bytes`` when not empty) as the VNNI tiles' signed
    bytes W' = w - tw (tw = 128 for unsigned weights), in strips, K chunk c at byte
    c * (strips of n) * strip_bytes, and (``sums``) its row sums sum_k W' in colsum[:n];
    colsum[-1] says whether they are there.  K is padded to whole steps of 4 with zero weights
    (they add nothing whatever A holds there)."""
    w_bits, w_signed = cfg[CFG_W_BITS], cfg[CFG_W_SIGNED]
    tw = 0 if w_signed else 128
    kc_max = _chunk(k, KC)
    strip_bytes = kc_max // QUAD * STRIP_STEP
    chunk_bytes = _ceil(n, LANES) // LANES * strip_bytes
    Wr = np.zeros((min(NC, n), kc_max), np.int8)  # rows first (vectorized), then strips
    colsum[:n] = 0
    for k0 in range(0, k, kc_max):
        kc = min(kc_max, k - k0)
        steps = _ceil(kc, QUAD) // QUAD
        if kc % QUAD:  # a shorter last chunk: zero weights past kc
            Wr[:, kc:] = 0
        for j0 in range(0, n, NC):
            nc = min(NC, n - j0)
            if w_bytes.size:
                _pack_bytes(w_bytes[j0 * k:], nc, k, k0, kc, w_bits, w_signed, np.int64(-tw), Wr.view(np.uint8))
            else:
                _pack(mem, wgt_at + j0 * k, nc, k, k0, kc, w_bits, w_signed, np.int64(tw), Wr)
            _to_strips(Wr, nc, steps, Wp[k0 // kc_max * chunk_bytes + j0 // LANES * strip_bytes:], strip_bytes)
            if sums:
                _row_sums(Wr, nc, kc, colsum, j0)
    colsum[colsum.size - 1] = sums


@njit(cache=True, boundscheck=False)
def _strip_sums(Wp, n, k, colsum):
    """colsum[:n] = the row sums of the weights packed in Wp (``_pack_weights``), read back from the
    strips (the padding past k is zero); colsum[-1] = 1."""
    kc_max = _chunk(k, KC)
    steps_max = kc_max // QUAD
    strips = _ceil(n, LANES) // LANES
    colsum[:n] = 0
    for c in range(-(-k // kc_max)):
        for s in range(strips):
            at = (c * strips + s) * steps_max * STRIP_STEP
            for q in range(steps_max):
                for lane in range(min(LANES, n - s * LANES)):
                    b = at + q * STRIP_STEP + lane * QUAD
                    colsum[s * LANES + lane] += (np.int64(Wp[uintp(b)]) + np.int64(Wp[uintp(b + 1)])
                                                 + np.int64(Wp[uintp(b + 2)]) + np.int64(Wp[uintp(b + 3)]))
    colsum[colsum.size - 1] = 1


@njit(cache=True, boundscheck=False)
def _gemm_vnni(mem, cfg, inp_at, wgt_at, m, n, k, C, Wp, colsum, reuse, a_bytes, w_bytes):
    """C (m x n, rows rounded up to 4 and columns to 16) += A @ W.T for operands of at most 8 bits
    on u8 x s8 panels with the AVX512-VNNI tiles.

    A is packed as unsigned bytes A' = a + sa (sa = 128 when signed), W as signed bytes
    W' = w - tw (tw = 128 when unsigned; ``_pack_weights``, skipped when ``reuse`` says Wp and
    colsum hold this operand already: the row sums, when this GEMM needs them and they are not
    there, are read back from the strips) and A and W from ``a_bytes`` and ``w_bytes`` (the low
    bytes of their words) instead of INP and WGT when those are not empty; with ca = a_zp + sa and
    cw = w_zp - tw,
    sum (a - a_zp)(w - w_zp) = sum A'W' - ca sum_k W' - cw sum_k A' + K ca cw, the correction taken
    out per row and column at the end (every exact result fits int32).  The extra rows and columns
    of a tile (whatever the panels hold there) land outside m x n."""
    a_bits, a_signed, a_zp = cfg[CFG_A_BITS], cfg[CFG_A_SIGNED], cfg[CFG_A_ZP]
    w_signed, w_zp = cfg[CFG_W_SIGNED], cfg[CFG_W_ZP]
    sa = 128 if a_signed else 0
    tw = 0 if w_signed else 128
    ca, cw = a_zp + sa, w_zp - tw
    if not reuse:
        _pack_weights(mem, cfg, wgt_at, n, k, Wp, colsum, ca != 0, w_bytes)
    elif ca != 0 and colsum[colsum.size - 1] == 0:
        _strip_sums(Wp, n, k, colsum)
    kc_max = _chunk(k, KC)  # balanced chunks of at most KC (1152 = 2 x 576)
    m_pad = _ceil(m, MR)
    strip_bytes = kc_max // QUAD * STRIP_STEP
    chunk_bytes = _ceil(n, LANES) // LANES * strip_bytes
    Ap = np.zeros((m_pad, kc_max), np.uint8)
    rowsum = np.zeros(m, np.int64)  # sum_k A'[m, k]
    for k0 in range(0, k, kc_max):
        kc = min(kc_max, k - k0)
        steps = _ceil(kc, QUAD) // QUAD
        if a_bytes.size:
            _pack_bytes(a_bytes, m, k, k0, kc, a_bits, a_signed, np.int64(sa), Ap)
        else:
            _pack(mem, inp_at, m, k, k0, kc, a_bits, a_signed, np.int64(-sa), Ap)
        if cw != 0:
            _row_sums(Ap, m, kc, rowsum, np.int64(0))
        for j0 in range(0, n, NC):
            nc = min(NC, n - j0)
            _tiles(Ap, Wp[k0 // kc_max * chunk_bytes + j0 // LANES * strip_bytes:], C[:, j0:], m_pad,
                   _ceil(nc, LANES) // LANES, steps, strip_bytes)
    if ca != 0 or cw != 0:  # row by row (contiguous), in int32 lanes: each result fits int32, so
        both = k * ca * cw    # its terms may wrap there (arithmetic modulo 2^32)
        col = np.empty(n, np.int32)
        for j in range(n):
            col[uintp(j)] = np.int32(ca * colsum[uintp(j)])
        for i in range(m):
            row = np.int32(both - cw * rowsum[uintp(i)])
            for j in range(n):
                C[uintp(i), uintp(j)] = np.int32(np.int32(C[uintp(i), uintp(j)] + row) - col[uintp(j)])


@njit(cache=True, inline="always", boundscheck=False)
def _pack_digits(mem, at, rows, row_len, k0, kc, bits, signed, zp, Ap):
    """Ap[2r, p] and Ap[2r + 1, p]: the digits hi, lo of a = operand(mem[at + r*row_len + k0 + p]) - zp
    with a = 256 hi + lo, lo in 0..255 and hi in -256..255 (a has at most 17 bits)."""
    for r in range(rows):
        src = at + r * row_len + k0
        for p in range(kc):
            a = operand(mem[uintp(src + p)], bits, signed) - zp
            Ap[uintp(2 * r), uintp(p)] = a >> 8
            Ap[uintp(2 * r + 1), uintp(p)] = a & 255


@njit(cache=True, boundscheck=False)
def _gemm_wide16(mem, cfg, inp_at, wgt_at, m, n, k, C):
    """C (m x n, int64, rows rounded up to 4 and columns to 16) += A @ W.T for operands of up to 16
    bits on the int16 VNNI tiles (vpdpwssd).

    Each activation minus its zero point (17 bits) is split in two digits, rows 2i and 2i + 1 of
    the A panel; weights minus theirs fit int16.  A digit times a weight is at most 2^23 in
    magnitude, so 254 of them (a chunk of K; chunks balanced) sum exactly in an int32 lane; each
    tile ends adding 256 * sum[2i] + sum[2i + 1] to C[i] in int64.  K is padded to whole pairs with
    zero weights."""
    a_bits, a_signed, a_zp = cfg[CFG_A_BITS], cfg[CFG_A_SIGNED], cfg[CFG_A_ZP]
    w_bits, w_signed, w_zp = cfg[CFG_W_BITS], cfg[CFG_W_SIGNED], cfg[CFG_W_ZP]
    chunks = -(-k // KC16)
    kc_max = _ceil(-(-k // chunks), 2)  # balanced chunks of at most KC16
    steps_max = kc_max // 2
    strip_bytes = steps_max * STRIP_STEP
    rows = 2 * _ceil(m, MR)
    Ap = np.zeros((rows, kc_max), np.int16)
    Wr = np.zeros((min(NC, n), kc_max), np.int16)
    Wp = np.zeros(_ceil(min(NC, n), LANES) // LANES * strip_bytes // 2, np.int16)
    for k0 in range(0, k, kc_max):
        kc = min(kc_max, k - k0)
        steps = _ceil(kc, 2) // 2
        if kc % 2:  # an odd last chunk: a zero weight pads the last pair
            Wr[:, kc:] = 0
        _pack_digits(mem, inp_at, m, k, k0, kc, a_bits, a_signed, a_zp, Ap)
        for j0 in range(0, n, NC):
            nc = min(NC, n - j0)
            _pack(mem, wgt_at + j0 * k, nc, k, k0, kc, w_bits, w_signed, w_zp, Wr)
            _to_strips(Wr, nc, steps, Wp, strip_bytes)
            _wtiles(Ap, Wp, C[:, j0:], rows, _ceil(nc, LANES) // LANES, steps, strip_bytes)


@njit(cache=True, boundscheck=False)
def _write_acc(mem, acc_at, C, m, n, accumulate, acc_bits):
    """Store the (exact) sums C[:m, :n] wrapped to acc_bits; returns how many wrapped (overflowed).
    Exact int32 sums written without accumulating to accumulators of at least 32 bits are their
    own wrap: copied (sign-extended)."""
    if C.itemsize == 4 and not accumulate and acc_bits >= 32:
        for i in range(m):
            at = acc_at + i * n
            for j in range(n):
                mem[uintp(at + j)] = C[uintp(i), uintp(j)]
        return 0
    overflows = 0
    for i in range(m):
        at = acc_at + i * n
        for j in range(n):
            v = np.int64(C[uintp(i), uintp(j)])
            if accumulate:
                v += mem[uintp(at + j)]
            w = wrap(v, acc_bits)
            overflows += w != v
            mem[uintp(at + j)] = w
    return overflows


@njit(cache=True, inline="always")
def uses_int16_panels(a_bits, w_bits):
    """Operands of at most 8 bits (4x4, 8x4, 8x8): without AVX512-VNNI they run on int16 panels
    with int32 sums (with VNNI on the u8 x s8 tiles, ``uses_vnni``)."""
    return a_bits <= 8 and w_bits <= 8


@njit(cache=True, inline="always")
def uses_vnni(a_bits, w_bits):
    """On an AVX512-VNNI CPU: operands of at most 8 bits (any signedness and zero points) run the
    u8 x s8 ``vpdpbusd`` tiles."""
    return HAS_VNNI and a_bits <= 8 and w_bits <= 8


@njit(cache=True, inline="always")
def uses_wide16(a_bits, w_bits, w_signed, w_zp):
    """On an AVX512-VNNI CPU: activations of up to 16 bits and weights that, minus their zero
    point, fit int16 (the 16-bit operands) run the int16 tiles with activations in two digits."""
    w_lo, w_hi = type_range(w_bits, w_signed)
    return HAS_VNNI and a_bits <= 16 and w_bits <= 16 and w_lo - w_zp >= -32768 and w_hi - w_zp <= 32767


@njit(cache=True, inline="always", boundscheck=False)
def _panel_gemm(mem, cfg, inp_at, wgt_at, acc_at, m, n, k, accumulate, acc_type, panel_type, wide):
    """GEMM on the portable panels: sums of ``acc_type`` over panels of ``panel_type`` (int32 over
    int16 for operands of at most 8 bits, int64 over int32 for wider ones, ``wide``)."""
    m_pad, kc = _ceil(m, MR), min(KC, k)
    C = np.zeros((m_pad, _ceil(n, NR)), acc_type)
    _gemm_panels(mem, cfg, inp_at, wgt_at, m, n, k, C, np.zeros((m_pad, kc), panel_type),
                 np.zeros((_ceil(min(NC, n), NR), kc), panel_type), wide)
    return _write_acc(mem, acc_at, C, m, n, accumulate, cfg[CFG_ACC_BITS])


@njit(cache=True, inline="always", boundscheck=False)
def _gemm_bytes(mem, cfg, inp_at, wgt_at, acc_at, m, n, k, accumulate, Wp, colsum, reuse, a_bytes, w_bytes, dst,
                stage):
    """GEMM of operands of at most 8 bits: the u8 x s8 tiles with AVX512-VNNI (their sums requantized
    into ``dst`` by ``stage`` when dst >= 0: the module's fused requantization), else the int16 panels."""
    m_pad = _ceil(m, MR)
    if HAS_VNNI:  # a constant when compiled: Numba compiles only this CPU's path
        C32 = np.zeros((m_pad, _ceil(n, LANES)), np.int32)
        _gemm_vnni(mem, cfg, inp_at, wgt_at, m, n, k, C32, Wp, colsum, reuse, a_bytes, w_bytes)
        if dst >= 0:
            requant_sums(C32.reshape(C32.size), np.int64(0), np.int64(C32.shape[1]), mem, dst, m, stage)
            return 0
        return _write_acc(mem, acc_at, C32, m, n, accumulate, cfg[CFG_ACC_BITS])
    else:
        return _panel_gemm(mem, cfg, inp_at, wgt_at, acc_at, m, n, k, accumulate, np.int32, np.int16, False)


@njit(cache=True, boundscheck=False)
def gemm_into(mem, cfg, inp_at, wgt_at, acc_at, m, n, k, accumulate, Wp, colsum, reuse, a_bytes, w_bytes, dst,
              stage):
    """GEMM: ACC[m,n] (+)= sum_k (INP[m,k] - a_zp) * (WGT[n,k] - w_zp), wrapped to acc_bits.

    ``Wp`` and ``colsum`` are the byte path's weight workspace (at least ``weight_workspace(n, k)``);
    ``reuse``: they hold this instruction's weight operand, packed by an earlier GEMM (the value
    loop knows from the lowering, accelsim.chip.hints).  ``a_bytes`` and ``w_bytes``, when not
    empty, hold the low bytes of the activation words (m x k) and weight words (n x k) in place of
    INP and WGT: only the VNNI byte path takes them (the value loop gives them to no other), as it
    alone takes ``dst`` >= 0 and ``stage`` (the module's fused requantization; -1: none).  Returns the number of accumulators
    whose exact value did not fit acc_bits (they wrapped).
    """
    a_bits, w_bits, w_signed, w_zp = cfg[CFG_A_BITS], cfg[CFG_W_BITS], cfg[CFG_W_SIGNED], cfg[CFG_W_ZP]
    if uses_int16_panels(a_bits, w_bits):  # operands of at most 8 bits
        return _gemm_bytes(mem, cfg, inp_at, wgt_at, acc_at, m, n, k, accumulate, Wp, colsum, reuse, a_bytes,
                           w_bytes, dst, stage)
    m_pad = _ceil(m, MR)
    if HAS_VNNI and uses_wide16(a_bits, w_bits, w_signed, w_zp):
        C64 = np.zeros((m_pad, _ceil(n, LANES)), np.int64)
        _gemm_wide16(mem, cfg, inp_at, wgt_at, m, n, k, C64)
        return _write_acc(mem, acc_at, C64, m, n, accumulate, cfg[CFG_ACC_BITS])
    return _panel_gemm(mem, cfg, inp_at, wgt_at, acc_at, m, n, k, accumulate, np.int64, np.int32, True)


@njit(cache=True, boundscheck=False)
def gemm(mem, cfg, inp_at, wgt_at, acc_at, m, n, k, accumulate):
    """``gemm_into`` on a workspace of its own (one instruction by itself)."""
    nbytes, words = weight_workspace(n, k)
    return gemm_into(mem, cfg, inp_at, wgt_at, acc_at, m, n, k, accumulate, np.empty(nbytes, np.int8),
                     np.zeros(words, np.int64), False, np.empty(0, np.uint8), np.empty(0, np.uint8), np.int64(-1),
                     requant_stage(mem, cfg, 0, 0))


@njit(cache=True, boundscheck=False)
def gemm8(mem, cfg, inp_at, wgt_at, acc_at, m, n, k, accumulate, Wp, colsum, reuse, a_bytes, w_bytes, dst, stage):
    """``gemm_into`` for a CONFIG whose operands have at most 8 bits, without its wider paths: the
    value loop of a program whose every CONFIG is so links this one (less to compile)."""
    return _gemm_bytes(mem, cfg, inp_at, wgt_at, acc_at, m, n, k, accumulate, Wp, colsum, reuse, a_bytes, w_bytes,
                       dst, stage)


@njit(cache=True, boundscheck=False)
def dwconv_into(mem, cfg, inp_at, wgt_at, acc_at, m, r, c, accumulate, a_bytes, w_bytes, dst, stage):
    """DWCONV: ACC[m,c] (+)= sum_r (INP[m,r,c] - a_zp) * (WGT[r,c] - w_zp); channels vectorize.

    ``a_bytes`` and ``w_bytes``, when not empty, hold the low bytes of the INP and WGT words
    (operands of at most 8 bits only: the value loop gives them to no other, as it gives ``dst`` >= 0
    and ``stage``, the module's fused requantization, to no other; -1: none).  Returns the number
    of accumulators that wrapped.
    """
    a_bits, w_bits = cfg[CFG_A_BITS], cfg[CFG_W_BITS]
    if a_bits <= 8 and w_bits <= 8:  # |product| <= 65025, r <= 1023 taps: exact int32 lanes (twice as many)
        w = _dw_weights(mem, wgt_at, r * c, cfg, w_bytes, np.empty(r * c, np.int32))
        if a_bytes.size:
            return _dw_rows32(a_bytes, 0, mem, acc_at, m, r, c, accumulate, cfg, w, np.empty(c, np.int32), dst,
                              stage)
        return _dw_rows(mem, inp_at, mem, acc_at, m, r, c, accumulate, cfg, w, np.empty(c, np.int32), dst, stage)
    w = _dw_weights(mem, wgt_at, r * c, cfg, w_bytes, np.empty(r * c, np.int64))
    return _dw_rows(mem, inp_at, mem, acc_at, m, r, c, accumulate, cfg, w, np.empty(c, np.int64), np.int64(-1),
                    stage)


@njit(cache=True, boundscheck=False)
def dwconv(mem, cfg, inp_at, wgt_at, acc_at, m, r, c, accumulate, a_bytes, w_bytes):
    """``dwconv_into`` without fused requantization (one instruction by itself)."""
    return dwconv_into(mem, cfg, inp_at, wgt_at, acc_at, m, r, c, accumulate, a_bytes, w_bytes, np.int64(-1),
                       requant_stage(mem, cfg, 0, 0))


@njit(cache=True, inline="always", boundscheck=False)
def _dw_weights(mem, wgt_at, count, cfg, w_bytes, w):
    """w[q] = operand(WGT[q]) - w_zp (from the words' low bytes ``w_bytes`` when not empty)."""
    w_bits, w_signed, w_zp = cfg[CFG_W_BITS], cfg[CFG_W_SIGNED], cfg[CFG_W_ZP]
    if w_bytes.size:
        for q in range(count):
            w[uintp(q)] = operand(np.int64(w_bytes[uintp(q)]), w_bits, w_signed) - w_zp
    else:
        for q in range(count):
            w[uintp(q)] = operand(mem[uintp(wgt_at + q)], w_bits, w_signed) - w_zp
    return w


@njit(cache=True, inline="always", boundscheck=False)
def _dw_rows(src, inp_at, mem, acc_at, m, r, c, accumulate, cfg, w, s, dst, stage):
    """DWCONV over activations src[inp_at:] (INP's words, or their low bytes) with weights ``w`` and
    sums ``s`` in the arrays' type (int32 when exact, else int64); unsigned indices, no views: rows
    of few channels cost no reference counting."""
    a_bits, a_signed, a_zp = cfg[CFG_A_BITS], cfg[CFG_A_SIGNED], cfg[CFG_A_ZP]
    acc_bits = cfg[CFG_ACC_BITS]
    overflows = 0
    for i in range(m):
        for ch in range(c):
            s[uintp(ch)] = 0
        for t in range(r):
            row = inp_at + (i * r + t) * c
            for ch in range(c):
                s[uintp(ch)] += (operand(np.int64(src[uintp(row + ch)]), a_bits, a_signed) - a_zp) * w[uintp(t * c + ch)]
        overflows += _dw_out(mem, acc_at + i * c, c, accumulate, acc_bits, s, dst, i, stage)
    return overflows


@njit(cache=True, inline="always")
def _dw_operand32(v, mask, sign, off):
    """The low bits of a word or byte (``mask``), sign-extended by ``sign`` (the sign bit, or 0 when
    unsigned), minus ``off`` = sign + zero point; and, xor, subtract: all int32 lanes."""
    return np.int32(np.int32(np.int32(v) & mask) ^ sign) - off


@njit(cache=True, inline="always", boundscheck=False)
def _dw_taps3(src, row, c, t, w, s, mask, sign, off):
    """s[ch] += the products of taps t, t+1 and t+2 (rows ``row``, ``row + c``, ``row + 2c``), int32:
    three taps per pass over ``s`` (a third of its loads and stores)."""
    for ch in range(c):
        q = uintp(row + ch)
        x0 = np.int32(_dw_operand32(src[q], mask, sign, off))
        x1 = np.int32(_dw_operand32(src[q + c], mask, sign, off))
        x2 = np.int32(_dw_operand32(src[q + 2 * c], mask, sign, off))
        p = uintp(t * c + ch)
        s[uintp(ch)] = np.int32(s[uintp(ch)] + x0 * w[p] + x1 * w[p + c] + x2 * w[p + 2 * c])


@njit(cache=True, inline="always", boundscheck=False)
def _dw_tap(src, row, c, t, w, s, mask, sign, off):
    """s[ch] += the product of tap t (row ``row``), int32."""
    for ch in range(c):
        x = np.int32(_dw_operand32(src[uintp(row + ch)], mask, sign, off))
        s[uintp(ch)] = np.int32(s[uintp(ch)] + x * w[uintp(t * c + ch)])


@njit(cache=True, inline="always", boundscheck=False)
def _dw_rows32(src, inp_at, mem, acc_at, m, r, c, accumulate, cfg, w, s, dst, stage):
    """_dw_rows for activations given as bytes (a deferred window) and operands of at most 8 bits:
    every step in int32 lanes (exact: see dwconv), three taps per pass; a sum written without
    accumulating to an accumulator of at least 32 bits is its own wrap.  (From int64 words the
    narrowing loads make LLVM's loops slower than _dw_rows', which those keep.)"""
    a_bits = cfg[CFG_A_BITS]
    mask = np.int32((1 << a_bits) - 1)
    sign = np.int32(1 << (a_bits - 1)) if cfg[CFG_A_SIGNED] else np.int32(0)
    off = np.int32(sign + cfg[CFG_A_ZP])
    acc_bits = cfg[CFG_ACC_BITS]
    overflows = 0
    for i in range(m):
        for ch in range(c):
            s[uintp(ch)] = 0
        t = 0
        while t + 3 <= r:
            _dw_taps3(src, inp_at + (i * r + t) * c, c, t, w, s, mask, sign, off)
            t += 3
        while t < r:
            _dw_tap(src, inp_at + (i * r + t) * c, c, t, w, s, mask, sign, off)
            t += 1
        overflows += _dw_out(mem, acc_at + i * c, c, accumulate, acc_bits, s, dst, i, stage)
    return overflows


@njit(cache=True, inline="always", boundscheck=False)
def _dw_out(mem, acc, c, accumulate, acc_bits, s, dst, i, stage):
    """Row i's sums ``s``: requantized into dst's row i when dst >= 0 (fused), else written to ACC
    (``_dw_write``); returns how many wrapped."""
    if dst >= 0:
        requant_sums(s, np.int64(0), c, mem, dst + i * c, np.int64(1), stage)
        return 0
    return _dw_write(mem, acc, c, accumulate, acc_bits, s)


@njit(cache=True, inline="always", boundscheck=False)
def _dw_write(mem, acc, c, accumulate, acc_bits, s):
    """ACC[acc:acc+c] (+)= the sums ``s``, wrapped to acc_bits; returns how many wrapped (an int32
    sum written without accumulating to an accumulator of at least 32 bits is its own wrap)."""
    if s.itemsize == 4 and not accumulate and acc_bits >= 32:
        for ch in range(c):
            mem[uintp(acc + ch)] = s[uintp(ch)]
        return 0
    overflows = 0
    for ch in range(c):
        v = np.int64(s[uintp(ch)]) + mem[uintp(acc + ch)] if accumulate else np.int64(s[uintp(ch)])
        wrapped = wrap(v, acc_bits)
        overflows += wrapped != v
        mem[uintp(acc + ch)] = wrapped
    return overflows
