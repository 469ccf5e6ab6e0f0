"""Fake quantization for quantization-aware training (PyTorch, the ``qat`` extra), whose forward
pass quantizes exactly as ONNX Runtime's QuantizeLinear does and whose backward pass is each
method's straight-through estimator (docs/qat.md).

Forward, every method: ``q = clamp(round_half_even(x / s) + z, qmin, qmax)`` with ``x / s`` a
float32 true division (not a multiply by 1/s, as torch's own fake_quantize does), an integer zero
point ``z``, then ``x_hat = (q - z) * s``: the values the chip computes with.

* **LSQ** (Esser et al., ICLR 2020): learned step ``s``; dx_hat/dx = 1 inside the range, 0
  outside; dx_hat/ds = ``round(v) - v`` inside (v = x / s), ``qmin - z`` below, ``qmax - z`` above,
  times the gradient scale ``g = 1 / sqrt(N * Qp)``; ``s`` starts at ``2 * mean(|x|) / sqrt(Qp)``.
* **LSQ+** (Bhalgat et al., CVPRW 2020): LSQ with a learned offset ``beta`` for activations,
  deployed as the integer zero point ``z = round(-beta / s)`` (an STE carries the gradient to
  beta: dz/dbeta = -1 / s); dx_hat/dbeta = 1 outside the range, 0 inside.
* **PACT** (Choi et al., 2018): activations clipped to a learned ``[0, alpha]``, ``s = alpha /
  (2^b - 1)``, ``z = 0``; dx_hat/dalpha = 1 where x >= alpha, 0 elsewhere (the STE through the
  rounding), dx_hat/dx = 1 inside [0, alpha).
* **DoReFa** weights (Zhou et al., 2016): ``w_n = tanh(w) / (2 max|tanh(w)|) + 1/2`` in [0, 1],
  ``Q = round(w_n (2^k - 1))``, ``w_hat = 2 Q / (2^k - 1) - 1``: a grid symmetric about 0 without
  0 itself. It deploys as signed integers ``c = 2 Q - (2^k - 1)`` (odd values in
  ``[-(2^k - 1), 2^k - 1]``) with scale ``max|w| ... / (2^k - 1)``: that needs k + 1 bits of
  container, which ``dorefa_codes`` returns.
* **Min-max / moving-average observers**: the range of the values seen (or its exponential
  moving average), scale and zero point as onnxruntime.quantization computes them; STE for x.
"""

from __future__ import annotations

import math

import numpy as np
import torch


def qrange(bits: int, signed: bool) -> tuple[int, int]:
    """The integer range of a width (full range, as ORT's quantizer uses it)."""
    return (-(1 << (bits - 1)), (1 << (bits - 1)) - 1) if signed else (0, (1 << bits) - 1)


def quantize_codes(x: torch.Tensor, scale: torch.Tensor, zp: torch.Tensor, qmin: int, qmax: int) -> torch.Tensor:
    """ONNX Runtime's QuantizeLinear in float32: true division, round half to even, + z, clamp."""
    v = torch.round(x.float() / scale.float())  # torch.round rounds half to even
    return torch.clamp(v + zp, qmin, qmax)


class _LsqFn(torch.autograd.Function):
    """x_hat = (clamp(rint(x / s) + z) - z) * s with LSQ's gradients for x and s."""

    @staticmethod
    def forward(ctx, x, scale, zp, qmin, qmax, grad_scale):
        q = quantize_codes(x, scale, zp, qmin, qmax)
        v = x / scale + zp
        ctx.save_for_backward(x, scale, zp, q, v)
        ctx.bounds, ctx.grad_scale = (qmin, qmax), grad_scale
        return (q - zp) * scale

    @staticmethod
    def backward(ctx, grad):
        x, scale, zp, q, v = ctx.saved_tensors
        qmin, qmax = ctx.bounds
        below, above = v <= qmin, v >= qmax
        inside = ~(below | above)
        gx = grad * inside
        ds = torch.where(below, qmin - zp, torch.where(above, qmax - zp, (q - zp) - x / scale))
        gs = (grad * ds).sum().reshape(scale.shape) * ctx.grad_scale if scale.numel() == 1 else \
            _per_channel_sum(grad * ds, scale) * ctx.grad_scale
        gz = (grad * (below | above) * -scale).sum().reshape(zp.shape) if zp.requires_grad else None
        return gx, gs, gz, None, None, None


def _per_channel_sum(g: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    """Sum a gradient over every axis but the one ``scale`` (shape (C, 1, 1, ...)) varies along."""
    dims = [d for d in range(g.dim()) if scale.shape[d] == 1]
    return g.sum(dim=dims, keepdim=True)


class _RoundSte(torch.autograd.Function):
    """round half to even forward, identity backward."""

    @staticmethod
    def forward(ctx, x):
        return torch.round(x)

    @staticmethod
    def backward(ctx, grad):
        return grad


class _Replace(torch.autograd.Function):
    """Forward: exactly ``y``; backward: the gradient goes to ``x`` unchanged (a straight-through
    estimator without the float rounding of ``x + (y - x).detach()``)."""

    @staticmethod
    def forward(ctx, x, y):
        return y.clone()

    @staticmethod
    def backward(ctx, grad):
        return grad, None


def straight_through(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """``y`` in the forward pass, the identity's gradient for ``x`` in the backward pass."""
    return _Replace.apply(x, y.detach())


def lsq_init(x: torch.Tensor, qmax: int) -> float:
    """LSQ's initial step: 2 * mean(|x|) / sqrt(Qp)."""
    return float(2 * x.detach().abs().mean() / math.sqrt(qmax)) or 1.0


class LsqQuantizer(torch.nn.Module):
    """LSQ: a learned step; per channel (axis 0) for weights, per tensor for activations."""

    def __init__(self, bits: int, signed: bool, channels: int = 0) -> None:
        super().__init__()
        self.bits, self.signed = bits, signed
        self.qmin, self.qmax = qrange(bits, signed)
        self.scale = torch.nn.Parameter(torch.ones(channels if channels else 1))
        self.register_buffer("zero_point", torch.zeros(()))
        self.initialized = False

    def step(self) -> torch.Tensor:
        """The step in use: the learned one, kept positive."""
        return self.scale.clamp(min=1e-12)

    def _shaped(self, x: torch.Tensor) -> torch.Tensor:
        s = self.step()
        return s.reshape((-1,) + (1,) * (x.dim() - 1)) if s.numel() > 1 else s.reshape(())

    def deployed(self) -> tuple[np.float32, int, bool]:
        """The float32 scale, integer zero point and signedness the exported tensor carries."""
        return np.float32(self.step().detach().reshape(-1)[0]), 0, self.signed

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.initialized:
            with torch.no_grad():
                if self.scale.numel() > 1:  # per channel: each channel's own 2 mean|x| / sqrt(Qp)
                    dims = tuple(range(1, x.dim()))
                    self.scale.copy_((2 * x.detach().abs().mean(dim=dims) / math.sqrt(self.qmax)).clamp(min=1e-8))
                else:
                    self.scale.fill_(lsq_init(x, self.qmax))
            self.initialized = True
        per = x.numel() / self.scale.numel()
        g = 1.0 / math.sqrt(per * self.qmax)
        return _LsqFn.apply(x, self._shaped(x), self.zero_point, self.qmin, self.qmax, g)


class LsqPlusQuantizer(LsqQuantizer):
    """LSQ+ for activations: a learned offset beta held on an integer zero point z = round(-beta/s)."""

    def __init__(self, bits: int, signed: bool = False) -> None:
        super().__init__(bits, signed)
        self.beta = torch.nn.Parameter(torch.zeros(()))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.initialized:
            with torch.no_grad():
                lo, hi = float(x.min()), float(x.max())
                self.scale.fill_(max(hi - lo, 1e-8) / (self.qmax - self.qmin))
                self.beta.fill_(lo - self.qmin * float(self.scale))
            self.initialized = True
        s = self.step().reshape(())
        z = torch.clamp(_RoundSte.apply(-self.beta / s), self.qmin, self.qmax)
        g = 1.0 / math.sqrt(x.numel() * self.qmax)
        return _LsqFn.apply(x, s, z, self.qmin, self.qmax, g)

    @property
    def integer_zero_point(self) -> int:
        return int(torch.clamp(torch.round(-self.beta / self.step().reshape(())), self.qmin, self.qmax))

    def deployed(self) -> tuple[np.float32, int, bool]:
        return np.float32(self.step().detach().reshape(())), self.integer_zero_point, self.signed


class _PactFn(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, alpha, levels):
        scale = alpha / levels
        q = quantize_codes(torch.clamp(x, min=0), scale, torch.zeros(()), 0, levels)
        ctx.save_for_backward(x, alpha)
        return q * scale

    @staticmethod
    def backward(ctx, grad):
        x, alpha = ctx.saved_tensors
        inside = (x >= 0) & (x < alpha)
        return grad * inside, (grad * (x >= alpha)).sum().reshape(alpha.shape), None


class PactQuantizer(torch.nn.Module):
    """PACT: unsigned activations clipped to a learned alpha, b bits, zero point 0.

    ``alpha`` None starts it at the 99.9th percentile of the first batch seen; ``learn=False``
    holds it there (DoReFa's fixed-range activations)."""

    signed = False

    def __init__(self, bits: int, alpha: float | None = None, learn: bool = True) -> None:
        super().__init__()
        self.bits = bits
        self.levels = (1 << bits) - 1
        self.alpha = torch.nn.Parameter(torch.tensor(float(alpha or 1.0)), requires_grad=learn)
        self.initialized = alpha is not None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.initialized:
            with torch.no_grad():
                self.alpha.fill_(max(float(torch.quantile(x.detach().flatten()[:1 << 20].float(), 0.999)), 1e-3))
            self.initialized = True
        return _PactFn.apply(x, self.alpha.clamp(min=1e-6), self.levels)

    @property
    def scale(self) -> float:
        return float(self.deployed()[0])

    def deployed(self) -> tuple[np.float32, int, bool]:
        return np.float32(self.alpha.detach().clamp(min=1e-6)) / np.float32(self.levels), 0, False


def dorefa_weight(w: torch.Tensor, bits: int) -> torch.Tensor:
    """DoReFa's weight quantizer (STE through the rounding): values in [-1, 1] on 2^k levels."""
    levels = (1 << bits) - 1
    t = torch.tanh(w)
    wn = t / (2 * t.abs().max()) + 0.5
    return 2 * _RoundSte.apply(wn * levels) / levels - 1


def dorefa_codes(w: torch.Tensor, bits: int) -> tuple[torch.Tensor, float, int]:
    """The deployed form of a DoReFa weight: odd signed integer codes c with w_hat = c * scale,
    the scale, and the container bits the codes need (k + 1)."""
    levels = (1 << bits) - 1
    t = torch.tanh(w.detach())
    q = torch.round((t / (2 * t.abs().max()) + 0.5) * levels)
    return (2 * q - levels).to(torch.int64), 1.0 / levels, bits + 1


class MinMaxObserver(torch.nn.Module):
    """The plain baseline: quantize with the range seen so far (``momentum`` None) or its moving
    average; scale and zero point as onnxruntime.quantization's compute_scale_zp; STE for x."""

    def __init__(self, bits: int, signed: bool, momentum: float | None = None) -> None:
        super().__init__()
        self.bits, self.signed = bits, signed
        self.qmin, self.qmax = qrange(bits, signed)
        self.momentum = momentum
        self.register_buffer("lo", torch.tensor(float("inf")))
        self.register_buffer("hi", torch.tensor(float("-inf")))

    def observe(self, x: torch.Tensor) -> None:
        lo, hi = x.detach().min(), x.detach().max()
        if self.momentum is None or not torch.isfinite(self.lo):
            self.lo, self.hi = torch.minimum(self.lo, lo), torch.maximum(self.hi, hi)
        else:
            m = self.momentum
            self.lo, self.hi = m * self.lo + (1 - m) * lo, m * self.hi + (1 - m) * hi

    def parameters_(self) -> tuple[torch.Tensor, torch.Tensor]:
        from isa.quant import scale_zero_point

        s, z = scale_zero_point(float(self.lo), float(self.hi), self.qmin, self.qmax)
        return torch.tensor(float(s), dtype=torch.float32), torch.tensor(float(z))

    def deployed(self) -> tuple[np.float32, int, bool]:
        s, z = self.parameters_()
        return np.float32(s), int(z), self.signed

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.training or not torch.isfinite(self.lo):
            self.observe(x)
        s, z = self.parameters_()
        q = quantize_codes(x, s, z, self.qmin, self.qmax)
        return straight_through(x, (q - z) * s)
