"""Chip config (TOML) checks, SCALE-Sim topology parsing, and the estimate command."""

from __future__ import annotations

import json

import pytest

from accelsim import cli
from accelsim.chip import ChipConfig, ConfigError
from accelsim.compiler.tiling import ConvLayer, choose_tiling
from accelsim.compiler.topology import TopologyError, estimate, parse_topology


def test_defaults_and_precision_rule():
    chip = ChipConfig()
    assert (chip.rows, chip.cols) == (16, 16)
    # Bit Fusion rule: 4x4 = 4, 8x4 = 2, 8x8 = 1, a 16-bit operand halves it
    assert [chip.products_per_cycle(w, a) for w, a in [(4, 4), (8, 4), (4, 8), (8, 8), (16, 8), (16, 16)]] == \
        [4, 2, 2, 1, 0.5, 0.25]
    assert chip.buffer_words()["INP"] == 256 * 1024


@pytest.mark.parametrize("text, message", [
    ("[array]\nrows = 0", "array.rows must be an integer >= 1, got 0"),
    ("[array]\nrows = 2.5", "array.rows must be an integer >= 1"),
    ("[array]\nrowz = 3", "unknown key array.rowz"),
    ("[arr]\nrows = 3", "unknown section [arr]"),
    ("[array]\ndataflow = 'diagonal'", "array.dataflow must be one of"),
    ("[array]\noperand_bits = [2, 8]", "array.operand_bits must be a non-empty list drawn from 4, 8, 16"),
    ("[array]\nmax_acc_bits = 64", "array.max_acc_bits must be 8..48"),
    ("[dram]\nbandwidth = 0", "dram.bandwidth must be a number > 0"),
    ("[energy]\ndram_byte = -1", "energy.dram_byte must be a number >= 0"),
    ("[buffers]\ninp_kib = 8192\ninp_word_bits = 4", "buffers.inp_kib gives"),
    ("rows = ", "not valid TOML"),
])
def test_bad_configs_name_the_key(text, message):
    with pytest.raises(ConfigError) as e:
        ChipConfig.from_toml(text, "chip.toml")
    assert str(e.value).startswith("chip.toml: ") and message in str(e.value)


def test_cli_rejects_bad_config_with_one_line(tmp_path, capsys):
    bad = tmp_path / "c.toml"
    bad.write_text("[array]\ncols = -2\n")
    assert cli.main(["sim", "accelsim/examples/conv3x3.s", "--chip", str(bad)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "array.cols must be an integer >= 1" in err


TOPO = """Layer name, IFMAP Height, IFMAP Width, Filter Height, Filter Width, Channels, Num Filter, Strides,
Conv2_1a, 56, 56, 3, 3, 64, 64, 1,
Conv3_s, 56, 56, 1, 1, 64, 128, 2,
FC, 1, 1, 1, 1, 512, 1000, 1,
"""


def test_parse_scalesim_topologies():
    layers = parse_topology(TOPO)
    assert [(l.name, l.out_h, l.out_w, l.macs) for l in layers] == [
        ("Conv2_1a", 54, 54, 54 * 54 * 64 * 9 * 64),       # SCALE-Sim: no padding
        ("Conv3_s", 29, 29, 29 * 29 * 128 * 64),            # SCALE-Sim: ceil((56 - 1 + 2) / 2) = 29
        ("FC", 1, 1, 512 * 1000)]
    gemm = parse_topology("Layer, M, N, K\nfc1, 64, 1000, 512\n")
    assert gemm[0].macs == 64 * 1000 * 512 and gemm[0].out_w == 64


@pytest.mark.parametrize("text, message", [
    ("", "empty topology"),
    ("a,b,c\n", "expected a SCALE-Sim header"),
    (TOPO.splitlines()[0] + "\nX, 5, 5, 3\n", ":2: expected 8 fields, got 4"),
    (TOPO.splitlines()[0] + "\nX, 5, 5, 3, q, 1, 1, 1\n", ":2: fields must be integers"),
    (TOPO.splitlines()[0] + "\nX, 2, 2, 3, 3, 1, 1, 1\n", ":2: filter 3x3 larger than the 2x2 input"),
    ("Layer, M, N, K\nfc, 0, 3, 4\n", ":2: sizes must be positive"),
])
def test_bad_topologies_name_file_and_line(text, message):
    with pytest.raises(TopologyError, match=message):
        parse_topology(text, "t.csv")


def test_tiling_fits_buffers_with_double_buffering():
    chip = ChipConfig()
    words = chip.buffer_words()
    for layer in parse_topology(open("examples/resnet18.csv").read()):
        t = choose_tiling(layer, chip)
        k = layer.k_h * layer.k_w * t.tc
        assert t.slots * t.tp * k <= words["INP"] and t.slots * t.tn * k <= words["WGT"]
        assert t.tp * t.tn <= words["ACC"] and 2 * t.tp * t.tn <= words["OUT"]


def test_estimate_resnet18_cli(tmp_path, capsys):
    out = tmp_path / "e.json"
    assert cli.main(["estimate", "--topology", "examples/resnet18.csv", "--json", str(out)]) == 0
    data = json.loads(out.read_text())
    assert len(data["layers"]) == 21
    for layer in data["layers"]:
        assert {"name", "cycles", "utilization", "dram_bytes"} <= set(layer)
        # a layer can never beat the array's peak: cycles >= MACs / (rows * cols)
        assert layer["cycles"] >= layer["macs"] / 256 and 0 < layer["utilization"] <= 1
    assert data["total"]["cycles"] == sum(l["cycles"] for l in data["layers"])
    assert "Conv2_1a" in capsys.readouterr().out


def test_lower_precision_is_faster_and_moves_fewer_weight_bytes():
    layer = [ConvLayer("c", 28, 28, 128, 3, 3, 128, 1, 1, 1, 1, 1)]
    chip = ChipConfig()
    e8, e4 = estimate(layer, chip, 8, 8)[0], estimate(layer, chip, 4, 4)[0]
    assert e4.compute_cycles < e8.compute_cycles
    assert e4.weight_bytes * 2 == pytest.approx(e8.weight_bytes, rel=0.01)


def test_estimate_cli_errors(tmp_path, capsys):
    assert cli.main(["estimate", "--topology", str(tmp_path / "none.csv")]) == 2
    assert "cannot read" in capsys.readouterr().err
    assert cli.main(["estimate", "--topology", "examples/resnet18.csv", "--bits", "3x3"]) == 2
    assert "--bits 3x3" in capsys.readouterr().err
