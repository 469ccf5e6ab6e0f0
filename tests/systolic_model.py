"""A slow, cycle-stepped model of the systolic MAC array (tests only).

It moves operands through an R x C grid of processing elements one cycle at a time, computes the
products, and reports the result and the number of cycles until the last PE finished -- from the
mechanics, not from a formula.  Each PE does ``num`` products per cycle (``num`` reduction
elements: 4x4 = 4, 8x4 = 2) and a product of a 16-bit operand takes ``den`` cycles.

* output stationary: PE(i, j) owns output (i, j) of the fold.  Row i of A enters at the left edge
  i cycles late, column j of W at the top j cycles late; both move one PE per cycle.
* weight stationary: PE(i, j) holds weights W[j, k] for the ``num`` k of row i (loading them takes
  one cycle per array row); row m of A enters row i at cycle m + i, moves right one PE per cycle,
  the partial sum moves down; output (m, j) leaves the bottom row.
* input stationary: the same machine with A and W exchanged (inputs held, filters streamed).

A fold that uses only part of the array still takes its data through the whole array (the
physical skew), so each fold costs the same.
"""

from __future__ import annotations

from fractions import Fraction

import numpy as np


def products_per_pe(w_bits: int, a_bits: int) -> Fraction:
    """Products per PE per cycle, the Bit Fusion rule exactly as docs/chip.md writes it:
    f(w) * f(a) with f(b) = 8 / max(b, 4) for b <= 8 and 8 / b above (written here again, apart
    from the simulator's precision_rate)."""
    def f(b: int) -> Fraction:
        return Fraction(8, max(b, 4)) if b <= 8 else Fraction(8, b)

    return f(w_bits) * f(a_bits)


def _fold_os(A, W, R, C, num, den):
    """A: (r<=R, K) rows, W: (c<=C, K); returns (out r x c, cycles)."""
    r, K = A.shape
    c = W.shape[0]
    beats = -(-K // num)                       # reduction beats of num elements
    out = np.zeros((R, C), np.int64)
    last = -1
    t = 0
    # PE (i, j) processes beat b during cycles [den * (b) + i + j, ...): a beat takes den cycles,
    # and the skew delays PE (i, j) by i + j cycles.  Step cycle by cycle over the whole array.
    while True:
        active = False
        for i in range(R):
            for j in range(C):
                local = t - i - j
                if local < 0 or local >= beats * den:
                    continue
                active = True
                if local % den == den - 1:      # the beat's product completes this cycle
                    b = local // den
                    if i < r and j < c:
                        ks = slice(b * num, min(K, (b + 1) * num))
                        out[i, j] += int(np.dot(A[i, ks], W[j, ks]))
                    last = t
        if not active and t > R + C:
            break
        t += 1
    return out[:r, :c], last + 1


def _fold_ws(A, W, R, C, num, den):
    """Weights W (c<=C, k<=R*num) held; A (M, k) streams; returns (out M x c, cycles)."""
    M, k = A.shape
    c = W.shape[0]
    load = R                                   # one array row of weights per cycle
    out = np.zeros((M, C), np.int64)
    last = load - 1
    t = load
    while True:
        active = False
        for i in range(R):                     # PE row i handles k in [i*num, (i+1)*num)
            ks = slice(i * num, min(k, (i + 1) * num))
            for j in range(C):
                # input row m reaches PE (i, j) at local time m*den + i + j; the product is done
                # den cycles later; the partial sum then moves down (R - 1 - i more rows)
                local = t - load - i - j
                if local < 0 or local >= M * den:
                    continue
                active = True
                if local % den == den - 1:
                    m = local // den
                    if j < c:
                        out[m, j] += int(np.dot(A[m, ks], W[j, ks]))
                    if i == R - 1:
                        last = t
        if not active and t > load + R + C:
            break
        t += 1
    return out[:, :c], last + 1


def systolic_gemm(A: np.ndarray, W: np.ndarray, R: int, C: int, dataflow: str, num: int = 1, den: int = 1):
    """A (m x k) times W (n x k).T on the stepped array, fold by fold (folds do not overlap)."""
    m, k = A.shape
    n = W.shape[0]
    out = np.zeros((m, n), np.int64)
    cycles = 0
    if dataflow == "output_stationary":
        for i0 in range(0, m, R):
            for j0 in range(0, n, C):
                o, cy = _fold_os(A[i0:i0 + R], W[j0:j0 + C], R, C, num, den)
                out[i0:i0 + R, j0:j0 + C] += o
                cycles += cy
        return out, cycles
    if dataflow == "weight_stationary":
        held, streamed, transpose = W, A, False
    else:  # input stationary: inputs held, filters stream
        held, streamed, transpose = A, W, True
    for k0 in range(0, k, R * num):
        for j0 in range(0, held.shape[0], C):
            o, cy = _fold_ws(streamed[:, k0:k0 + R * num], held[j0:j0 + C, k0:k0 + R * num], R, C, num, den)
            if transpose:
                out[j0:j0 + C, :] += o.T
            else:
                out[:, j0:j0 + C] += o
            cycles += cy
    return out, cycles
