"""Running TFLite models in LiteRT's kernel sets and in tflite-micro, for the tests that hold
accelsim to them."""

from __future__ import annotations

import numpy as np
import pytest

litert = pytest.importorskip("ai_edge_litert.interpreter", reason="LiteRT (ai-edge-litert, a test extra)")

from accelsim.compiler.tflite import TFLiteCompiler, parse_tflite  # noqa: E402
from accelsim.compiler.tflite.runtime import KERNEL_SETS, session  # noqa: E402

#: every engine with an interpreter here: LiteRT's three kernel sets and tflite-micro
ENGINES = tuple(KERNEL_SETS) + ("tflm",)


def reference(raw: bytes, feeds: dict, engine: str) -> dict:
    """The engine's outputs (by tensor name) for one invocation (LiteRT's kernel set, or tflite-micro)."""
    if engine == "tflm":
        pytest.importorskip("tflite_micro", reason="tflite-micro (a test extra)")
    return session(parse_tflite(raw), engine)(feeds)


def chip(raw: bytes, feeds: dict, engine: str) -> dict:
    """accelsim's outputs for the same model, compiled for ``engine``."""
    outputs, _ = TFLiteCompiler(parse_tflite(raw), engine=engine).compile().run(feeds)
    return outputs


def random_codes(rng: np.random.Generator, raw: bytes) -> dict:
    """Uniform random codes for every (integer) input of a model, by name."""
    f = parse_tflite(raw)
    feeds = {}
    for i in f.main.inputs:
        t = f.main.tensors[i]
        dt = np.int8 if t.type == "INT8" else np.uint8
        info = np.iinfo(dt)
        feeds[t.name] = rng.integers(info.min, info.max + 1, size=t.shape).astype(dt)
    return feeds


def differing(raw: bytes, feeds: dict, engine: str) -> tuple[int, int]:
    """(codes that differ from the engine's, codes compared) over every output; (0, 0) for a model
    tflite-micro refuses (no uint8 kernels, an average pool that requantizes), once accelsim is seen
    to refuse it too, naming tflite-micro."""
    try:
        want = reference(raw, feeds, engine)
    except RuntimeError:
        if engine != "tflm":
            raise
        from accelsim.compiler import ModelError

        with pytest.raises(ModelError, match="tflite-micro"):
            chip(raw, feeds, engine)
        return 0, 0
    got = chip(raw, feeds, engine)
    assert set(want) == set(got)
    bad = total = 0
    for name, w in want.items():
        g = got[name]
        assert g.shape == w.shape and g.dtype == w.dtype, (name, g.shape, w.shape, g.dtype, w.dtype)
        bad += int((g.astype(np.int64) != w.astype(np.int64)).sum())
        total += w.size
    return bad, total


def assert_all_match(engine: str, rng: np.random.Generator, models, feeds=None) -> int:
    """Every model (bytes) against the engine on random codes (or ``feeds(raw)``): 0 differing
    codes over all of them.  Returns the codes compared."""
    bad = total = 0
    for raw in models:
        d, n = differing(raw, feeds(raw) if feeds else random_codes(rng, raw), engine)
        bad, total = bad + d, total + n
    assert bad == 0, f"{bad} of {total} codes differ from {engine}"
    return total
