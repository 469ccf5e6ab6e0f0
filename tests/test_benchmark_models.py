"""benchmarks/models.py runs with one command, at several batches, and writes the documented JSON
rows; a pretrained model whose file is missing is skipped with a line saying how to fetch it."""

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
FIELDS = {"model", "batch", "compile_s", "simulate_s", "timing_only_s", "onnxruntime_s", "onnxruntime_exact_s",
          "ort_mode", "ratio", "images_per_s_chip", "images_per_s_sim", "images_per_s_ort", "dram_bytes_per_image",
          "weight_bytes_per_image", "macs", "cycles", "bit_exact"}


def run_benchmark(tmp_path: Path, *args: str, env: dict | None = None) -> tuple[str, list[dict]]:
    """The benchmark's stdout and JSON rows."""
    out = tmp_path / "m.json"
    r = subprocess.run([sys.executable, "benchmarks/models.py", *args, "--reps", "1", "--json", str(out)], cwd=ROOT,
                       capture_output=True, text=True, timeout=300, check=False, env={**os.environ, **(env or {})})
    assert r.returncode == 0, r.stderr[-2000:]
    return r.stdout, json.loads(out.read_text())


def cls_present() -> bool:
    """Whether scripts/fetch_models.py has fetched the text-direction classifier."""
    if "fetch_models" not in sys.modules:
        spec = importlib.util.spec_from_file_location("fetch_models", ROOT / "scripts" / "fetch_models.py")
        sys.modules["fetch_models"] = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(sys.modules["fetch_models"])
    return (sys.modules["fetch_models"].model_dir() / "ch_ppocr_mobile_v2.0_cls_infer.onnx").exists()


def check_rows(rows: list[dict], model: str, ort_mode: str) -> None:
    """Batch 1 and 2 of ``model``: bit exact, consistent figures, weights shared across the batch."""
    one, two = (r for r in rows if r["model"] == model)
    for r in (one, two):
        assert FIELDS <= set(r), r.get("error")
        assert r["bit_exact"] is True and r["ort_mode"] == ort_mode and r["cycles"] > 0
        assert r["ratio"] == r["simulate_s"] / r["onnxruntime_s"]
        assert r["images_per_s_sim"] == r["batch"] / r["simulate_s"] and r["images_per_s_chip"] > 0
        assert 0 < r["weight_bytes_per_image"] <= r["dram_bytes_per_image"]
    assert (one["batch"], two["batch"]) == (1, 2) and two["input_shape"][0] == 2
    assert two["macs"] == 2 * one["macs"]
    assert two["weight_bytes_per_image"] <= one["weight_bytes_per_image"]


def test_models_benchmark_rows_per_batch(tmp_path):
    stdout, rows = run_benchmark(tmp_path, "--models", "resnet18", "cls", "--size", "64", "--batch", "1", "2")
    check_rows(rows, "resnet18", "per-image")  # the zoo file fixes batch 1: ORT runs image by image
    if cls_present():
        check_rows(rows, "cls", "batch")  # its batch dimension is free: ORT runs the batch in one call
    else:
        assert "scripts/fetch_models.py" in stdout and not any(r["model"] == "cls" for r in rows)
    assert len(stdout.splitlines()) >= 1 + len(rows)  # a header and one line per (model, batch)


def test_missing_pretrained_model_is_skipped(tmp_path):
    stdout, rows = run_benchmark(tmp_path, "--models", "blazeface", env={"ACCELSIM_MODELS": str(tmp_path / "none")})
    assert rows == []
    (line,) = [s for s in stdout.splitlines() if "blazeface" in s]
    assert "missing" in line and "scripts/fetch_models.py" in line
