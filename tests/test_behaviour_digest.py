"""The behaviour of the whole tool chain, pinned: for every zoo model (quantized by ONNX Runtime's
quantize_static in QDQ and QOperator form), the bundled digits demo and the bundled example
program, a digest of the outputs, the program words and DRAM image, and the total and per-layer
cycles and DRAM bytes, recorded in tests/data/behaviour_digest.json.

It goes only through the command line (``accelsim.cli.main``), the zoo and the .axp file format
(read with numpy), so a reorganisation of the package cannot change what it checks.  A change
that alters behaviour on purpose regenerates the record with ``ACCELSIM_REGEN_DIGEST=1`` and says
why in its commit.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import logging
import os
from pathlib import Path

import numpy as np
import onnx
import pytest

from accelsim import cli, zoo

quantization = pytest.importorskip("onnxruntime.quantization")

RECORD = Path(__file__).parent / "data" / "behaviour_digest.json"
REGEN = os.environ.get("ACCELSIM_REGEN_DIGEST") == "1"
SIZES = {"resnet18": 64, "mobilenetv2": 64}  # the large models at a smaller input, to stay quick
FORMATS = {"QDQ": dict(per_channel=True, reduce_range=False),
           "QOperator": dict(per_channel=False, reduce_range=True)}


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()[:16]


def _record() -> dict:
    return json.loads(RECORD.read_text()) if RECORD.exists() else {}


def _check(key: str, got: dict) -> None:
    if REGEN:
        record = _record()
        record[key] = got
        RECORD.parent.mkdir(exist_ok=True)
        RECORD.write_text(json.dumps(record, indent=1, sort_keys=True) + "\n")
        return
    want = _record().get(key)
    assert want is not None, f"{key}: no record (run once with ACCELSIM_REGEN_DIGEST=1)"
    assert got == want


def _cli(*argv: str) -> str:
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert cli.main(list(argv)) == 0
    return out.getvalue()


class _Reader(quantization.CalibrationDataReader):
    def __init__(self, shape, n: int = 8):
        rng = np.random.default_rng(5)
        self.data = iter([{"input": rng.standard_normal(shape).astype(np.float32)} for _ in range(n)])

    def get_next(self):
        return next(self.data, None)


def _quantize(tmp_path: Path, name: str, fmt: str) -> Path:
    model = zoo.build(name, input_size=SIZES.get(name), fold_bn=True)  # as quant_pre_process
    src, dst = tmp_path / f"{name}.onnx", tmp_path / f"{name}_{fmt}.onnx"
    onnx.save(model, src)
    logging.getLogger().setLevel(logging.ERROR)
    quantization.quantize_static(str(src), str(dst), _Reader(zoo.input_shape(model)),
                                 quant_format=getattr(quantization.QuantFormat, fmt), **FORMATS[fmt])
    return dst


def _program_digest(path: Path) -> dict:
    with np.load(path, allow_pickle=False) as z:
        return {"words": _sha(z["words"].tobytes()), "dram": _sha(z["dram"].tobytes()),
                "instructions": int(z["words"].shape[0]), "dram_bytes": int(z["dram"].size)}


@pytest.mark.parametrize("fmt", sorted(FORMATS))
@pytest.mark.parametrize("name", zoo.NAMES)
def test_zoo_model(tmp_path, name, fmt):
    q = _quantize(tmp_path, name, fmt)
    shape = zoo.input_shape(onnx.load(str(q)))
    x = np.random.default_rng(7).standard_normal(shape).astype(np.float32)
    np.save(tmp_path / "x.npy", x)
    _cli("compile", str(q), "-o", str(tmp_path / "m.axp"))
    _cli("run", str(q), "--input", str(tmp_path / "x.npy"), "--output", str(tmp_path / "y.npy"),
         "--report", str(tmp_path / "r.json"))
    y = np.load(tmp_path / "y.npy")
    report = json.loads((tmp_path / "r.json").read_text())
    layers = [[r["name"], r["op"], r["where"], r["cycles"], r["dram_weight_bytes"], r["dram_activation_bytes"],
               r["dram_param_bytes"], r["macs"]] for r in report["layers"]]
    _check(f"zoo/{name}/{fmt}", {"output": _sha(y.astype(np.float32).tobytes()), "shape": list(y.shape),
                                 "program": _program_digest(tmp_path / "m.axp"),
                                 "cycles": report["total"]["cycles"], "dram_bytes": report["total"]["dram_bytes"],
                                 "layers": layers})


def test_demo():
    text = _cli("demo", "--quiet")
    body = "\n".join(line for line in text.splitlines() if not (line.startswith("(") and line.endswith(" s)")))
    _check("demo", {"text": _sha(body.encode()), "lines": len(body.splitlines())})


def test_bundled_program(tmp_path):
    _cli("sim", "--report", str(tmp_path / "r.json"))
    report = json.loads((tmp_path / "r.json").read_text())
    _check("sim/bundled", report)
