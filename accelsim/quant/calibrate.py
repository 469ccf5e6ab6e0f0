"""Calibration: the real range [lo, hi] an activation tensor is quantized over.

Statistics are gathered over calibration batches in two passes (accelsim.quant.ptq): per-batch minimum
and maximum first, then, for the histogram methods, a histogram of the values over the full
range and one of |x| over [0, max |x|], each of ``BINS`` bins.  The methods:

* ``minmax`` -- the smallest and largest value seen.
* ``moving_average`` -- an exponential moving average of the per-batch minimum and maximum
  (``r = momentum * r + (1 - momentum) * batch``, started at the first batch), as the seed notes
  and TensorFlow's quantization-aware training do for activations.
* ``percentile`` -- the values below which ``p`` percent (and above which 100 - p percent) of the
  samples lie, read from the histogram at bin edges; a tail with no negative values keeps 0.
* ``entropy`` -- TensorRT's KL-divergence calibration: |x| in 2048 bins; for every candidate
  threshold of i bins (i from the number of quantization levels to 2048) the reference
  distribution P is the first i bins with all outliers folded into the last one, Q is P merged
  into the quantization levels and expanded back over the non-empty bins; the threshold with
  the least KL(P || Q) wins, and the range is [max(min, -T), min(max, T)].  Candidates start at
  128 bins (TensorRT), and the spike of exact zeros after a ReLU is counted as its neighbouring
  bin (NVIDIA's pytorch-quantization does the same), else it dominates P.
* ``mse`` -- the range, shrunk by a factor from a grid, whose quantization (with the tensor's own
  bit width and zero point rule) has the least mean squared error over the histogram.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from isa.quant import scale_zero_point

CALIBRATORS = ("minmax", "moving_average", "percentile", "entropy", "mse")
BINS = 2048


@dataclass
class TensorStats:
    """What calibration gathered for one tensor."""

    batch_min: list[float] = field(default_factory=list)
    batch_max: list[float] = field(default_factory=list)
    hist: np.ndarray | None = None       # counts over [min, max] in BINS bins
    abs_hist: np.ndarray | None = None   # counts of |x| over [0, max |x|] in BINS bins

    @property
    def min(self) -> float:
        return float(min(self.batch_min))

    @property
    def max(self) -> float:
        return float(max(self.batch_max))

    @property
    def absmax(self) -> float:
        return max(abs(self.min), abs(self.max))

    def add_batch(self, x: np.ndarray) -> None:
        """Pass 1: the batch's minimum and maximum."""
        self.batch_min.append(float(np.min(x)))
        self.batch_max.append(float(np.max(x)))

    def _top(self) -> float:
        """The histogram's upper end: the maximum, or a little above the minimum when the range
        is too narrow to hold BINS bins at this magnitude (a constant tensor)."""
        pad = max(1e-12, abs(self.min) * 1e-9)
        return self.max if self.max - self.min >= pad else self.min + pad

    def add_histogram(self, x: np.ndarray) -> None:
        """Pass 2 (after every batch_min/batch_max is known): accumulate both histograms."""
        x = np.asarray(x, np.float64).ravel()
        h, _ = np.histogram(x, BINS, (self.min, self._top()))
        a, _ = np.histogram(np.abs(x), BINS, (0.0, self.absmax if self.absmax > 0 else 1e-12))
        self.hist = h if self.hist is None else self.hist + h
        self.abs_hist = a if self.abs_hist is None else self.abs_hist + a

    @property
    def edges(self) -> np.ndarray:
        return np.linspace(self.min, self._top(), BINS + 1)

    @property
    def abs_edges(self) -> np.ndarray:
        return np.linspace(0.0, self.absmax if self.absmax > 0 else 1e-12, BINS + 1)


def minmax_range(stats: TensorStats) -> tuple[float, float]:
    return stats.min, stats.max


def moving_average_range(stats: TensorStats, momentum: float = 0.9) -> tuple[float, float]:
    lo, hi = stats.batch_min[0], stats.batch_max[0]
    for bmin, bmax in zip(stats.batch_min[1:], stats.batch_max[1:]):
        lo = momentum * lo + (1 - momentum) * bmin
        hi = momentum * hi + (1 - momentum) * bmax
    return lo, hi


def percentile_range(hist: np.ndarray, edges: np.ndarray, percentile: float) -> tuple[float, float]:
    """[lo, hi] from a histogram: hi is the upper edge of the bin where the cumulative count first
    reaches ``percentile`` percent, lo the lower edge of the bin where it first exceeds
    100 - percentile percent (the minimum itself when the data has no negative values)."""
    if not 50 < percentile <= 100:
        raise ValueError(f"percentile must be in (50, 100], got {percentile}")
    cum = np.cumsum(hist) / max(1, hist.sum())
    hi_bin = int(np.searchsorted(cum, percentile / 100.0 - 1e-12))
    lo_bin = int(np.searchsorted(cum, (100.0 - percentile) / 100.0 + 1e-12, side="right"))
    hi = float(edges[min(hi_bin + 1, len(edges) - 1)])
    lo = float(edges[0]) if edges[0] >= 0 else float(edges[min(lo_bin, len(edges) - 2)])
    return min(lo, 0.0) if edges[0] < 0 else lo, hi


def _smooth(p: np.ndarray, eps: float = 1e-8) -> np.ndarray:
    """A probability distribution with ``eps`` added to every bin (renormalised), so that the KL
    divergence stays finite where Q has an empty bin that P does not."""
    p = p.astype(np.float64) + eps
    return p / p.sum()


def entropy_threshold(abs_hist: np.ndarray, abs_edges: np.ndarray, levels: int = 128, start: int = 128) -> float:
    """TensorRT's KL-divergence threshold T over a histogram of |x| (see the module docstring);
    candidate thresholds run from ``max(levels, start)`` bins (TensorRT: 128) to all of them."""
    nbins = abs_hist.size
    hist = abs_hist.astype(np.float64)
    if hist.sum() == 0:
        return float(abs_edges[-1])
    if nbins > 1:  # the spike of exact zeros (after a ReLU) would dominate P: count it as its neighbour
        hist[0] = hist[1]
    best_i, best_kl = nbins, np.inf
    for i in range(min(max(levels, start), nbins), nbins + 1):
        p = hist[:i].copy()
        p[i - 1] += hist[i:].sum()                    # outliers into the last bin
        # merge the i bins into ``levels`` groups (the last takes the remainder) and expand each
        # group's total evenly over its non-empty bins
        starts = np.arange(levels) * (i // levels)
        lengths = np.diff(np.append(starts, i))
        nonzero = hist[:i] != 0
        totals = np.add.reduceat(hist[:i], starts)
        counts = np.add.reduceat(nonzero.astype(np.float64), starts)
        per_bin = np.divide(totals, counts, out=np.zeros(levels), where=counts > 0)
        q = np.repeat(per_bin, lengths) * nonzero
        if p.sum() == 0 or q.sum() == 0:
            continue
        ps, qs = _smooth(p / p.sum()), _smooth(q / q.sum())
        kl = float(np.sum(ps * np.log(ps / qs)))
        if kl < best_kl:
            best_i, best_kl = i, kl
    return float(abs_edges[best_i])


def entropy_range(stats: TensorStats, bits: int) -> tuple[float, float]:
    """[max(min, -T), min(max, T)] with T from entropy_threshold; the levels are those of the
    magnitude: 2^bits for data without negative values, 2^(bits-1) otherwise."""
    levels = 2 ** bits if stats.min >= 0 else 2 ** (bits - 1)
    t = entropy_threshold(stats.abs_hist, stats.abs_edges, min(levels, BINS))
    return max(stats.min, -t), min(stats.max, t)


def mse_range(hist: np.ndarray, edges: np.ndarray, qmin: int, qmax: int, symmetric: bool,
              steps: int = 100) -> tuple[float, float]:
    """The range [a * min, a * max], a from a grid over (0, 1], whose quantization to [qmin, qmax]
    has the least squared error over the histogram (bin centres weighted by counts)."""
    centres = (edges[:-1] + edges[1:]) / 2
    counts = hist.astype(np.float64)
    best, best_err = (float(edges[0]), float(edges[-1])), np.inf
    for a in np.linspace(1.0 / steps, 1.0, steps):
        lo, hi = a * min(edges[0], 0.0), a * max(edges[-1], 0.0)
        scale, zp = scale_zero_point(lo, hi, qmin, qmax, symmetric=symmetric)
        s = float(scale)
        q = np.clip(np.rint(centres / s) + int(zp), qmin, qmax)
        err = float(np.sum(counts * (centres - (q - int(zp)) * s) ** 2))
        if err < best_err:
            best, best_err = (lo, hi), err
    return best


def calibrated_range(stats: TensorStats, method: str, *, bits: int, qmin: int, qmax: int, symmetric: bool,
                     percentile: float = 99.99, momentum: float = 0.9) -> tuple[float, float]:
    """The range ``method`` gives for a tensor quantized to [qmin, qmax] with ``bits`` bits."""
    if method == "minmax":
        return minmax_range(stats)
    if method == "moving_average":
        return moving_average_range(stats, momentum)
    if method == "percentile":
        return percentile_range(stats.hist, stats.edges, percentile)
    if method == "entropy":
        return entropy_range(stats, bits)
    if method == "mse":
        return mse_range(stats.hist, stats.edges, qmin, qmax, symmetric)
    raise ValueError(f"unknown calibrator {method!r}; choose one of {', '.join(CALIBRATORS)}")
