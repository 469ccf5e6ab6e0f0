"""Calibrators of accelsim.quant.calibrate against independent references written here.

* TensorStats bookkeeping: min / max / absmax, and both histograms rebuilt bin by bin with
  integer arithmetic on dyadic data (so no rounding can blur a bin boundary).
* minmax and moving_average: hand-worked golden values, and the EMA in closed form
  ``m^(n-1) b0 + sum_k (1-m) m^(n-1-k) bk`` on random batches.
* percentile: the reported bound lies in the same histogram bin as the order statistic the
  definition selects (sorted array, exact rank arithmetic) and within one bin of np.percentile.
* entropy: a plain-loop re-implementation of TensorRT's KL-divergence search (P with the
  outliers folded in, Q merged into ``levels`` groups and spread over non-empty bins, the
  module's eps smoothing) picks the same threshold on crafted and random histograms.
* The seed's claim: with rare outliers, entropy and 99.99-percentile clip far below the maximum
  while minmax keeps it; on uniform data entropy keeps (nearly) the maximum.
* mse: the chosen shrink factor is optimal over the grid, both for the histogram objective
  (recomputed in a loop) and, within a small tolerance, for the raw samples' squared error.
* calibrated_range dispatches every name in CALIBRATORS and rejects unknown ones.
"""

from __future__ import annotations

import math
from fractions import Fraction

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from accelsim.quant import calibrate as cal
from accelsim.quant.calibrate import (
    BINS,
    CALIBRATORS,
    TensorStats,
    calibrated_range,
    entropy_range,
    entropy_threshold,
    minmax_range,
    moving_average_range,
    mse_range,
    percentile_range,
)


def gather(batches) -> TensorStats:
    """Both calibration passes, as accelsim.quant runs them."""
    s = TensorStats()
    for b in batches:
        s.add_batch(np.asarray(b))
    for b in batches:
        s.add_histogram(np.asarray(b))
    return s


def laplace_with_outliers(seed=0, n=200_000, k=20, at=50.0):
    rng = np.random.default_rng(seed)
    x = rng.laplace(0.0, 1.0, n)
    x[rng.choice(n, k, replace=False)] = at * np.where(np.arange(k) % 2 == 0, 1.0, -1.0)
    return x


# --------------------------------------------------------------------------- 1. TensorStats
@given(st.lists(st.lists(st.integers(-4096, 4096), min_size=1, max_size=50), min_size=1, max_size=5))
def test_stats_bookkeeping_matches_integer_binning(int_batches):
    # Values j / 4096 with -1 and +1 forced in: the full-range bins are 4 units wide, the |x| bins
    # 2 units, so every bin index is an integer division (edge values go to the upper bin, the
    # maximum to the last bin, as np.histogram does).
    int_batches = int_batches + [[-4096, 4096]]
    batches = [np.array(b, dtype=np.float64) / 4096 for b in int_batches]
    s = gather(batches)
    flat = [j for b in int_batches for j in b]
    assert (s.min, s.max, s.absmax) == (-1.0, 1.0, 1.0)
    assert s.batch_min == [min(b) / 4096 for b in int_batches]
    assert s.batch_max == [max(b) / 4096 for b in int_batches]
    want, want_abs = [0] * BINS, [0] * BINS
    for j in flat:
        want[min((j + 4096) // 4, BINS - 1)] += 1
        want_abs[min(abs(j) // 2, BINS - 1)] += 1
    assert s.hist.tolist() == want and s.abs_hist.tolist() == want_abs
    assert s.hist.sum() == s.abs_hist.sum() == len(flat)
    assert s.edges[0] == -1.0 and s.edges[-1] == 1.0 and s.abs_edges[-1] == 1.0


def test_stats_one_sided_negative_and_constant():
    s = gather([np.array([-3.0, -1.0]), np.array([-2.0, -0.5, -2.5])])
    assert (s.min, s.max, s.absmax) == (-3.0, -0.5, 3.0)   # absmax from the minimum
    assert s.hist.sum() == s.abs_hist.sum() == 5
    assert s.hist[0] == 1 and s.hist[-1] == 1               # -3 first bin, -0.5 last bin
    assert s.abs_hist[-1] == 1                              # |-3| is the last |x| bin
    c = gather([np.full(7, 2.5), np.full(3, 2.5)])          # min == max: nothing is lost
    assert (c.min, c.max) == (2.5, 2.5) and c.hist.sum() == c.abs_hist.sum() == 10
    z = gather([np.zeros(4)])
    assert z.absmax == 0.0 and z.hist.sum() == z.abs_hist.sum() == 4


@given(st.floats(-1e12, 1e12, allow_subnormal=False), st.sampled_from([0.0, 1e-300, 1e-15, 1e-10]),
       st.integers(1, 5))
def test_narrow_range_histogram(v, spread, n):
    # constant and nearly constant tensors of any magnitude (a 1e-12 pad overflowed at |x| >= 4)
    batch = np.r_[np.full(n, v), v + spread]
    s = gather([batch])
    assert s.hist.sum() == s.abs_hist.sum() == n + 1
    assert s.edges[0] == s.min and s.edges[-1] >= s.max and np.all(np.diff(s.edges) > 0)


# --------------------------------------------------------------------------- 2. minmax / EMA
def test_minmax_and_moving_average_golden():
    s = gather([np.array([0.0, 1.0]), np.array([-10.0, 3.0, 11.0]), np.array([2.0, 1.0])])
    assert minmax_range(s) == (-10.0, 11.0)
    # momentum 0.9: lo 0 -> 0.9*0 + 0.1*(-10) = -1 -> 0.9*(-1) + 0.1*1 = -0.8
    #               hi 1 -> 0.9*1 + 0.1*11 = 2.0   -> 0.9*2.0 + 0.1*2 = 2.0
    assert moving_average_range(s) == pytest.approx((-0.8, 2.0), abs=1e-12)
    # momentum 0.5: lo 0 -> -5 -> -2.5 + 0.5 = -2.0 ; hi 1 -> 6 -> 3 + 1 = 4.0
    assert moving_average_range(s, 0.5) == pytest.approx((-2.0, 4.0), abs=1e-12)
    # one batch: the EMA is that batch
    assert moving_average_range(gather([np.array([-2.0, 5.0])]), 0.9) == (-2.0, 5.0)


@given(st.lists(st.lists(st.floats(-1e3, 1e3), min_size=1, max_size=8), min_size=1, max_size=12),
       st.sampled_from([0.9, 0.5, 0.99, 0.0]))
def test_moving_average_closed_form(batches, m):
    s = TensorStats()
    for b in batches:
        s.add_batch(np.array(b))
    n = len(batches)

    def closed(vals):  # m^(n-1) v0 + sum_k (1-m) m^(n-1-k) vk
        return m ** (n - 1) * vals[0] + sum((1 - m) * m ** (n - 1 - k) * vals[k] for k in range(1, n))

    lo, hi = moving_average_range(s, m)
    assert lo == pytest.approx(closed([min(b) for b in batches]), abs=1e-9)
    assert hi == pytest.approx(closed([max(b) for b in batches]), abs=1e-9)
    assert minmax_range(s) == (min(map(min, batches)), max(map(max, batches)))


# --------------------------------------------------------------------------- 3. percentile
def _bracket(s, xs, lo, hi, p):
    """hi is the upper edge of the bin holding the ceil(pN)-th smallest value, lo the lower edge
    of the bin holding the (floor((1-p)N)+1)-th (exact rank arithmetic)."""
    n, w = len(xs), s.edges[1] - s.edges[0]
    frac = Fraction(str(p)) / 100
    v_hi = xs[math.ceil(frac * n) - 1]
    v_lo = xs[min(math.floor((1 - frac) * n), n - 1)]
    tol = 1e-9 * (s.max - s.min + 1)
    assert hi - w - tol <= v_hi <= hi + tol
    if s.min >= 0:
        assert lo == s.min
    else:
        # lo is that bin's lower edge, or 0 when the edge is positive (the range keeps 0)
        assert lo - tol <= v_lo and (v_lo - lo <= w + tol or (lo == 0.0 and v_lo > 0))
    return v_lo, v_hi, w


@pytest.mark.parametrize("p", [90, 99, 99.9, 99.99, 100])
def test_percentile_brackets_order_statistic(p):
    x = np.random.default_rng(1).normal(0.5, 2.0, 100_000)
    s = gather(np.array_split(x, 4))
    lo, hi = percentile_range(s.hist, s.edges, p)
    v_lo, v_hi, w = _bracket(s, np.sort(x), lo, hi, p)
    # np.percentile's "smallest value whose CDF reaches p" is the same order statistic
    assert abs(hi - np.percentile(x, p, method="inverted_cdf")) <= w
    if p < 99.9:  # dense enough that linear interpolation stays within a bin too
        assert abs(hi - np.percentile(x, p)) <= w and abs(lo - np.percentile(x, 100 - p)) <= w
    if p == 100:
        assert (lo, hi) == (s.min, s.max)


@given(st.lists(st.floats(-100, 100, allow_subnormal=False), min_size=1, max_size=300),
       # not 99.9: see test_percentile_lower_tail_at_exact_rank_inexact_p
       st.sampled_from([60, 75, 80, 90, 95, 97.5, 99, 99.5, 99.99, 100]))
def test_percentile_random_data(xs, p):
    s = gather([np.array(xs)])
    lo, hi = percentile_range(s.hist, s.edges, p)
    _bracket(s, sorted(xs), lo, hi, p)
    assert lo <= hi


def test_percentile_lower_tail_at_exact_rank():
    # 10 samples, p = 90: the bin of -10 holds exactly 10 %, which does not *exceed* 10 %, so lo is
    # the lower edge of the bin of -5 (the upper side treats the same tie correctly: hi is 6's bin)
    x = np.array([-10.0, -5, 0, 1, 2, 3, 4, 5, 6, 7])
    s = gather([x])
    lo, hi = percentile_range(s.hist, s.edges, 90)
    w = s.edges[1] - s.edges[0]
    assert 6.0 < hi <= 6.0 + w
    assert -5.0 - w < lo <= -5.0


def test_percentile_lower_tail_at_exact_rank_inexact_p():
    # 1000 samples, p = 99.9: the bin of -10 holds exactly 0.1 %, so lo is the bin of -5, as for p = 90
    x = np.r_[-10.0, -5.0, np.linspace(0, 10, 998)]
    s = gather([x])
    lo, hi = percentile_range(s.hist, s.edges, 99.9)
    w = s.edges[1] - s.edges[0]
    assert 9.98 < hi <= 9.99 + w       # the 999th smallest value, 9.98998..., is in hi's bin
    assert -5.0 - w < lo <= -5.0


def test_percentile_one_sided_keeps_min_and_rejects_bad_percentile():
    x = np.random.default_rng(2).exponential(1.0, 50_000) + 0.25     # all >= 0.25
    s = gather([x])
    lo, hi = percentile_range(s.hist, s.edges, 99.0)
    assert lo == s.min == x.min()
    assert abs(hi - np.quantile(x, 0.99)) <= s.edges[1] - s.edges[0]
    for bad in (50, 0, -1, 100.5, 150):
        with pytest.raises(ValueError, match="percentile"):
            percentile_range(s.hist, s.edges, bad)


# --------------------------------------------------------------------------- 4. entropy (KL)
def ref_entropy(hist, edges, levels, first=None):
    """TensorRT's KL search in plain loops (first candidate ``first``, default ``levels``)."""
    h = [float(c) for c in hist]
    n = len(h)
    if sum(h) == 0:
        return float(edges[-1])
    h[0] = h[1]  # like pytorch-quantization (and the module): the zero spike counts as bin 1

    def smooth(d):  # normalise, add 1e-8 everywhere, renormalise (the module's _smooth)
        t = sum(d)
        d = [v / t + 1e-8 for v in d]
        t = sum(d)
        return [v / t for v in d]

    best_i, best_kl = n, math.inf
    for i in range(first or levels, n + 1):
        p = h[:i]
        p[i - 1] += sum(h[i:])
        q = [0.0] * i
        width = i // levels
        for g in range(levels):
            a, b = g * width, (i if g == levels - 1 else (g + 1) * width)
            used = [k for k in range(a, b) if h[k] != 0]
            for k in used:
                q[k] = sum(h[a:b]) / len(used)
        if sum(p) == 0 or sum(q) == 0:
            continue
        kl = sum(pk * math.log(pk / qk) for pk, qk in zip(smooth(p), smooth(q)))
        if kl < best_kl:
            best_i, best_kl = i, kl
    return float(edges[best_i])


def _abs_hist(x, nbins):
    a = np.abs(x)
    return np.histogram(a, nbins, (0.0, a.max()))


@pytest.mark.parametrize("dist", ["laplace", "normal", "uniform", "relu", "outliers", "bimodal"])
@pytest.mark.parametrize("nbins,levels", [(64, 8), (128, 16), (256, 16), (200, 8)])
def test_entropy_matches_reference_on_distributions(dist, nbins, levels):
    rng = np.random.default_rng(nbins + levels)
    x = {"laplace": lambda: rng.laplace(0, 1, 20_000),
         "normal": lambda: rng.normal(0, 1, 20_000),
         "uniform": lambda: rng.uniform(-3, 3, 20_000),
         "relu": lambda: np.maximum(rng.normal(0, 1, 20_000), 0),
         "outliers": lambda: np.r_[rng.normal(0, 1, 20_000), [40.0, -40.0, 35.0]],
         "bimodal": lambda: np.r_[rng.normal(-4, 0.5, 9000), rng.normal(6, 1, 11_000)]}[dist]()
    hist, edges = _abs_hist(x, nbins)
    assert entropy_threshold(hist, edges, levels, start=levels) == ref_entropy(hist, edges, levels)
    # the default first candidate (128 bins, as TensorRT) and levels above it
    assert entropy_threshold(hist, edges, levels) == ref_entropy(hist, edges, levels, max(levels, min(128, nbins)))


@given(st.integers(64, 160).flatmap(lambda n: st.tuples(
           st.lists(st.one_of(st.just(0), st.integers(0, 30), st.integers(0, 3000)), min_size=n, max_size=n),
           st.sampled_from([8, 16]))),
       st.floats(0.1, 100))
def test_entropy_matches_reference_on_random_histograms(hist_levels, top):
    hist, levels = hist_levels
    hist = np.array(hist, dtype=np.int64)
    edges = np.linspace(0.0, top, hist.size + 1)
    assert entropy_threshold(hist, edges, levels, start=levels) == ref_entropy(hist, edges, levels)


def test_entropy_empty_histogram_keeps_max():
    assert entropy_threshold(np.zeros(64, np.int64), np.linspace(0, 3, 65), 8, start=8) == 3.0


# --------------------------------------------------------------------------- 5. the seed's claim
def test_outliers_clipped_by_entropy_and_percentile_not_minmax():
    x = laplace_with_outliers()
    s = gather(np.array_split(x, 4))
    assert (s.min, s.max) == (-50.0, 50.0)
    kw = dict(bits=8, qmin=-128, qmax=127, symmetric=False)
    assert calibrated_range(s, "minmax", **kw) == (-50.0, 50.0)
    for method in ("entropy", "percentile"):
        lo, hi = calibrated_range(s, method, percentile=99.99, **kw)
        assert 0 < hi < 0.5 * s.max and 0.5 * s.min < lo < 0, (method, lo, hi)
    # the top 1e-4 of 200k values: the 10 outliers at +50 and 10 Laplacian values, whose tail
    # 0.5 exp(-t) = 10 / 200k puts the cut near t = ln(1e4) ~ 9.2
    assert calibrated_range(s, "percentile", percentile=99.99, **kw)[1] == pytest.approx(9.2, abs=1.5)


def test_entropy_keeps_uniform_range():
    x = np.random.default_rng(3).uniform(-2.0, 2.0, 200_000)
    s = gather(np.array_split(x, 3))
    lo, hi = calibrated_range(s, "entropy", bits=8, qmin=-128, qmax=127, symmetric=False)
    assert hi > 0.9 * s.max and lo < 0.9 * s.min


# --------------------------------------------------------------------------- 6. mse
def _qerr(x, lo, hi, qmin, qmax, symmetric):
    """Squared error of quantizing x over [lo, hi] (widened to 0), written out directly."""
    lo, hi = min(lo, 0.0), max(hi, 0.0)
    if symmetric:
        lo, hi = -max(-lo, hi), max(-lo, hi)
        scale = (hi - lo) / (qmax - qmin)
        zp = round((qmin + qmax) / 2)
    else:
        scale = (hi - lo) / (qmax - qmin)
        zp = round(qmin - lo / scale)
    q = np.clip(np.round(x / scale) + zp, qmin, qmax)
    return float(np.sum((x - (q - zp) * scale) ** 2))


def _hist_err(hist, edges, lo, hi, qmin, qmax, symmetric):
    centres = [(edges[k] + edges[k + 1]) / 2 for k in range(len(hist))]
    return _qerr(np.repeat(centres, hist), lo, hi, qmin, qmax, symmetric)


MSE_DATA = {"outliers": lambda: laplace_with_outliers(seed=4, n=50_000),
            "uniform": lambda: np.random.default_rng(5).uniform(-1.0, 3.0, 50_000),
            "relu": lambda: np.maximum(np.random.default_rng(6).normal(0, 1, 50_000), 0)}


@pytest.mark.parametrize("data", sorted(MSE_DATA))
@pytest.mark.parametrize("qmin,qmax,symmetric", [(-8, 7, False), (0, 15, False), (-7, 7, True),
                                                 (-128, 127, False), (-127, 127, True)])
def test_mse_is_grid_optimal(data, qmin, qmax, symmetric):
    x = MSE_DATA[data]()
    s = gather([x])
    lo, hi = mse_range(s.hist, s.edges, qmin, qmax, symmetric)
    grid = [(k / 100 * min(s.min, 0.0), k / 100 * max(s.max, 0.0)) for k in range(1, 101)]
    # the module's choice is one of the grid's ranges...
    assert any(lo == pytest.approx(g[0], abs=1e-9) and hi == pytest.approx(g[1], abs=1e-9) for g in grid)
    # ... the best for the histogram objective (bin centres weighted by counts) ...
    h_errs = [_hist_err(s.hist, s.edges, *g, qmin, qmax, symmetric) for g in grid]
    assert _hist_err(s.hist, s.edges, lo, hi, qmin, qmax, symmetric) <= min(h_errs) * (1 + 1e-6) + 1e-12
    # ... and within a few percent of the best grid point on the raw samples
    raw = [_qerr(x, *g, qmin, qmax, symmetric) for g in grid]
    assert _qerr(x, lo, hi, qmin, qmax, symmetric) <= min(raw) * 1.03 + 1e-12
    if data == "outliers" and qmax - qmin < 20:  # at 4 bits clipping the 20 outliers pays off
        assert hi < 0.5 * s.max and lo > 0.5 * s.min
    elif data == "outliers":  # at 8 bits it does not: 20 * 25^2 >> 50k * (100/255)^2 / 12
        assert hi > 0.9 * s.max
    elif data == "uniform":
        assert hi >= 0.9 * s.max
        assert symmetric or lo <= 0.9 * s.min


# --------------------------------------------------------------------------- 7. dispatch
def test_calibrated_range_dispatch_and_unknown():
    x = laplace_with_outliers(seed=7, n=20_000)
    s = gather(np.array_split(x, 5))
    kw = dict(bits=4, qmin=-8, qmax=7, symmetric=False)
    want = {"minmax": (s.min, s.max),
            "moving_average": moving_average_range(s, 0.8),
            "percentile": percentile_range(s.hist, s.edges, 99.5),
            "entropy": entropy_range(s, 4),
            "mse": mse_range(s.hist, s.edges, -8, 7, False)}
    assert set(want) == set(CALIBRATORS)
    for method in CALIBRATORS:
        assert calibrated_range(s, method, percentile=99.5, momentum=0.8, **kw) == want[method]
    # entropy_range: T from |x| with 2^(bits-1) levels for signed data, clipped to [min, max]
    t = entropy_threshold(s.abs_hist, s.abs_edges, 8)
    assert want["entropy"] == (max(s.min, -t), min(s.max, t))
    pos = gather([np.abs(x)])
    tp = entropy_threshold(pos.abs_hist, pos.abs_edges, 16)  # unsigned data: 2^bits levels
    assert entropy_range(pos, 4) == (pos.min, min(pos.max, tp))
    assert want["moving_average"] != moving_average_range(s, 0.9)
    assert calibrated_range(s, "percentile", percentile=99.9, **kw) != want["percentile"]
    with pytest.raises(ValueError, match="unknown calibrator"):
        calibrated_range(s, "kl", **kw)
    assert cal.BINS == 2048
