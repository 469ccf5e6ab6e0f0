"""Fuzzing the chip against the golden semantics, state for state.

Per run, ``BATCHES x PER_BATCH`` random programs (tests/sim_programs.py): most are valid programs of
every instruction kind; a third are mutants with one span of the instruction table pushed just
past its buffer or DRAM, one address or size field set near the end of a buffer or DRAM
(chosen without the table), or one instruction replaced by a random encoding.  For each, ``isa.run`` (the golden semantics, with its
own buffers of the chip's sizes) either completes -- then the chip's DRAM and every buffer equal
the golden ones word for word -- or refuses instruction i -- then the chip refuses with a
SimError naming instruction i, before anything runs.  A deleted span in the instruction table
(accelsim's validation) or in a kernel shows up as a disagreement here.

``ACCELSIM_FUZZ_SEED`` moves the corpus; a failure prints the seed and the program.
"""

from __future__ import annotations

import os

import numpy as np
import pytest

import isa
from accelsim.chip import Program, SimError, Simulator
from isa import ExecError
from isa.semantics import MachineState
from isa.table import BUFFERS

from .sim_programs import DRAM, SIZES, SMALL_CHIP, _past_a_span, mutate, random_program

BATCHES, PER_BATCH = 20, 500
SEED = int(os.environ.get("ACCELSIM_FUZZ_SEED", "20261201"))
SIM = Simulator(SMALL_CHIP)


def corpus(seed: int, n: int, mutated: float = 0.35):
    """(program, image, index of the mutated instruction or None) for ``n`` programs."""
    rng = np.random.default_rng(seed)
    for _ in range(n):
        prog, image = random_program(rng)
        at = None
        if rng.random() < mutated:
            prog, at = mutate(prog, rng)
        yield prog, image, at


def golden(prog, image) -> MachineState:
    dram = np.zeros(DRAM, np.uint8)
    dram[:image.size] = image
    state = MachineState.create(dram, sizes=SIZES)
    isa.run(prog, state)
    return state


def compare(prog, image) -> str:
    """'ok', 'refused' or 'fault' (data-dependent); raises AssertionError on any disagreement."""
    program = Program(isa.encode_program(prog), image)
    try:
        want = golden(prog, image)
    except ExecError as e:
        with pytest.raises(SimError) as s:
            SIM.run(program)
        assert s.value.index == e.index, f"golden refuses {e}; the chip refuses {s.value}"
        return "refused" if ("outside" in str(e) or "SETWIN" in str(e) or "exceed in_c" in str(e)) else "fault"
    SIM.run(program)
    assert np.array_equal(SIM.last_dram, want.dram), "DRAM differs"
    low = SIM.lower(program)
    for b in BUFFERS:
        mine = SIM.last_mem[low.base[b]:low.base[b] + low.sizes[b]]
        assert np.array_equal(mine, want.buffers[b]), f"buffer {b} differs"
    return "ok"


@pytest.mark.parametrize("batch", range(BATCHES))
def test_chip_state_equals_golden(batch):
    seed = SEED + batch
    outcomes = {"ok": 0, "refused": 0, "fault": 0}
    for k, (prog, image, _) in enumerate(corpus(seed, PER_BATCH)):
        try:
            outcomes[compare(prog, image)] += 1
        except AssertionError as e:
            listing = "\n".join(isa.format_instruction(i) for i in prog)
            raise AssertionError(f"seed {seed}, program {k}: {e}\n{listing}") from None
    # the corpus is what it claims: mostly valid programs that run, and refused mutants
    assert outcomes["ok"] >= 0.6 * PER_BATCH and outcomes["refused"] >= 0.1 * PER_BATCH, outcomes


def test_mutants_are_refused_at_the_mutated_instruction():
    """A span pushed past its buffer is refused exactly there (not later, not never)."""
    rng = np.random.default_rng(SEED)
    seen = 0
    for _ in range(300):
        prog, image = random_program(rng)
        mutant, at = _past_a_span(prog, rng)
        if at < 0:
            continue
        with pytest.raises(ExecError) as e:
            golden(mutant, image)
        assert e.value.index <= at
        with pytest.raises(SimError) as s:
            SIM.run(Program(isa.encode_program(mutant), image))
        assert s.value.index == e.value.index
        seen += 1
    assert seen > 250
