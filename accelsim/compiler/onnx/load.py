"""Reading an ONNX file: a missing, truncated or corrupt file is a ModelError naming the file."""

from __future__ import annotations

from pathlib import Path

import onnx

from ..ir import ModelError


def load_model(path: str | Path) -> onnx.ModelProto:
    """Read and check an ONNX file."""
    try:
        model = onnx.load(str(path))
        onnx.checker.check_model(model)
    except FileNotFoundError:
        raise ModelError(str(path), "file", "no such file") from None
    except Exception as e:  # onnx raises DecodeError, ValidationError, ...
        raise ModelError(str(path), "file", f"not a valid ONNX model ({type(e).__name__}: {str(e)[:200]})") from None
    return model
