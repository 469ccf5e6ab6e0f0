"""``accelsim eval``: a labelled data set through the chip in batches; the JSON's fields; the same
answers at every batch size; bad data files are one line and exit 2."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
import pytest

from accelsim import cli
from accelsim.quant import quantize_model

DATA = Path(cli.__file__).resolve().parent / "data"
FIELDS = {"n", "top1", "ort_equal_fraction", "ort_top1_agreement", "cycles_per_image", "energy_pj_per_image",
          "dram_bytes_per_image", "images_per_s_chip"}


@pytest.fixture(scope="module")
def digits(tmp_path_factory):
    """The bundled digits CNN quantized by accelsim, and 50 test digits with labels (.npz and .npy)."""
    d = np.load(DATA / "digits_split.npz")
    root = tmp_path_factory.mktemp("eval")
    q = quantize_model(onnx.load(DATA / "digits_cnn.onnx"), d["calib_x"], progress=False)
    onnx.save(q, root / "q.onnx")
    x, y = d["test_x"][:50], d["test_y"][:50]
    np.savez(root / "test.npz", x=x, y=y)
    np.save(root / "x.npy", x)
    np.save(root / "y.npy", y)
    return root, x, y


def _eval(root: Path, *args: str) -> dict:
    out = root / f"r{len(list(root.glob('r*.json')))}.json"
    assert cli.main(["eval", str(root / "q.onnx"), *args, "--quiet", "--json", str(out)]) == 0
    return json.loads(out.read_text())


def test_eval_reports_accuracy_agreement_and_cost(digits, capsys):
    root, x, y = digits
    r = _eval(root, "--data", str(root / "test.npz"), "--batch", "16")
    assert FIELDS <= set(r)
    assert r["n"] == 50 and r["batch"] == 16
    assert r["ort_equal_fraction"] == 1.0 and r["ort_top1_agreement"] == 1.0  # bit-exact with the reference
    assert 0.8 <= r["top1"] <= 1.0
    assert r["cycles_per_image"] > 0 and r["energy_pj_per_image"] > 0 and r["dram_bytes_per_image"] > 0
    assert r["images_per_s_chip"] > 0
    assert "top-1" in capsys.readouterr().out


def test_eval_answers_do_not_depend_on_the_batch(digits):
    """Batches of 1, 7 (50 is not a multiple) and 50 give the same accuracy; weights fetched once
    per batch cost fewer DRAM bytes per image as the batch grows."""
    root, x, y = digits
    runs = [_eval(root, "--data", str(root / "x.npy"), "--labels", str(root / "y.npy"), "--batch", str(b))
            for b in (1, 7, 50)]
    assert len({r["top1"] for r in runs}) == 1
    assert all(r["ort_equal_fraction"] == 1.0 for r in runs)
    assert runs[2]["dram_bytes_per_image"] < runs[0]["dram_bytes_per_image"]


def test_eval_without_labels_or_ort(digits):
    root, x, y = digits
    r = _eval(root, "--data", str(root / "x.npy"), "--no-ort")
    assert r["top1"] is None and r["ort_equal_fraction"] is None and r["ort_top1_agreement"] is None
    assert r["n"] == 50


@pytest.mark.parametrize("make, reason", [
    (lambda p: p.write_text("not an array"), "cannot read"),
    (lambda p: np.save(p, np.array(["a", "b"])), ""),
    (lambda p: np.save(p, np.zeros((3, 1, 9, 9), np.float32)), "shape"),
    (lambda p: np.save(p, np.full((2, 1, 8, 8), np.nan, np.float32)), ""),
])
def test_eval_bad_data_is_one_line(digits, tmp_path, capsys, make, reason):
    root, _, _ = digits
    path = tmp_path / "bad.npy"
    make(path)
    assert cli.main(["eval", str(root / "q.onnx"), "--data", str(path), "--quiet"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "Traceback" not in err
    assert reason in err
