"""What to train: the method and the bit widths (globally or by a layer-bit map)."""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from .fake import LsqPlusQuantizer, LsqQuantizer, MinMaxObserver, PactQuantizer
from .weights import DorefaWeight, LsqWeight, MaxAbsWeight, dorefa_magnitude

#: method -> (weight quantizer, activation quantizer after a ReLU, activation quantizer elsewhere).
#: Every activation is unsigned (with an integer zero point where it is not after a ReLU): ONNX
#: Runtime's integer kernels take one type in and out (u8 -> u8), and the chip's vector unit reads
#: and writes one type.
METHODS = {
    "minmax": ("max-abs", "moving min-max", "moving min-max"),
    "lsq": ("LSQ", "LSQ", "LSQ+"),
    "lsq+": ("LSQ", "LSQ+", "LSQ+"),
    "pact": ("max-abs", "PACT", "LSQ+"),
    "dorefa": ("DoReFa", "DoReFa (fixed clip)", "LSQ+"),
}


class QatError(ValueError):
    """A model or configuration QAT cannot handle; the message names the node or setting."""


@dataclass
class QatConfig:
    """How to train: ``method`` (one of METHODS), global widths, and ``layer_bits`` (node name ->
    {"weight_bits", "activation_bits"}, as accelsim.quant.QuantConfig and ``accelsim codesign``
    write it; the graph input is the node ``input``).  By default the graph input and the last
    layer's output (the logits) stay at 8 bits (``keep_ends``); every weight takes ``weight_bits``."""

    method: str = "lsq"
    weight_bits: int = 8
    activation_bits: int = 8
    layer_bits: dict[str, dict[str, int]] = field(default_factory=dict)
    keep_ends: bool = True
    momentum: float = 0.9          # moving-average observers (minmax)

    def __post_init__(self) -> None:
        if self.method not in METHODS:
            raise QatError(f"unknown QAT method {self.method!r}; choose one of {', '.join(METHODS)}")
        widths = [self.weight_bits, self.activation_bits] + [v for d in self.layer_bits.values() for v in d.values()]
        for b in widths:
            if not 2 <= int(b) <= 8:
                raise QatError(f"bit width {b} outside 2..8")

    def weight_bits_of(self, node: str) -> int:
        return int(self.layer_bits.get(node, {}).get("weight_bits", self.weight_bits))

    def activation_bits_of(self, node: str) -> int:
        return int(self.layer_bits.get(node, {}).get("activation_bits", self.activation_bits))


def weight_quantizer(method: str, bits: int, weight: torch.Tensor) -> torch.nn.Module:
    """The weight quantizer a method uses for a layer whose float weight is ``weight``."""
    channels = weight.shape[0]
    if method in ("lsq", "lsq+"):
        return LsqWeight(bits, channels)
    if method == "dorefa":
        return DorefaWeight(bits, channels, dorefa_magnitude(weight, bits - 1))
    return MaxAbsWeight(bits, channels)


def activation_quantizer(method: str, bits: int, after_relu: bool, momentum: float) -> torch.nn.Module:
    """The quantizer of a layer's (or an Add's) output: the method's own after a ReLU; elsewhere
    (logits, residual sums) LSQ+'s unsigned codes with a learned offset (METHODS)."""
    if method == "minmax":
        return MinMaxObserver(bits, False, momentum)
    if method == "lsq+" or not after_relu:
        return LsqPlusQuantizer(bits)
    if method == "pact":
        return PactQuantizer(bits)
    if method == "dorefa":
        return PactQuantizer(bits, learn=False)
    return LsqQuantizer(bits, signed=False)


def input_quantizer(bits: int) -> torch.nn.Module:
    """The graph input: its min-max range over the training data (every method)."""
    return MinMaxObserver(bits, False, None)
