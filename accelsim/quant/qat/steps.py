"""The prepared network: an ordered list of steps, each named as its node will be in the exported
ONNX model, each passing on ``(x_hat, scale)``: the fake-quantized tensor and the float32 scale
it sits on (layers need their input's scale for the int32 bias grid s_x * s_w).

Steps: the graph input (quantized), Conv / Linear layers (a BatchNorm folded in, a fused ReLU,
ReLU6 or Clip, weight and output quantizers), MaxPool, Flatten, Dropout (training only) and Add
(a fused ReLU, an output quantizer).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import torch
import torch.nn.functional as F

from .fake import _RoundSte

Tagged = tuple[torch.Tensor, torch.Tensor]  # (fake-quantized values, their scale)


@dataclass(frozen=True)
class Activation:
    """A fused activation: float bounds (``lo`` 0 for ReLU; None = unbounded)."""

    lo: Optional[float] = 0.0
    hi: Optional[float] = None

    def apply(self, y: torch.Tensor) -> torch.Tensor:
        return torch.clamp(y, min=self.lo, max=self.hi)

    @property
    def onnx(self) -> tuple[str, list[float]]:
        if self.lo == 0.0 and self.hi is None:
            return "Relu", []
        return "Clip", [self.lo if self.lo is not None else float("-inf"), self.hi if self.hi is not None else float("inf")]


class Step(torch.nn.Module):
    """One node of the prepared network: ``name`` is its ONNX node name, ``inputs`` the steps it reads."""

    def __init__(self, name: str, inputs: list[str]) -> None:
        super().__init__()
        self.step_name, self.inputs = name, list(inputs)
        self.out_quant: Optional[torch.nn.Module] = None  # its output's quantizer; None: keeps its input's


class InputStep(Step):
    def __init__(self, name: str, quantizer: torch.nn.Module) -> None:
        super().__init__(name, [])
        self.out_quant = quantizer

    def forward(self, x: torch.Tensor) -> Tagged:
        y = self.out_quant(x)
        return y, torch.as_tensor(self.out_quant.deployed()[0])


@dataclass
class ConvGeometry:
    stride: tuple[int, int] = (1, 1)
    padding: tuple[int, int] = (0, 0)
    dilation: tuple[int, int] = (1, 1)
    groups: int = 1


class LayerStep(Step):
    """Conv2d or Linear with an optional folded BatchNorm2d and fused activation.

    While BatchNorm is live (training, not frozen) the batch statistics come from a float pass
    of the convolution and fold into the weight (Jacob et al. 2018); once frozen (``freeze_bn``)
    the running statistics fold.  The bias joins the int32 grid ``fl(s_x * s_w)`` (STE)."""

    def __init__(self, name: str, inputs: list[str], kind: str, weight: torch.Tensor, bias: Optional[torch.Tensor],
                 geometry: Optional[ConvGeometry], bn: Optional[torch.nn.BatchNorm2d], act: Optional[Activation],
                 w_quant: torch.nn.Module, out_quant: torch.nn.Module) -> None:
        super().__init__(name, inputs)
        self.kind, self.geometry, self.act = kind, geometry, act
        self.weight = torch.nn.Parameter(weight.detach().clone().float())
        self.bias = torch.nn.Parameter(bias.detach().clone().float()) if bias is not None else None
        self.bn = bn
        self.bn_frozen = False
        self.w_quant, self.out_quant = w_quant, out_quant

    def _linear(self, x: torch.Tensor, w: torch.Tensor, b: Optional[torch.Tensor]) -> torch.Tensor:
        if self.kind == "linear":
            return F.linear(x, w, b)
        g = self.geometry
        return F.conv2d(x, w, b, g.stride, g.padding, g.dilation, g.groups)

    def folding(self, x: Optional[torch.Tensor] = None) -> tuple[torch.Tensor, torch.Tensor]:
        """The per-channel factor and the bias after folding BatchNorm (batch statistics of the
        float convolution of ``x`` while BatchNorm is live and training)."""
        n = self.weight.shape[0]
        bias = self.bias if self.bias is not None else torch.zeros(n)
        if self.bn is None:
            return torch.ones(n), bias
        bn = self.bn
        if self.training and not self.bn_frozen and x is not None:
            y = self._linear(x, self.weight, None)
            mean, var = y.mean(dim=(0, 2, 3)), y.var(dim=(0, 2, 3), unbiased=False)
            with torch.no_grad():
                m, count = bn.momentum if bn.momentum is not None else 0.1, y.numel() / n
                bn.running_mean.mul_(1 - m).add_(m * mean.detach())
                bn.running_var.mul_(1 - m).add_(m * var.detach() * count / max(count - 1, 1))
        else:
            mean, var = bn.running_mean, bn.running_var
        f = bn.weight / torch.sqrt(var + bn.eps)
        return f, bn.bias + (bias - mean) * f

    def forward(self, x: Tagged) -> Tagged:
        xv, sx = x
        f, b = self.folding(xv)
        w_hat = self.w_quant(self.weight, f)
        b_hat = None
        if b is not None:
            grid = (sx.detach().float() * self._weight_scale(f)).float()
            b_hat = torch.clamp(_RoundSte.apply(b / grid), -(2 ** 31), 2 ** 31 - 1) * grid
        y = self._linear(xv, w_hat, b_hat)
        if self.act is not None:
            y = self.act.apply(y)
        return self.out_quant(y), torch.as_tensor(self.out_quant.deployed()[0])

    def _weight_scale(self, f: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            return torch.tensor(self.w_quant.deploy(self.weight, f)[1])

    def deployed(self) -> tuple:
        """Integer weight codes, float32 per-channel weight scales and the float32 folded bias."""
        with torch.no_grad():
            f, b = self.folding()
            codes, scale = self.w_quant.deploy(self.weight, f)
        return codes, scale, b.detach().numpy().astype("float32")


class MaxPoolStep(Step):
    def __init__(self, name: str, inputs: list[str], kernel, stride, padding, dilation, ceil_mode: bool) -> None:
        super().__init__(name, inputs)
        self.kernel, self.stride, self.padding = _pair(kernel), _pair(stride or kernel), _pair(padding)
        self.dilation, self.ceil_mode = _pair(dilation), bool(ceil_mode)

    def forward(self, x: Tagged) -> Tagged:
        return F.max_pool2d(x[0], self.kernel, self.stride, self.padding, self.dilation, self.ceil_mode), x[1]


class FlattenStep(Step):
    def forward(self, x: Tagged) -> Tagged:
        return torch.flatten(x[0], 1), x[1]


class DropoutStep(Step):
    """Dropout while training; nothing at inference (not exported)."""

    def __init__(self, name: str, inputs: list[str], p: float) -> None:
        super().__init__(name, inputs)
        self.p = p

    def forward(self, x: Tagged) -> Tagged:
        return F.dropout(x[0], self.p, self.training), x[1]


class AddStep(Step):
    def __init__(self, name: str, inputs: list[str], act: Optional[Activation], out_quant: torch.nn.Module) -> None:
        super().__init__(name, inputs)
        self.act, self.out_quant = act, out_quant

    def forward(self, a: Tagged, b: Tagged) -> Tagged:
        y = a[0] + b[0]
        if self.act is not None:
            y = self.act.apply(y)
        return self.out_quant(y), torch.as_tensor(self.out_quant.deployed()[0])


def _pair(v) -> tuple[int, int]:
    return tuple(v) if isinstance(v, (tuple, list)) else (int(v), int(v))


class QatNet(torch.nn.Module):
    """The prepared network: train it like any module (its forward is the fake-quantized one),
    ``freeze_bn()`` for the last epochs, then ``accelsim.quant.qat.export``."""

    def __init__(self, steps: list[Step], output: str) -> None:
        super().__init__()
        self.steps = torch.nn.ModuleList(steps)
        self.output = output

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        env: dict[str, Tagged] = {}
        for s in self.steps:
            env[s.step_name] = s(x) if isinstance(s, InputStep) else s(*[env[i] for i in s.inputs])
        return env[self.output][0]

    def freeze_bn(self) -> None:
        """Fold BatchNorm with its running statistics from now on (they stop updating)."""
        for s in self.layers():
            s.bn_frozen = True

    def layers(self) -> list[LayerStep]:
        return [s for s in self.steps if isinstance(s, LayerStep)]

    def step(self, name: str) -> Step:
        return next(s for s in self.steps if s.step_name == name)
