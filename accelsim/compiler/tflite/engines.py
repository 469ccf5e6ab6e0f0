"""The engines a TFLite model is held to, and how each rounds (docs/numerics.md, section 7).

LiteRT computes int8 differently in each of its kernel sets; ``--engine`` picks one, and the
importer gives every layer the REQUANT mode (isa.requant.MODES) of that engine's kernel:

- ``litert``: the default interpreter, XNNPACK delegate applied: float32 requantization
  (ONNX Runtime's order and rounding);
- ``litert-builtin``: BUILTIN_WITHOUT_DEFAULT_DELEGATES, the optimized built-in kernels: gemmlowp's
  high multiply, then a shift rounding half up; the depthwise kernel's last C mod 8 output
  channels take gemmlowp's rounding divide instead;
- ``litert-ref``: BUILTIN_REF, the reference kernels: double rounding for conv and depthwise,
  round(double(acc) * multiplier) with ties away from zero for fully connected;
- ``tflm``: tflite-micro's reference kernels, double rounding.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Optional

import numpy as np

from isa.quant import qrange


def quantize_away(x: np.ndarray, t) -> np.ndarray:
    """TFLite's AffineQuantize: round(x / s) with halves away from zero, + z, saturated (float32
    division)."""
    v = np.asarray(x, np.float32) / np.float32(t.scale)
    r = np.sign(v) * np.floor(np.abs(v) + np.float32(0.5))
    return np.clip(r.astype(np.int64) + t.zero_point, *qrange(t.dtype))


@dataclass(frozen=True)
class Engine:
    """The requant modes of one engine's kernels."""

    name: str
    conv: str
    depthwise: str
    fc: str
    depthwise_tail: Optional[str] = None   # mode of the last C mod 8 depthwise output channels
    binary: str = "fixed_double"           # ADD / MUL
    quantize_input: Callable = quantize_away  # a float input's QUANTIZE

    def depthwise_modes(self, channels: int) -> tuple[str, Optional[tuple[int, str]]]:
        """The depthwise mode and the (first channel, mode) of its tail, if it rounds apart."""
        if self.depthwise_tail is None or channels % 8 == 0:
            return self.depthwise, None
        return self.depthwise, (channels - channels % 8, self.depthwise_tail)


ENGINES: dict[str, Engine] = {
    "litert": Engine("litert", conv="fp32", depthwise="fp32", fc="fp32", binary="fp32"),
    "litert-builtin": Engine("litert-builtin", conv="fixed_double_up", depthwise="fixed_double_up",
                             fc="fixed_double_up", depthwise_tail="fixed_double"),
    "litert-ref": Engine("litert-ref", conv="fixed_double", depthwise="fixed_double", fc="fp64_away"),
    "tflm": Engine("tflm", conv="fixed_double", depthwise="fixed_double", fc="fixed_double"),
}
DEFAULT_ENGINE = "litert"


def engine(name: str) -> Engine:
    """The engine of this name, or a ValueError listing them."""
    try:
        return ENGINES[name]
    except KeyError:
        raise ValueError(f"engine {name!r}: expected one of {', '.join(ENGINES)}") from None
