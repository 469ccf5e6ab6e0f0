"""Issue 4: the simulator's values equal the golden semantics; errors are typed and name the
instruction; random programs never crash or hang; the timing model on hand-worked cases."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import isa
from accelsim.chip import Program, SimError, Simulator, TensorRef
from isa import ExecError
from isa import Instruction as I
from isa.semantics import MachineState
from isa.table import BUFFERS

from .sim_programs import DRAM, SIZES, SMALL_CHIP, program_and_image
from .strategies import instructions

SIM = Simulator(SMALL_CHIP)


def golden_run(prog, image):
    dram = np.zeros(DRAM, np.uint8)
    dram[:image.size] = image
    state = MachineState.create(dram, sizes=SIZES)
    isa.run(prog, state)
    return state


@given(program_and_image())
def test_values_equal_golden_semantics(case):
    prog, image = case
    program = Program(isa.encode_program(prog), image)
    try:
        golden = golden_run(prog, image)
    except ExecError as e:
        with pytest.raises(SimError) as s:
            SIM.run(program)
        assert s.value.index == e.index
        return
    SIM.run(program)
    assert np.array_equal(SIM.last_dram, golden.dram)
    low = SIM.lower(program)
    for b in BUFFERS:
        mine = SIM.last_mem[low.base[b]:low.base[b] + low.sizes[b]]
        assert np.array_equal(mine, golden.buffers[b]), b


@settings(max_examples=400)
@given(st.lists(instructions(), min_size=1, max_size=10) | st.lists(st.integers(0, (1 << 128) - 1), min_size=1,
                                                                     max_size=10))
def test_fuzz_random_programs_complete_or_raise_simerror(items):
    """Thousands of random programs over the test run (random valid instructions, random words):
    each completes or raises SimError; none crashes, hangs or raises anything else."""
    if isinstance(items[0], int):
        words = isa.encoding.ints_to_words(items)
    else:
        words = isa.encode_program(items)
    try:
        _, report = SIM.run(Program(words, np.zeros(4096, np.uint8)))
    except SimError as e:
        assert str(e).startswith(("instruction ", "program"))
        return
    assert report.cycles >= 0


def test_out_of_bounds_is_refused_before_any_kernel_runs():
    prog = [I("LOAD", buf="INP", dtype="u8", dram=0, sram=0, x=4, y=1, y_stride=0),
            I("STORE", buf="INP", dtype="u8", dram=100, sram=0, x=4, y=1, y_stride=0),
            I("GEMM", inp=SIZES["INP"] - 3, wgt=0, acc=0, m=1, n=1, k=4), I("HALT")]
    image = np.arange(16, dtype=np.uint8)
    with pytest.raises(SimError) as e:
        SIM.run(Program(isa.encode_program(prog), image))
    assert e.value.index == 2 and e.value.insn_text.startswith("GEMM")
    assert f"INP[{SIZES['INP'] - 3}:{SIZES['INP'] + 1}] exceeds the {SIZES['INP']}-word INP buffer" in str(e.value)


@pytest.mark.parametrize("prog, index, reason", [
    ([I("LOAD", buf="INP", dtype="u8", dram=DRAM - 2, sram=0, x=4, y=1, y_stride=0)], 0, "exceed the"),
    ([I("CONFIG", a="u8", w="s8", o="u8", acc_bits=48, clamp_min=0, clamp_max=255)], -1, None),
    ([I("LOADWIN", buf="INP", dtype="u8", dram=0, sram=0, pix0=0, npix=1, c0=0, nc=1)], 0, "before any SETWIN"),
    ([I("NOP", unit="store", pop_prev=1)], 0, "deadlock"),
    ([I("NOP", unit="compute", push_prev=1), I("NOP", unit="load", pop_next=1),
      I("NOP", unit="load", pop_next=1)], 2, "deadlock"),
])
def test_typed_errors_name_the_instruction(prog, index, reason):
    words = isa.encode_program(prog + [I("HALT")])
    if index < 0:
        SIM.run(Program(words))
        return
    with pytest.raises(SimError) as e:
        SIM.run(Program(words))
    assert e.value.index == index and reason in str(e.value)


def test_chip_without_16_bit_operands_refuses_them():
    chip = SMALL_CHIP.replace(array={"operand_bits": [4, 8]})
    prog = isa.encode_program([I("CONFIG", a="s16", w="s8", o="s8", clamp_min=-128, clamp_max=127), I("HALT")])
    with pytest.raises(SimError, match="activation type s16: this chip's MAC array supports \\[4, 8\\]"):
        Simulator(chip).run(Program(prog))


def test_corrupt_stream_is_a_simerror_with_its_index():
    image = np.frombuffer(bytes([0xFF] * 8), np.uint8)  # rle run=15 (4 bits) overruns count=4
    prog = [I("LOAD", buf="INP", dtype="u8", dram=0, sram=0, x=2, y=1, y_stride=0),
            I("LOADW", sram=0, dram=0, count=4, format="rle", dtype="s4", param=4), I("HALT")]
    with pytest.raises(SimError) as e:
        SIM.run(Program(isa.encode_program(prog), image))
    assert e.value.index == 1 and "more weights than count" in str(e.value)


# --------------------------------------------------------------------------- timing, worked by hand
def test_dma_latency_plus_bytes_over_bandwidth():
    # SMALL_CHIP: DRAM latency 20, 8 bytes/cycle.  LOAD of 3 rows x 10 u8 = 30 bytes: 20 + ceil(30/8) = 24.
    prog = isa.encode_program([I("LOAD", buf="INP", dtype="u8", dram=0, sram=0, x=10, y=3, y_stride=10),
                               I("HALT")])
    _, rep = SIM.run(Program(prog))
    # HALT (1 cycle) runs on the compute unit in parallel: the makespan is the LOAD's 24
    assert rep.cycles == 24 and rep.units["load"]["busy"] == 24
    assert rep.dram_read_bytes["input"] == 30


def test_tokens_serialize_and_overlap_units():
    # load: LOAD 64 bytes (20 + 8 = 28) push_next; compute: GEMM pop_prev; store waits for compute.
    # GEMM 4x4x4 on the 16x16 weight-stationary array with fold overlap: 1 fold, stream m=4,
    # fill = rows + rows + cols - 2 = 46 -> 4 + 46 = 50 cycles; starts at 28, ends at 78.
    # STORE 16 bytes: 20 + 2 = 22, pops the GEMM's token: 78 + 22 = 100 cycles in all.
    prog = [I("LOAD", buf="INP", dtype="u8", dram=0, sram=0, x=64, y=1, y_stride=0, push_next=1),
            I("CONFIG", a="u8", w="s8", o="u8", clamp_min=0, clamp_max=255),
            I("GEMM", inp=0, wgt=0, acc=0, m=4, n=4, k=4, pop_prev=1, push_next=1),
            I("STORE", buf="ACC", dtype="u8", dram=512, sram=0, x=16, y=1, y_stride=0, pop_prev=1), I("HALT")]
    _, rep = SIM.run(Program(isa.encode_program(prog)))
    assert rep.units["compute"]["stall"] == 28 - 1  # CONFIG took 1 cycle, then GEMM waited for the token
    assert rep.cycles == 100
    assert rep.units["store"]["stall"] == 78
    assert rep.macs["8x8"] == 64


@settings(max_examples=25)
@given(program_and_image(max_len=8))
def test_timing_only_mode_gives_the_same_cycles_and_traffic(case):
    prog, image = case
    program = Program(isa.encode_program(prog), image)
    try:
        _, full = SIM.run(program)
    except SimError:
        return
    _, timing = SIM.run(program, values=False)
    assert timing.cycles == full.cycles and timing.dram_read_bytes == full.dram_read_bytes
    assert not timing.values_computed


def test_inputs_and_outputs_by_name():
    prog = [I("LOAD", buf="INP", dtype="s8", dram=0, sram=0, x=6, y=1, y_stride=0),
            I("SHR", src_buf="INP", src=0, dst_buf="OUT", dst=0, n=6, shift=1),
            I("STORE", buf="OUT", dtype="s8", dram=64, sram=0, x=6, y=1, y_stride=0), I("HALT")]
    program = Program(isa.encode_program(prog), tensors={
        "x": TensorRef(0, (2, 3), "s8", "input"), "y": TensorRef(64, (2, 3), "s8", "output")})
    out, _ = SIM.run(program, {"x": np.array([[4, -4, 5], [-5, 127, -128]])})
    assert out["y"].tolist() == [[2, -2, 2], [-3, 63, -64]]
    with pytest.raises(SimError, match="no input tensor 'z'"):
        SIM.run(program, {"z": np.zeros(1)})
    with pytest.raises(SimError, match="values must be integers in -128..127"):
        SIM.run(program, {"x": np.full((2, 3), 300)})


def test_cli_sim_bad_program_files(tmp_path, capsys):
    from accelsim import cli

    junk = tmp_path / "junk.axp"
    junk.write_bytes(b"PK\x03\x04 this is not a zip")
    assert cli.main(["sim", str(junk)]) == 2
    assert "not an accelsim program file" in capsys.readouterr().err
    # a valid program file, truncated
    good = tmp_path / "good.axp"
    Program(isa.encode_program([I("HALT")]), np.arange(100, dtype=np.uint8)).save(good)
    (tmp_path / "cut.axp").write_bytes(good.read_bytes()[:60])
    assert cli.main(["sim", str(tmp_path / "cut.axp")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err
    # a program whose words do not decode
    np.save(tmp_path / "w.npy", np.array([[0x3F, 0]], dtype=np.uint64))
    assert cli.main(["sim", str(tmp_path / "w.npy")]) == 2
    assert "cannot decode: word 0: opcode 0x3f is not assigned" in capsys.readouterr().err
    # the good one runs, and its report round-trips as JSON
    assert cli.main(["sim", str(good), "--report", str(tmp_path / "r.json")]) == 0
    import json
    assert json.loads((tmp_path / "r.json").read_text())["instructions"] == 1


def test_program_file_roundtrip(tmp_path):
    prog = Program(isa.encode_program([I("NOP"), I("HALT")]), np.arange(10, dtype=np.uint8),
                   {"x": TensorRef(0, (2, 5), "u8", "input")}, {"model": "t"})
    prog.save(tmp_path / "p.axp")
    back = Program.load(tmp_path / "p.axp")
    assert np.array_equal(back.words, prog.words) and np.array_equal(back.dram_image, prog.dram_image)
    assert back.tensors == prog.tensors and back.meta == {"model": "t"}


def test_fuzz_many_random_word_programs():
    """3000 programs of random words with valid opcodes (most do not decode, some run)."""
    rng = np.random.default_rng(7)
    from isa.table import OPS
    opcodes = np.array([op.opcode for op in OPS], dtype=np.uint64)
    ran = 0
    for _ in range(3000):
        n = int(rng.integers(1, 6))
        words = rng.integers(0, 2**63, (n, 2), dtype=np.uint64)
        words[:, 1] &= np.uint64(rng.integers(0, 2**20))  # often clear the high (reserved) bits
        words[:, 0] = (words[:, 0] & ~np.uint64(0x3F)) | rng.choice(opcodes, n)
        try:
            SIM.run(Program(words, np.zeros(256, np.uint8)))
            ran += 1
        except SimError:
            pass
    assert ran > 0  # some random programs really executed


def _host_program() -> list:
    """Copy DRAM 0..3 to 100..103 through INP, hand DRAM to the host (call 3), copy 100..103 to 200..203."""
    return [I("LOAD", buf="INP", dtype="u8", dram=0, sram=0, x=4, y=1, y_stride=0),
            I("STORE", buf="INP", dtype="u8", dram=100, sram=0, x=4, y=1, y_stride=0),
            I("HOST", call=3),
            I("LOAD", buf="INP", dtype="u8", dram=100, sram=4, x=4, y=1, y_stride=0),
            I("STORE", buf="INP", dtype="u8", dram=200, sram=4, x=4, y=1, y_stride=0), I("HALT")]


def _add_call(calls: list):
    def host(call: int, dram: np.ndarray) -> None:
        calls.append((call, dram[100:104].copy()))
        dram[100:104] += np.uint8(7)
    return host


def test_host_instruction_hands_dram_to_the_host_and_resumes():
    """The host sees what every earlier instruction stored, and later instructions see what it wrote,
    on the chip and in the golden semantics alike."""
    image = np.array([1, 2, 3, 250], np.uint8)
    chip_calls, golden_calls = [], []
    SIM.run(Program(isa.encode_program(_host_program()), image), host=_add_call(chip_calls))
    dram = np.zeros(DRAM, np.uint8)
    dram[:4] = image
    state = MachineState.create(dram, sizes=SIZES)
    state.host = _add_call(golden_calls)
    isa.run(_host_program(), state)
    want = (image + np.uint8(7)).astype(np.uint8)
    assert [c for c, _ in chip_calls] == [3] and np.array_equal(chip_calls[0][1], image)
    assert np.array_equal(SIM.last_dram[200:204], want) and np.array_equal(state.dram[200:204], want)
    assert [c for c, _ in golden_calls] == [3]


def test_host_instruction_without_a_host_is_a_typed_error():
    program = Program(isa.encode_program(_host_program()), np.zeros(4, np.uint8))
    with pytest.raises(SimError) as e:
        SIM.run(program)
    assert e.value.index == 2 and "HOST call 3: no host is attached" in str(e.value)
    with pytest.raises(ExecError) as g:
        isa.run(_host_program(), MachineState.create(DRAM, sizes=SIZES))
    assert g.value.index == 2 and "HOST call 3: no host is attached" in str(g.value)
