"""Weight-stream encoders round-trip exactly through the LOADW reference decoder (isa.weights)."""

from __future__ import annotations

import numpy as np
from hypothesis import given
from hypothesis import strategies as st

from accelsim.compiler import weights as C
from isa.quant import qrange
from isa.table import DTYPES, MAC_DTYPES
from isa.weights import decode_weights


@st.composite
def weights(draw):
    dtype = draw(st.sampled_from(MAC_DTYPES))
    lo, hi = qrange(dtype)
    n = draw(st.integers(1, 600))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    kind = draw(st.sampled_from(["random", "sparse", "clustered", "runs"]))
    if kind == "random":
        w = rng.integers(lo, hi + 1, n)
    elif kind == "sparse":
        w = np.where(rng.random(n) < draw(st.floats(0, 1)), 0, rng.integers(lo, hi + 1, n))
    elif kind == "clustered":
        w = rng.choice(rng.integers(lo, hi + 1, draw(st.integers(1, 20))), n)
    else:  # long zero runs, longer than any run field
        w = np.zeros(n, np.int64)
        w[rng.integers(0, n, max(1, n // 50))] = rng.integers(lo, hi + 1, max(1, n // 50))
    zero = draw(st.sampled_from([0, lo, hi])) if lo <= 0 <= hi else 0
    return w, dtype, zero


def _roundtrip(stream: C.WeightStream, w, dtype):
    bits, signed = DTYPES[dtype]
    data = np.frombuffer(stream.data + b"\0" * 4, np.uint8)
    out, nbytes = decode_weights(data, 0, w.size, stream.format, bits, signed, stream.param, stream.zero)
    assert out.tolist() == w.tolist()
    assert nbytes == stream.nbytes  # the decoder reads exactly the stream


@given(weights(), st.integers(1, 8))
def test_every_format_roundtrips(case, run_bits):
    w, dtype, zero = case
    _roundtrip(C.encode_dense(w, dtype), w, dtype)
    _roundtrip(C.encode_bitmask(w, dtype, zero), w, dtype)
    _roundtrip(C.encode_rle(w, dtype, run_bits, zero), w, dtype)
    cb = C.encode_codebook(w, dtype)
    if cb is not None:
        _roundtrip(cb, w, dtype)
    best = C.encode_best(w, dtype, zero)
    _roundtrip(best, w, dtype)
    assert best.nbytes <= C.encode_dense(w, dtype).nbytes


def test_sizes_worked_by_hand():
    w = np.array([0, 3, 0, 0, -2, 0, 0, 0, 0, 0, 0, 5])  # 12 s4 weights
    assert C.encode_dense(w, "s4").nbytes == 6                   # 12 * 4 bits
    assert C.encode_bitmask(w, "s4").nbytes == 2 + 2             # 12 mask bits -> 2 bytes; 3 values -> 12 bits
    # rle with 2-bit runs: (1,3) (2,-2) (3,0) (2,5) = 4 entries x 6 bits = 24 bits
    assert C.encode_rle(w, "s4", 2).nbytes == 3
    # codebook: 4 distinct values -> k = 2: palette 4 x 4 bits = 2 bytes, indices 12 x 2 bits = 3 bytes
    cb = C.encode_codebook(w, "s4")
    assert (cb.param, cb.nbytes) == (2, 5)


def test_out_of_range_weights_are_refused():
    import pytest
    with pytest.raises(ValueError, match="outside the range -8..7 of s4"):
        C.encode_dense(np.array([8]), "s4")


def test_encode_for_chip_minimises_fetch_cycles():
    from accelsim.chip import ChipConfig

    chip = ChipConfig()  # 16 bytes/cycle; decompressor: dense 64, bitmask 32, rle 16, codebook 32 per cycle
    rng = np.random.default_rng(3)
    w = np.where(rng.random(100_000) < 0.8, 0, rng.integers(-127, 128, 100_000))
    bw, rates = chip["dram"]["bandwidth"], chip["decompressor"]
    chosen = C.encode_for_chip(w, "s8", chip)
    for s in (C.encode_dense(w, "s8"), C.encode_bitmask(w, "s8"), C.encode_rle(w, "s8", 4)):
        assert C.fetch_cycles(chosen, w.size, bw, rates) <= C.fetch_cycles(s, w.size, bw, rates)
    # 80% zeros: run-length is smallest but its decoder (16/cycle) is slower than the bitmask's
    assert C.encode_best(w, "s8").format == "rle" and chosen.format == "bitmask"


@given(weights())
def test_sizes_without_encoding_equal_the_encoded_streams(case):
    """encode_for_chip sizes every candidate without encoding it: the sizes must be the real ones,
    and its choice the one a brute-force encoding of every candidate makes."""
    from accelsim.chip import ChipConfig

    w, dtype, zero = case
    sizes = C.stream_sizes(w, dtype, zero)
    streams = [C.encode_dense(w, dtype), C.encode_bitmask(w, dtype, zero)]
    streams += [C.encode_rle(w, dtype, rb, zero) for rb in (2, 3, 4, 5, 6, 8)]
    cb = C.encode_codebook(w, dtype)
    streams += [cb] if cb is not None else []
    assert sizes == [(s.format, s.param, s.nbytes) for s in streams]
    chip = ChipConfig()
    bw, rates = chip["dram"]["bandwidth"], chip["decompressor"]
    best = min(streams, key=lambda s: (C.fetch_cycles(s, w.size, bw, rates), s.nbytes))
    assert C.encode_for_chip(w, dtype, chip, zero) == best
