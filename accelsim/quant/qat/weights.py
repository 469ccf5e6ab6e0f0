"""Weight quantizers for QAT layers: symmetric, per output channel (axis 0), signed codes.

Each takes the layer's float weight ``w`` and the per-channel factor ``f`` a folded BatchNorm
multiplies it by (ones without BatchNorm), and gives

* ``forward(w, f)``: the fake-quantized folded weight used in training (STE backward);
* ``deploy(w, f)``: the integer codes (int64) and float32 per-channel scales the chip runs with,
  so that ``codes * scale`` is the deployed weight.

LSQ and max-abs quantize the folded weight ``w * f``.  DoReFa quantizes ``w`` itself and carries
``f`` in the per-channel scale (its codes do not change when BatchNorm is folded).
"""

from __future__ import annotations

import numpy as np
import torch

from isa.quant import scale_zero_point

from .fake import LsqQuantizer, dorefa_weight, qrange, quantize_codes, straight_through


def _per_channel(f: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    return f.reshape((-1,) + (1,) * (w.dim() - 1))


class LsqWeight(torch.nn.Module):
    """LSQ's learned per-channel step on the folded weight."""

    def __init__(self, bits: int, channels: int) -> None:
        super().__init__()
        self.bits = bits
        self.lsq = LsqQuantizer(bits, True, channels=channels)

    def forward(self, w: torch.Tensor, f: torch.Tensor) -> torch.Tensor:
        return self.lsq(w * _per_channel(f, w))

    def deploy(self, w: torch.Tensor, f: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
        wf = (w * _per_channel(f, w)).detach()
        if not self.lsq.initialized:
            self.lsq(wf)
        s = self.lsq.step().detach()
        codes = quantize_codes(wf, _per_channel(s, wf), torch.zeros(()), self.lsq.qmin, self.lsq.qmax)
        return codes.numpy().astype(np.int64), s.numpy().astype(np.float32)


class MaxAbsWeight(torch.nn.Module):
    """The plain baseline: each channel's max |w| (onnxruntime.quantization's symmetric scale,
    recomputed every step), round half to even, STE."""

    def __init__(self, bits: int, channels: int) -> None:
        super().__init__()
        self.bits = bits
        self.qmin, self.qmax = qrange(bits, True)

    def _scale(self, wf: torch.Tensor) -> torch.Tensor:
        a = wf.detach().abs().reshape(len(wf), -1).max(dim=1).values.numpy()
        s, _ = scale_zero_point(-a, a, self.qmin, self.qmax, symmetric=True)
        return torch.tensor(np.asarray(s, np.float32).reshape(-1))

    def forward(self, w: torch.Tensor, f: torch.Tensor) -> torch.Tensor:
        wf = w * _per_channel(f, w)
        s = _per_channel(self._scale(wf), wf)
        return straight_through(wf, quantize_codes(wf.detach(), s, torch.zeros(()), self.qmin, self.qmax) * s)

    def deploy(self, w: torch.Tensor, f: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
        wf = (w * _per_channel(f, w)).detach()
        s = self._scale(wf)
        codes = quantize_codes(wf, _per_channel(s, wf), torch.zeros(()), self.qmin, self.qmax)
        return codes.numpy().astype(np.int64), s.numpy()


def dorefa_magnitude(w: torch.Tensor, k: int) -> torch.Tensor:
    """Per output channel, the least-squares ``c`` of ``w ~ c * dorefa(w)`` (mean |w| for k = 1,
    the XNOR-Net scale)."""
    d = dorefa_weight(w.detach(), k).reshape(len(w), -1)
    return (w.detach().reshape(len(w), -1) * d).sum(dim=1) / (d * d).sum(dim=1).clamp(min=1e-12)


class DorefaWeight(torch.nn.Module):
    """DoReFa on ``bits`` of container: ``k = bits - 1`` bits of levels (2^k values, all odd codes,
    no zero), times a per-channel magnitude ``c`` fixed when the layer is prepared
    (``dorefa_magnitude``: so fine-tuning starts near the float network) and the BatchNorm factor."""

    def __init__(self, bits: int, channels: int, magnitude: torch.Tensor) -> None:
        super().__init__()
        if bits < 2:
            raise ValueError("DoReFa weights need at least 2 bits of container (1 bit of levels)")
        self.bits, self.k = bits, bits - 1
        self.register_buffer("magnitude", magnitude.detach().reshape(channels).clamp(min=1e-8).float())

    def forward(self, w: torch.Tensor, f: torch.Tensor) -> torch.Tensor:
        return dorefa_weight(w, self.k) * _per_channel(self.magnitude * f, w)

    def deploy(self, w: torch.Tensor, f: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
        levels = (1 << self.k) - 1
        t = torch.tanh(w.detach())
        q = torch.round((t / (2 * t.abs().max()) + 0.5) * levels)
        codes = (2 * q - levels).numpy().astype(np.int64)
        g = (self.magnitude * f.detach()).numpy().astype(np.float32)
        sign = np.where(g < 0, -1, 1).reshape((-1,) + (1,) * (codes.ndim - 1))
        scale = (np.abs(g) / np.float32(levels)).astype(np.float32)
        return codes * sign, scale
