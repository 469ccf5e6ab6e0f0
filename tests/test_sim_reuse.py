"""What the simulator reuses between runs must not change a single value: the DRAM buffer of value
runs (reset to a new DRAM's bytes), the DRAM of timing-only runs, lowerings shared across
simulators and threads, and the profiled value loop."""

from __future__ import annotations

import numpy as np
import pytest

from accelsim import zoo
from accelsim.chip import Simulator
from accelsim.chip.execute import no_kept
from accelsim.chip.rows import OP, ROW
from accelsim.compiler import ModelCompiler, compile_model
from accelsim.evaluate import evaluate
from accelsim.quant import QuantConfig, quantize_model
from kernels.state import CFG_A_BITS, CFG_MODE, MODE_FIXED_DOUBLE


@pytest.fixture(scope="module")
def models():
    out = []
    for name in ("small_cnn", "residual_odd"):
        m = zoo.build(name, fold_bn=False)
        shape = zoo.input_shape(m)
        calib = np.random.default_rng(0).normal(0, 1, (8,) + shape[1:]).astype(np.float32)
        q = quantize_model(m, calib, QuantConfig(), progress=False)
        x = np.random.default_rng(1).normal(0, 1, (3,) + shape[1:]).astype(np.float32)
        out.append((compile_model(q, batch=3), x))
    return out


def test_a_reused_simulator_equals_new_ones_run_after_run(models):
    """A then B then A on one simulator: outputs, reports and the whole DRAM equal a new
    simulator's each time (the bytes B wrote beyond A's image are zero again)."""
    shared = None
    for compiled, x in [models[0], models[1], models[0], models[1]]:
        shared = shared or Simulator(compiled.chip)
        feed = {"input": x}
        got, rep = compiled.run(feed, sim=shared)
        fresh = Simulator(compiled.chip)
        want, want_rep = compiled.run(feed, sim=fresh)
        for k in want:
            np.testing.assert_array_equal(got[k], want[k])
        assert rep.cycles == want_rep.cycles and rep.energy_pj == want_rep.energy_pj
        np.testing.assert_array_equal(shared.last_dram, fresh.last_dram)


def test_timing_only_runs_reuse_their_dram_and_match_value_runs(models):
    compiled, x = models[1]
    sim = Simulator(compiled.chip)
    _, full = compiled.run({"input": x}, sim=sim)
    reps = [compiled.run({"input": x}, sim=sim, values=False)[1] for _ in range(3)]
    for r in reps:
        assert r.cycles == full.cycles and r.dram_read_bytes == full.dram_read_bytes
        assert [s.cycles for s in r.segments] == [s.cycles for s in full.segments]


def test_the_profiled_loop_computes_the_same_values_and_counts_every_instruction(models):
    compiled, x = models[1]
    sim = Simulator(compiled.chip)
    want, _ = compiled.run({"input": x}, sim=sim)
    got, _ = compiled.run({"input": x}, sim=sim, profile=True)
    for k in want:
        np.testing.assert_array_equal(got[k], want[k])
    low = sim.lower(compiled.program)
    ticks = sim.last_ticks
    assert ticks.shape == (low.rows.shape[0],) and ticks[low.rows[:, 0] == OP["GEMM"]].min() > 0


def test_lowerings_are_shared_only_for_the_same_chip(models):
    compiled, x = models[0]
    a, b = Simulator(compiled.chip), Simulator(compiled.chip)
    assert a.lower(compiled.program) is b.lower(compiled.program)
    from accelsim.chip import ChipConfig

    other = Simulator(ChipConfig())
    assert other.chip is not compiled.chip and other.lower(compiled.program) is not a.lower(compiled.program)


def test_eval_on_two_threads_equals_one(models):
    m = zoo.build("residual_odd", fold_bn=False)
    shape = zoo.input_shape(m)
    q = quantize_model(m, np.random.default_rng(0).normal(0, 1, (8,) + shape[1:]).astype(np.float32), QuantConfig(),
                       progress=False)
    x = np.random.default_rng(2).normal(0, 1, (11,) + shape[1:]).astype(np.float32)
    y = np.arange(11) % 3
    one = evaluate(q, x, y, batch=2, workers=1).to_dict()
    two = evaluate(q, x, y, batch=2, workers=2).to_dict()
    one.pop("workers"), two.pop("workers")
    assert one == two and one["ort_equal_fraction"] == 1.0
    from accelsim.evaluate import chip_batches

    compiler = ModelCompiler(q)
    a = [o for _, o, _ in chip_batches(compiler, "input", x, 3, 1)]
    b = [o for _, o, _ in chip_batches(compiler, "input", x, 3, 2)]
    assert all(np.array_equal(u[k], v[k]) for u, v in zip(a, b) for k in u)


def _values(loop, compiled, sim, x):
    low = sim.lower(compiled.program)
    dram = sim._dram(compiled.program, compiled.quantize_inputs({"input": x}))
    mem = np.zeros(low.total_words, np.int64)
    assert loop(low.rows, low.cfgs, low.wins, dram, mem, no_kept(), 0)[0] == -1
    return dram, mem


def test_conv_programs_run_the_smaller_loop_with_the_same_values(models):
    """A program of CONV_OPS only runs run_values_conv, one with Adds run_values_residual (fewer
    kernels to compile), and their 8-bit twins when every CONFIG has operands of at most 8 bits and
    the fp32 requant mode (GEMM without its wider paths, REQUANT without its fixed-point modes);
    their DRAM and buffers equal the full loop's."""
    from accelsim.chip.execute import (run_values, run_values_conv, run_values_conv8, run_values_residual,
                                       run_values_residual8, value_loop)

    pairs = ((run_values_conv, run_values_conv8), (run_values_residual, run_values_residual8))
    for (compiled, x), (loop, loop8) in zip(models, pairs):  # small_cnn, residual_odd: 8-bit
        sim = Simulator(compiled.chip)
        low = sim.lower(compiled.program)
        assert value_loop(low.rows) is loop and value_loop(low.rows, low.cfgs) is loop8 and low.loop is loop8
        (d0, m0) = _values(run_values, compiled, sim, x)
        for chosen in (loop, loop8):
            d1, m1 = _values(chosen, compiled, sim, x)
            np.testing.assert_array_equal(d1, d0)
            np.testing.assert_array_equal(m1, m0)
        wide = low.cfgs.copy()
        wide[-1, CFG_A_BITS] = 16  # one 16-bit CONFIG: the loop keeps GEMM's wider paths
        assert value_loop(low.rows, wide) is loop
        fixed = low.cfgs.copy()
        fixed[-1, CFG_MODE] = MODE_FIXED_DOUBLE  # one fixed-point CONFIG: and REQUANT's fixed modes
        assert value_loop(low.rows, fixed) is loop
    rows = np.zeros((2, ROW), np.int64)
    rows[0, 0] = OP["DWCONV"]  # only the full loop runs it
    assert value_loop(rows) is run_values


def test_programs_sharing_an_image_restore_only_what_each_run_wrote():
    """Value runs restore only the DRAM ranges the last run could write (its STOREs, its tensors;
    everything after a HOST step) when the image is the same: any order of programs sharing one
    image, with and without HOST, leaves the DRAM a new simulator's."""
    import isa
    from accelsim.chip import Program, TensorRef
    from isa import Instruction as I

    from .sim_programs import SMALL_CHIP

    image = np.arange(4096, dtype=np.uint8) * np.uint8(37)

    def store_at(at: int) -> list:
        return [I("LOAD", buf="INP", dtype="u8", dram=3000, sram=0, x=64, y=1, y_stride=0),
                I("VADD", a_buf="INP", a=0, b_buf="INP", b=0, dst_buf="OUT", dst=0, n=64, bn=0, prm=0),
                I("STORE", buf="OUT", dtype="u8", dram=at, sram=0, x=64, y=1, y_stride=0), I("HALT")]

    def host(call: int, dram: np.ndarray) -> None:
        dram[100 + call:300] ^= np.uint8(0x5A)
        dram[9000:9010] = 1

    first = Program(isa.encode_program(store_at(500)), image,
                    {"x": TensorRef(3000, (64,), "u8", "input")})
    second = Program(isa.encode_program(store_at(5000)), first.dram_image)
    third = Program(isa.encode_program([I("HOST", call=2)] + store_at(2000)), first.dram_image)
    shared = Simulator(SMALL_CHIP)
    rng = np.random.default_rng(0)
    for p in [first, second, third, first, third, second, first, first]:
        feed = {"x": rng.integers(0, 256, 64).astype(np.uint8)} if p is first else None
        shared.run(p, feed, host=host)
        fresh = Simulator(SMALL_CHIP)
        fresh.run(p, feed, host=host)
        np.testing.assert_array_equal(shared.last_dram, fresh.last_dram)
    with pytest.raises(ValueError):
        first.dram_image[0] = 1  # read-only: what the partial restore relies on
