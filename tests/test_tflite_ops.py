"""TFLite ops beside the layers, on the chip: ADD, MUL, pools, MEAN, CONCATENATION, LOGISTIC,
QUANTIZE and the movement ops; 0 differing codes against LiteRT in each kernel set."""

from __future__ import annotations

import numpy as np
import pytest

from accelsim.compiler.tflite import parse_tflite

from .litert_ref import ENGINES, assert_all_match, chip, differing, random_codes, reference
from .tflite_build import (binary_model, concat_model, float_io_model, mean_model, pad_model, pool_model,
                          unary_model)

BINARY = [((2, 9, 7, 13), (2, 9, 7, 13)), ((1, 5, 6, 7), (1, 1, 1, 7)), ((3, 11), (1,)), ((1, 4, 4, 3), (3,))]


@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize("op", ["ADD", "MUL"])
@pytest.mark.parametrize("dtype", ["int8", "uint8"])
def test_add_and_mul_match_litert(engine, op, dtype):
    """Each kernel set's own arithmetic (XNNPACK's add rounds once; the built-in ones three times):
    over these models the sets disagree with one another on some codes, accelsim on none."""
    rng = np.random.default_rng(len(engine) * 7 + len(op) + len(dtype))
    assert_all_match(engine, rng, (binary_model(op, rng, a, b, dtype=dtype, act=act, const_b=const_b)
                                   for act in (None, "relu", "relu6") for a, b in BINARY for const_b in (False, True)))


POOLS = [((1, 7, 9, 5), (3, 3), (2, 2), "same"), ((2, 5, 3, 11), (2, 2), (2, 2), "valid"),
         ((1, 8, 6, 3), (3, 2), (1, 2), "same"), ((1, 9, 9, 16), (3, 3), (1, 1), "valid")]


@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize("op", ["avg", "max"])
@pytest.mark.parametrize("dtype", ["int8", "uint8"])
def test_pools_match_litert(engine, op, dtype):
    """TFLite's average pool divides the codes' sum by the in-image taps, ties away, and ignores a
    change of quantization but for the activation bounds; max pooling never reads padding."""
    rng = np.random.default_rng(len(engine) * 3 + len(op) + len(dtype))
    assert_all_match(engine, rng, (pool_model(op, rng, shape, filt, stride, padding, act=act, dtype=dtype,
                                              same_quant=op == "max" or act is None)
                                   for shape, filt, stride, padding in POOLS for act in (None, "relu", "relu6")))


@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize("dtype", ["int8", "uint8"])
def test_mean_matches_litert(engine, dtype):
    """The three kernel sets' MEAN differ on 2-16% of codes; each is matched."""
    rng = np.random.default_rng(len(engine) + len(dtype))
    assert_all_match(engine, rng, (mean_model(rng, shape, axes, keep, dtype=dtype, same_quant=same)
                                   for shape in [(1, 7, 9, 5), (2, 5, 3, 11), (1, 7, 7, 16), (1, 4, 4, 37)]
                                   for axes, keep in [((1, 2), True), ((1, 2), False), ((2, 1), True), ((3,), True)]
                                   for same in (False, True)))


@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize("dtype", ["int8", "uint8"])
def test_logistic_matches_litert(engine, dtype):
    """Every code of random input quantizations: XNNPACK's table (a double exp, ties even) and the
    built-in one (expf, ties away)."""
    rng = np.random.default_rng(len(engine) * 5 + len(dtype))
    every_code = {"x": (np.arange(256).reshape(1, 16, 16) + (-128 if dtype == "int8" else 0)).astype(dtype)}
    assert_all_match(engine, rng, (unary_model("LOGISTIC", rng, (1, 16, 16), dtype=dtype) for _ in range(12)),
                     feeds=lambda raw: every_code)


@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize("types", [("int8", "int8"), ("int8", "uint8"), ("uint8", "int8"), ("uint8", "uint8")])
def test_requantize_matches_litert(engine, types):
    """QUANTIZE of an integer tensor: the optimized kernel rounds its blocks of 16 half up and its
    tail half away (37 and 45 elements have tails, 32 none), XNNPACK by its own 8-bit multiplier."""
    rng = np.random.default_rng(len(engine) + len(types[0]) * 3 + len(types[1]))
    assert_all_match(engine, rng, (unary_model("QUANTIZE", rng, shape, dtype=types[0], out_dtype=types[1])
                                   for shape in [(1, 37), (1, 3, 5, 3), (2, 16), (1, 1, 45)] for _ in range(4)))


@pytest.mark.parametrize("engine", ENGINES)
def test_concatenation_matches_litert(engine):
    """Equal quantization: a copy on any axis; uint8 inputs quantized apart: TFLite's float32
    requantization, ties away (int8 must share the output's quantization: LiteRT refuses others)."""
    rng = np.random.default_rng(len(engine))
    cases = [([(1, 4, 5, 3), (1, 4, 5, 7)], 3), ([(1, 2, 5, 3), (1, 3, 5, 3)], 1), ([(2, 7), (2, 9), (2, 1)], 1),
             ([(1, 4, 2, 3), (1, 4, 3, 3)], 2)]
    kinds = [("int8", True), ("uint8", True), ("uint8", False)]
    assert_all_match(engine, rng, (concat_model(rng, shapes, axis, dtype=dtype, same_quant=same)
                                   for shapes, axis in cases for dtype, same in kinds))


@pytest.mark.parametrize("engine", ENGINES)
def test_float_input_and_output_match_litert(engine):
    """A float input quantized by each engine's QUANTIZE (exact ties s * (k + 1/2), values far out
    of range) and a float output from its DEQUANTIZE: the same float32 values as LiteRT's."""
    rng = np.random.default_rng(len(engine) + 40)
    for shape in [(1, 3, 5, 7), (1, 4, 4, 8), (1, 1, 1, 3)]:
        raw = float_io_model(rng, shape)
        s = float(parse_tflite(raw).main.tensors[1].scale[0])
        x = rng.normal(0, 3, size=shape).astype(np.float32)
        ties = ((rng.integers(-140, 140, size=shape) + 0.5) * s).astype(np.float32)
        x = np.where(rng.random(shape) < 0.5, ties, x).astype(np.float32)
        x.flat[0], x.flat[-1] = 1e10, -3e9
        want, got = reference(raw, {"x": x}, engine)["y"], chip(raw, {"x": x}, engine)["y"]
        assert got.dtype == np.float32 and np.array_equal(got, want), (engine, shape)


@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize("dtype", ["int8", "uint8"])
def test_softmax_matches_litert(engine, dtype):
    """Rows of 10 and 37 codes: the reference kernel's gemmlowp fixed point, the optimized kernel's
    float table (XNNPACK takes no int8 softmax).  The two rules round alike on almost every input
    (they part only where p * 256 falls within ~1e-7 of a half): test_gemmlowp_softmax_pieces checks
    the fixed-point one on its own."""
    rng = np.random.default_rng(len(engine) * 11 + len(dtype))
    assert_all_match(engine, rng, (unary_model("SOFTMAX", rng, shape, dtype=dtype)
                                   for shape in [(4, 10), (1, 37), (2, 3, 5, 10), (1, 1, 1, 37)] for _ in range(4)))


def test_gemmlowp_softmax_pieces():
    """exp_on_negative_values of Q5.26 inputs is exp within 5e-7 (in Q0.31); one over one plus x
    is 1 / (1 + x) within 1e-8 (Q0.31 both); rows of equal codes give 256 / n of the lowest code."""
    from accelsim.compiler.tflite.softmax import _one_over_one_plus_x, exp_on_negative_values, softmax_ref

    x = -np.linspace(0, 31, 2001)
    e = exp_on_negative_values(np.round(x * 2**26).astype(np.int64)) / 2**31
    assert np.abs(e - np.exp(np.round(x * 2**26) / 2**26)).max() < 5e-7
    v = np.linspace(0, 0.999, 999)
    r = _one_over_one_plus_x(np.round(v * 2**31).astype(np.int64)) / 2**31
    assert np.abs(r - 1 / (1 + np.round(v * 2**31) / 2**31)).max() < 1e-8
    for n in (2, 4, 8, 10):
        assert (softmax_ref(np.zeros((1, n), np.int64), 0.05, 1.0, -128, 127) == round(256 / n) - 128).all()


@pytest.mark.parametrize("engine", ENGINES)
def test_pad_matches_litert(engine):
    rng = np.random.default_rng(len(engine) + 90)
    for shape, paddings, dtype in [((1, 5, 7, 3), [[0, 0], [1, 2], [0, 3], [0, 0]], "int8"),
                                   ((2, 3, 3, 4), [[0, 0], [2, 2], [1, 1], [0, 0]], "uint8"),
                                   ((3, 7), [[0, 0], [4, 1]], "int8")]:
        raw = pad_model(rng, shape, paddings, dtype=dtype)
        assert differing(raw, random_codes(rng, raw), engine)[0] == 0


@pytest.mark.parametrize("engine", ENGINES)
def test_a_batch_runs_as_that_many_invocations(engine):
    """At batch 3 every image rounds as LiteRT's invocation on it alone: the optimized kernels'
    block-and-tail rules restart per image (a requantization of 37 codes by 1/4, ties everywhere:
    32 in blocks, 5 in the tail; a float input of 45 values: 40 and 5)."""
    from accelsim.compiler.tflite import TFLiteCompiler

    rng = np.random.default_rng(len(engine) + 7)
    ties = dict(in_q=(np.float32(0.05), 0), out_q=(np.float32(0.2), 128))  # s_x / s_y = 1/4: halves to round
    for raw, dtype in [(unary_model("QUANTIZE", rng, (1, 37), dtype="int8", out_dtype="uint8", **ties), np.int8),
                       (float_io_model(rng, (1, 3, 5, 3)), np.float32)]:
        f = parse_tflite(raw)
        shape = f.main.tensors[f.main.inputs[0]].shape
        if dtype == np.int8:
            x = rng.integers(-128, 128, size=(3,) + tuple(shape[1:])).astype(np.int8)
        else:
            x = ((rng.integers(-100, 100, size=(3,) + tuple(shape[1:])) + 0.5) *
                 float(f.main.tensors[1].scale[0])).astype(np.float32)
        got = next(iter(TFLiteCompiler(f, engine=engine).compile({"x": x.shape}).run({"x": x})[0].values()))
        want = np.concatenate([next(iter(reference(raw, {"x": x[i:i + 1]}, engine).values())) for i in range(3)])
        assert got.shape == want.shape and np.array_equal(got, want), engine


def test_mean_over_h_and_w_runs_on_the_chip_where_a_mode_expresses_it():
    """The reference and optimized rules become SUMPOOL + REQUANT (the optimized one with its tail
    of C mod 16 channels in fixed_double); XNNPACK's float rule stays on the host."""
    from accelsim.compiler.ir import QGlobalAvgPool, QHost
    from accelsim.compiler.tflite import import_tflite

    raw = mean_model(np.random.default_rng(1), (1, 4, 4, 37), (1, 2), True, same_quant=True)
    kinds = {e: import_tflite(parse_tflite(raw), e).nodes[0] for e in ("litert", "litert-builtin", "litert-ref")}
    assert isinstance(kinds["litert"], QHost)
    assert isinstance(kinds["litert-ref"], QGlobalAvgPool) and kinds["litert-ref"].requant == "fixed_double"
    opt = kinds["litert-builtin"]
    assert isinstance(opt, QGlobalAvgPool)
    assert (opt.requant, opt.requant_tail) == ("fixed_double_up", (32, "fixed_double"))
