"""Issue 4: the analytical tile formula of the timing model equals a cycle-stepped systolic
array on random tile shapes, every dataflow and every precision pair (folds not overlapped)."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from accelsim.chip import ChipConfig
from accelsim.chip.counters import chip_vector
from accelsim.chip.timing import gemm_cycles, precision_rate

from .systolic_model import products_per_pe, systolic_gemm

PAIRS = [(4, 4), (8, 4), (4, 8), (8, 8), (16, 8), (8, 16), (16, 16), (16, 4), (4, 16)]


@settings(max_examples=80, deadline=None)
@given(st.sampled_from(["output_stationary", "weight_stationary", "input_stationary"]), st.sampled_from(PAIRS),
       st.integers(1, 6), st.integers(1, 6), st.integers(1, 9), st.integers(1, 9), st.integers(1, 20),
       st.integers(0, 2**32 - 1))
def test_formula_equals_cycle_stepped_array(dataflow, pair, rows, cols, m, n, k, seed):
    chip = ChipConfig().replace(array={"rows": rows, "cols": cols, "dataflow": dataflow, "fold_overlap": False})
    rate = products_per_pe(*pair)  # the stepped array's own rate, from the documented rule
    num, den = rate.numerator, rate.denominator
    rng = np.random.default_rng(seed)
    A = rng.integers(-8, 8, (m, k))
    W = rng.integers(-8, 8, (n, k))
    out, stepped = systolic_gemm(A, W, rows, cols, dataflow, num, den)
    assert np.array_equal(out, A @ W.T)          # the stepped array computes the product
    assert gemm_cycles(m, n, k, num, den, chip_vector(chip)) == stepped


def test_precision_rates():
    assert [precision_rate(w, a, 8, 4) for w, a in PAIRS] == [(4, 1), (2, 1), (2, 1), (1, 1), (1, 2), (1, 2), (1, 4),
                                                              (1, 1), (1, 1)]
    for w, a in PAIRS:  # the simulator's rate is the documented rule
        num, den = precision_rate(w, a, 8, 4)
        assert products_per_pe(w, a) == num / den
