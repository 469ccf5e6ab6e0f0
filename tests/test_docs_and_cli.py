"""Acceptance 5 and 6: generated ISA reference is current; numerics doc exists; CLI contract."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np

import isa
from accelsim import cli
from isa import doc

ROOT = Path(__file__).resolve().parent.parent


def test_isa_reference_is_generated_and_current():
    text = (ROOT / "docs" / "isa.md").read_text()
    assert text == doc.render(), "docs/isa.md is stale: run python -m isa.doc"
    for op in isa.OPS:  # every instruction and every field is documented
        assert f"### {op.mnemonic}" in text
        for f in op.fields:
            assert f"| `{f.name}` |" in text


def test_doc_check_detects_staleness(tmp_path, monkeypatch):
    stale = tmp_path / "isa.md"
    stale.write_text(doc.render().replace("GEMM", "GEMX", 1))
    monkeypatch.setattr(doc, "DOC_PATH", stale)
    assert doc.main(["--check"]) == 1
    stale.write_text(doc.render())
    assert doc.main(["--check"]) == 0


def test_numerics_doc_names_every_rule_and_engine():
    text = (ROOT / "docs" / "numerics.md").read_text()
    for needle in ("fp32", "fixed_double", "fixed_single", "QuantizeMultiplier", "SaturatingRoundingDoublingHighMul",
                   "RoundingDivideByPOT", "half to even", "ONNX Runtime", "TFLite", "int4", "wrap", "NaN"):
        assert needle in text, needle


def test_cli_assembles_bundled_example(capsys):
    assert cli.main(["asm"]) == 0
    out = capsys.readouterr().out
    assert "GEMM inp=0 wgt=0 acc=0 m=64 n=8 k=36" in out
    assert np.array_equal(isa.assemble(out), isa.assemble((ROOT / "accelsim/examples/conv3x3.s").read_text()))


def test_cli_roundtrip_and_errors(tmp_path, capsys):
    src = tmp_path / "p.s"
    src.write_text("CONFIG a=u8 w=s8 o=u8 clamp_min=0 clamp_max=255\nHALT\n")
    out = tmp_path / "p.npy"
    assert cli.main(["asm", str(src), "-o", str(out)]) == 0
    capsys.readouterr()
    assert cli.main(["disasm", str(out)]) == 0
    assert capsys.readouterr().out.splitlines()[1] == "HALT"
    bad = tmp_path / "bad.s"
    bad.write_text("; ok\nGEMM inp=0 wgt=0 acc=0 m=5000 n=1 k=1\n")
    assert cli.main(["asm", str(bad)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "line 2" in err and "m: 5000 does not fit" in err
    np.save(tmp_path / "w.npy", np.array([[0x3F, 0]], dtype=np.uint64))
    assert cli.main(["disasm", str(tmp_path / "w.npy")]) == 2
    assert "opcode 0x3f is not assigned" in capsys.readouterr().err
    (tmp_path / "junk.npy").write_bytes(b"not numpy")
    assert cli.main(["disasm", str(tmp_path / "junk.npy")]) == 2


def test_cli_is_installed_as_a_console_script():
    r = subprocess.run([sys.executable, "-m", "accelsim.cli", "asm", "/nonexistent.s"],
                       capture_output=True, text=True)
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert r.stderr.strip() == "accelsim: error: /nonexistent.s: cannot read (No such file or directory)"


def test_cli_sim_runs_the_bundled_example(capsys):
    assert cli.main(["sim"]) == 0
    out = capsys.readouterr().out
    assert "bundled example conv3x3.s" in out and "MACs              8x8: 18,432" in out


def test_readme_python_example_runs(capsys):
    """The README's Python example runs as written."""
    import re
    from pathlib import Path

    text = (Path(__file__).resolve().parent.parent / "README.md").read_text()
    (code,) = re.findall(r"```python\n(.*?)```", text, flags=re.S)
    exec(compile(code, "README.md", "exec"), {})  # noqa: S102 - the project's own README
    assert "conv1" in capsys.readouterr().out


def test_python_dash_m_accelsim_runs_the_cli(tmp_path):
    """``python -m accelsim`` is the same command line: bad input exits 2 with one line."""
    ok = subprocess.run([sys.executable, "-m", "accelsim", "--help"], capture_output=True, text=True, timeout=300)
    assert ok.returncode == 0 and "demo" in ok.stdout
    bad = subprocess.run([sys.executable, "-m", "accelsim", "asm", str(tmp_path / "missing.s")], capture_output=True,
                         text=True, timeout=300)
    assert bad.returncode == 2 and len(bad.stderr.strip().splitlines()) == 1 and "Traceback" not in bad.stderr
