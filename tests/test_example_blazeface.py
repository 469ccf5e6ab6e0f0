"""examples/blazeface.py: BlazeFace short range, quantized by ONNX Runtime, finds the astronaut's face
on the chip, draws it into a PNG of the photo's size, and its outputs equal ONNX Runtime's bit for bit.

The model comes from scripts/fetch_models.py (a set-up step): without it the end-to-end test is
skipped, or fails under CI=true."""

from __future__ import annotations

import importlib.util
import os
import re
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "examples" / "blazeface.py"
BEST = re.compile(r"best face: box \(x0, y0, x1, y1\) = \(([-\d.]+), ([-\d.]+), ([-\d.]+), ([-\d.]+)\) px, "
                  r"score ([\d.]+)")
# The astronaut's face in skimage.data.astronaut() (512 x 512): skin from about x 180 to 275 and
# y 60 to 180 (hair from y 15, chin at 180), nose near (228, 128).
FACE_CENTRE_X, FACE_CENTRE_Y = (195, 260), (95, 160)
FACE_REGION = (150, 30, 305, 210)  # x0, y0, x1, y1 a face box must lie in


@pytest.fixture(scope="module")
def example():
    """The example module, imported by path."""
    spec = importlib.util.spec_from_file_location("blazeface_example", EXAMPLE)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    yield module
    sys.modules.pop(spec.name, None)


def require_model(example) -> None:
    path = example.model_path()
    if not path.exists():
        message = f"{path} is missing: run python scripts/fetch_models.py"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)


def test_finds_the_astronauts_face_on_the_chip(example, tmp_path, capsys):
    import matplotlib.image

    require_model(example)
    png = tmp_path / "faces.png"
    assert example.main(["--out", str(png), "--batch", "2"]) == 0
    printed = capsys.readouterr().out
    assert "chip == ONNX Runtime, bit for bit: True" in printed
    assert re.search(r"^conv2d +Conv ", printed, re.MULTILINE) and re.search(r"^total +[\d,]+ ", printed, re.MULTILINE)
    assert int(re.search(r"faces found: (\d+)", printed).group(1)) >= 1
    x0, y0, x1, y1, score = map(float, BEST.search(printed).groups())
    assert score > 0.5
    assert FACE_CENTRE_X[0] <= (x0 + x1) / 2 <= FACE_CENTRE_X[1]
    assert FACE_CENTRE_Y[0] <= (y0 + y1) / 2 <= FACE_CENTRE_Y[1]
    assert FACE_REGION[0] <= x0 < x1 <= FACE_REGION[2] and FACE_REGION[1] <= y0 < y1 <= FACE_REGION[3]
    assert 60 <= x1 - x0 <= 150 and 60 <= y1 - y0 <= 150
    image = matplotlib.image.imread(png)
    assert image.shape[:2] == (512, 512) and image.shape[2] in (3, 4)


def test_missing_model_tells_how_to_fetch_it(example, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("ACCELSIM_MODELS", str(tmp_path))
    assert example.main(["--out", str(tmp_path / "x.png")]) == 2
    assert "python scripts/fetch_models.py" in capsys.readouterr().out
    assert not (tmp_path / "x.png").exists()


def test_anchors_are_the_short_range_ssd_grid(example):
    a = example.anchors()
    assert a.shape == (896, 2)
    np.testing.assert_allclose(a[:2], [[1 / 32, 1 / 32]] * 2)  # 16 x 16 grid, 2 per cell
    np.testing.assert_allclose(a[2], [3 / 32, 1 / 32])
    np.testing.assert_allclose(a[512:518], [[1 / 16, 1 / 16]] * 6)  # 8 x 8 grid, 6 per cell
    np.testing.assert_allclose(a[-1], [15 / 16, 15 / 16])


def test_weighted_nms_merges_overlapping_boxes(example):
    boxes = np.array([[0.1, 0.1, 0.3, 0.3], [0.12, 0.1, 0.32, 0.3], [0.6, 0.6, 0.8, 0.8], [0.0, 0.0, 0.1, 0.1]])
    keypoints = np.zeros((4, 6, 2))
    scores = np.array([0.9, 0.6, 0.7, 0.4])  # the last is below the threshold
    merged = example.weighted_nms(boxes, keypoints, scores)
    assert [round(s, 2) for _, _, s in merged] == [0.9, 0.7]
    np.testing.assert_allclose(merged[0][0], (0.9 * boxes[0] + 0.6 * boxes[1]) / 1.5)
    np.testing.assert_allclose(merged[1][0], boxes[2])
