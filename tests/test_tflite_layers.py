"""TFLite conv, depthwise and fully connected layers on the chip: 0 differing codes against LiteRT
in each kernel set (default XNNPACK, optimized built-in, reference), odd shapes, per-channel
int8 and per-tensor uint8 weights; the modes each engine gives each layer."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from accelsim.compiler.tflite import import_tflite, parse_tflite

from .litert_ref import ENGINES, differing, random_codes
from .tflite_build import single_layer

CASES = [
    ("conv", dict()),
    ("conv", dict(h=11, w=6, c=7, out_c=13, stride=(2, 2), act="relu6")),
    ("conv", dict(padding="valid", k=(1, 1), c=16, out_c=9)),
    ("conv", dict(h=12, w=10, dilation=(2, 2), k=(3, 2))),
    ("conv", dict(n=2, h=5, w=5, c=3, out_c=17, k=(5, 5), stride=(1, 2), act="relu")),
    ("dw", dict(c=13, act="relu")),
    ("dw", dict(c=16, stride=(2, 2))),
    ("dw", dict(c=21, h=9, w=9, k=(5, 5), act="relu6")),
    ("dw", dict(c=5, multiplier=3)),
    ("fc", dict(c=37, out_c=11)),
    ("fc", dict(n=40, c=20, out_c=19, act="relu")),
    ("conv", dict(dtype="uint8", c=6, out_c=5)),
    ("dw", dict(dtype="uint8", c=9, h=13, w=11)),
    ("fc", dict(dtype="uint8", n=30, c=33, out_c=7)),
]


@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize("kind,kw", CASES, ids=[f"{k}-{i}" for i, (k, _) in enumerate(CASES)])
def test_layer_matches_litert(kind, kw, engine):
    rng = np.random.default_rng(abs(hash((kind, str(kw)))) % 2**32)
    raw = single_layer(kind, rng, **kw)
    bad, total = differing(raw, random_codes(rng, raw), engine)
    assert (total > 0 or (engine, kw.get("dtype")) == ("tflm", "uint8")) and bad == 0, \
        f"{bad} of {total} codes differ from {engine}"


@settings(deadline=None, max_examples=40)
@given(kind=st.sampled_from(["conv", "dw", "fc"]), c=st.integers(1, 19), out_c=st.integers(1, 19),
       h=st.integers(3, 10), w=st.integers(3, 10), k=st.integers(1, 3), stride=st.integers(1, 2),
       padding=st.sampled_from(["same", "valid"]), act=st.sampled_from([None, "relu", "relu6"]),
       engine=st.sampled_from(ENGINES), seed=st.integers(0, 2**31))
def test_random_layers_match_litert(kind, c, out_c, h, w, k, stride, padding, act, engine, seed):
    rng = np.random.default_rng(seed)
    raw = single_layer(kind, rng, c=c, out_c=out_c, h=h, w=w, k=(k, k), stride=(stride, stride), padding=padding,
                       act=act, n=8 if kind == "fc" else 1)
    bad, total = differing(raw, random_codes(rng, raw), engine)
    assert bad == 0, f"{bad} of {total} codes differ from LiteRT ({engine})"


def _modes(raw, engine):
    g = import_tflite(parse_tflite(raw), engine)
    return [(n.requant, n.requant_tail) for n in g.nodes if hasattr(n, "requant")]


def test_depthwise_tail_rounds_apart_on_the_builtin_kernels():
    """LiteRT's optimized int8 depthwise rounds its last C mod 8 channels with gemmlowp's divide."""
    rng = np.random.default_rng(3)
    assert _modes(single_layer("dw", rng, c=13), "litert-builtin") == [("fixed_double_up", (8, "fixed_double"))]
    assert _modes(single_layer("dw", rng, c=16), "litert-builtin") == [("fixed_double_up", None)]
    assert _modes(single_layer("dw", rng, c=13, dtype="uint8"), "litert-builtin") == [("fixed_double", None)]
    assert _modes(single_layer("dw", rng, c=13), "litert-ref") == [("fixed_double", None)]


def test_engines_give_each_layer_its_mode():
    rng = np.random.default_rng(4)
    fc = single_layer("fc", rng)
    assert _modes(fc, "litert") == [("fp32", None)]
    assert _modes(fc, "litert-ref") == [("fp64_away", None)]
    assert _modes(fc, "litert-builtin") == [("fixed_double_up", None)]
    assert _modes(fc, "tflm") == [("fixed_double", None)]
    assert _modes(single_layer("conv", rng), "tflm") == [("fixed_double", None)]
