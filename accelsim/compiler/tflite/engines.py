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
- ``tflm``: tflite-micro's kernels, double rounding (int8 only: it has no uint8 kernels but
  QUANTIZE's).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional


#: the layer kinds whose requant mode an engine sets, per activation type
KINDS = ("conv", "depthwise", "fc")


@dataclass(frozen=True)
class Engine:
    """The requant modes of one engine's kernels: ``layers[(kind, activation type)]``."""

    name: str
    layers: dict
    depthwise_tail: Optional[str] = None   # int8 depthwise: mode of the last C mod 8 output channels
    add: str = "fixed_double"              # ADD (VADD mode)
    mul: str = "fixed_double"              # MUL (VMUL mode)
    xnnpack: bool = False                  # the XNNPACK delegate takes the ops it supports
    kernels: str = "ref"                   # whose QUANTIZE, DEQUANTIZE, MEAN and SOFTMAX: xnn (XNNPACK's where
    #                                        it takes them), opt (the optimized built-in ones) or ref
    micro: bool = False                    # tflite-micro: no uint8 kernels, no requantizing average pool

    @property
    def optimized(self) -> bool:
        """The optimized built-in kernels run what XNNPACK does not take."""
        return self.kernels in ("xnn", "opt")

    def mode(self, kind: str, dtype: str) -> str:
        """The REQUANT mode of a ``kind`` layer on ``dtype`` activations (s8 or u8)."""
        return self.layers[(kind, dtype)]

    def depthwise_modes(self, channels: int, dtype: str) -> tuple[str, Optional[tuple[int, str]]]:
        """The depthwise mode and the (first channel, mode) of its tail, if it rounds apart."""
        mode = self.mode("depthwise", dtype)
        if self.depthwise_tail is None or dtype != "s8" or channels % 8 == 0:
            return mode, None
        return mode, (channels - channels % 8, self.depthwise_tail)


def _modes(s8: tuple[str, str, str], u8: tuple[str, str, str]) -> dict:
    """(conv, depthwise, fc) modes on int8 and on uint8 activations."""
    return {**{(k, "s8"): m for k, m in zip(KINDS, s8)}, **{(k, "u8"): m for k, m in zip(KINDS, u8)}}


# Measured on LiteRT 2.3 (tests/test_tflite_layers.py): XNNPACK takes int8 and uint8 conv and fully
# connected layers and int8 depthwise; a uint8 depthwise stays on the built-in kernel, whose uint8
# path rounds twice (gemmlowp) with no tail rule.
ENGINES: dict[str, Engine] = {
    "litert": Engine("litert", _modes(("fp32", "fp32", "fp32"), ("fp32", "fixed_double", "fp32")), add="fixed_shared",
                     mul="fp32", xnnpack=True, kernels="xnn"),
    "litert-builtin": Engine("litert-builtin",
                             _modes(("fixed_double_up",) * 3, ("fixed_double_up", "fixed_double", "fixed_double_up")),
                             depthwise_tail="fixed_double", kernels="opt"),
    "litert-ref": Engine("litert-ref", _modes(("fixed_double", "fixed_double", "fp64_away"),
                                              ("fixed_double", "fixed_double", "fp64_away"))),
    "tflm": Engine("tflm", _modes(("fixed_double",) * 3, ("fixed_double",) * 3), micro=True),
}
DEFAULT_ENGINE = "litert"


def engine(name: str) -> Engine:
    """The engine of this name, or a ValueError listing them."""
    try:
        return ENGINES[name]
    except KeyError:
        raise ValueError(f"engine {name!r}: expected one of {', '.join(ENGINES)}") from None
