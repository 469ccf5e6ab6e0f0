"""QAT fake-quant modules: the forward pass is ONNX Runtime's QuantizeLinear (isa.quant.quantize)
code for code, and each backward pass is its method's formula (finite differences where the
function is differentiable, the straight-through values elsewhere)."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from accelsim.quant.qat import (LsqPlusQuantizer, LsqQuantizer, MinMaxObserver, PactQuantizer,  # noqa: E402
                                dorefa_codes, dorefa_weight)
from isa.quant import quantize, scale_zero_point  # noqa: E402


def _ties(scale: float, n: int, rng) -> np.ndarray:
    """Values exactly halfway between codes, and random ones, in float32."""
    k = rng.integers(-200, 200, n)
    x = np.concatenate([(k + 0.5) * scale, rng.normal(0, 40 * scale, n)]).astype(np.float32)
    return x


@pytest.mark.parametrize("bits, signed", [(8, True), (8, False), (4, True), (2, True), (5, False)])
def test_lsq_forward_is_onnxruntimes_quantize_linear(bits, signed):
    rng = np.random.default_rng(bits)
    q = LsqQuantizer(bits, signed)
    q.initialized = True
    s = np.float32(0.037)
    with torch.no_grad():
        q.scale.fill_(float(s))
    x = _ties(float(s), 500, rng)
    got = q(torch.from_numpy(x)).detach().numpy()
    lo, hi = (-(1 << (bits - 1)), (1 << (bits - 1)) - 1) if signed else (0, (1 << bits) - 1)
    want_codes = quantize(x, s, 0, "s8" if signed else "u8", qmin=lo, qmax=hi)
    np.testing.assert_array_equal(got, (want_codes.astype(np.float32) * s).astype(np.float32))


def test_lsq_gradients_follow_the_paper():
    """dx: 1 inside, 0 outside; ds: (round(v) - v) inside, qmin / qmax outside, times 1/sqrt(N Qp)."""
    rng = np.random.default_rng(0)
    q = LsqQuantizer(4, True)
    q.initialized = True
    s = 0.1
    with torch.no_grad():
        q.scale.fill_(s)
    x = torch.tensor(rng.normal(0, 0.6, 200).astype(np.float32), requires_grad=True)
    q(x).sum().backward()
    v = x.detach().numpy() / np.float32(s)
    inside = (v > -8) & (v < 7)
    np.testing.assert_array_equal(x.grad.numpy(), inside.astype(np.float32))
    ds = np.where(v <= -8, -8, np.where(v >= 7, 7, np.round(v) - v))
    g = 1 / np.sqrt(200 * 7)
    assert float(q.scale.grad) == pytest.approx(ds.sum() * g, rel=1e-5)


def test_lsq_scale_gradient_is_the_finite_difference_where_clipped():
    """Above the range x_hat = Qp * s exactly, so d x_hat / ds = Qp (finite difference, g = 1)."""
    from accelsim.quant.qat.fake import _LsqFn

    s = torch.tensor(0.1, requires_grad=True)
    x = torch.tensor([5.0, 9.0, -7.0])  # all clipped for 4-bit signed
    _LsqFn.apply(x, s, torch.zeros(()), -8, 7, 1.0).sum().backward()
    h = 1e-3
    f = lambda sv: float(_LsqFn.apply(x, torch.tensor(sv), torch.zeros(()), -8, 7, 1.0).sum())  # noqa: E731
    assert float(s.grad) == pytest.approx((f(0.1 + h) - f(0.1 - h)) / (2 * h), rel=1e-3)


def test_lsq_per_channel_weights_and_initial_step():
    w = torch.randn(6, 3, 3, 3)
    q = LsqQuantizer(4, True, channels=6)
    out = q(w)
    expect = 2 * w.abs().mean(dim=(1, 2, 3)) / np.sqrt(7)  # each channel's own initial step
    np.testing.assert_allclose(q.scale.detach().numpy(), expect.numpy(), rtol=1e-6)
    w.requires_grad_(True)
    q(w).sum().backward()
    assert q.scale.grad.shape == (6,) and out.shape == w.shape


def test_lsq_plus_holds_an_integer_zero_point_and_learns_the_offset():
    rng = np.random.default_rng(1)
    q = LsqPlusQuantizer(4)
    x = torch.tensor(rng.uniform(-0.5, 2.0, 300).astype(np.float32))
    y = q(x)
    z = q.integer_zero_point
    s = np.float32(float(q.scale.detach()))
    codes = quantize(x.numpy(), s, z, "u8", qmin=0, qmax=15)
    np.testing.assert_array_equal(y.detach().numpy(), ((codes - z).astype(np.float32) * s).astype(np.float32))
    x2 = torch.tensor([-5.0, 0.3, 50.0])  # below, inside, above
    q.zero_grad()
    q(x2).sum().backward()
    assert float(q.beta.grad) == pytest.approx(2.0)  # 1 per clipped element, 0 inside


def test_pact_forward_and_gradients():
    q = PactQuantizer(4, alpha=3.0)
    x = torch.tensor([-1.0, 0.0, 1.1, 2.99, 3.0, 7.0], requires_grad=True)
    y = q(x)
    s = np.float32(3.0) / np.float32(15)
    codes = quantize(np.clip(x.detach().numpy(), 0, None), s, 0, "u8", qmin=0, qmax=15)
    np.testing.assert_array_equal(y.detach().numpy(), (codes.astype(np.float32) * s).astype(np.float32))
    y.sum().backward()
    np.testing.assert_array_equal(x.grad.numpy(), [0, 1, 1, 1, 0, 0])
    assert float(q.alpha.grad) == 2.0  # x >= alpha: two elements
    h = 1e-3  # where x >= alpha, y = alpha: the finite difference is 1 each
    f = lambda a: float(PactQuantizer(4, alpha=a)(torch.tensor([3.0, 7.0])).detach().sum())  # noqa: E731
    assert (f(3.0 + h) - f(3.0 - h)) / (2 * h) == pytest.approx(2.0, rel=1e-3)


@pytest.mark.parametrize("bits", [2, 3, 4])
def test_dorefa_grid_is_zero_free_and_deploys_at_one_more_bit(bits):
    w = torch.randn(8, 4, 3, 3)
    w_hat = dorefa_weight(w, bits)
    codes, scale, container = dorefa_codes(w, bits)
    levels = (1 << bits) - 1
    assert container == bits + 1
    assert torch.all(codes % 2 != 0) and int(codes.abs().max()) <= levels and 0 not in codes
    np.testing.assert_allclose(w_hat.detach().numpy(), codes.numpy() * scale, atol=1e-6)
    w.requires_grad_(True)
    dorefa_weight(w, bits).sum().backward()  # STE through the rounding: the tanh normalisation's gradient
    assert torch.isfinite(w.grad).all() and w.grad.abs().sum() > 0


@pytest.mark.parametrize("momentum", [None, 0.9])
def test_minmax_observer_uses_onnxruntimes_scale_and_zero_point(momentum):
    rng = np.random.default_rng(2)
    obs = MinMaxObserver(8, False, momentum)
    for _ in range(3):
        x = torch.tensor(rng.normal(0.5, 1, 100).astype(np.float32), requires_grad=True)
        y = obs(x)
    s, z = scale_zero_point(float(obs.lo), float(obs.hi), 0, 255)
    codes = quantize(x.detach().numpy(), np.float32(s), int(z), "u8")
    np.testing.assert_array_equal(y.detach().numpy(),
                                  ((codes - int(z)).astype(np.float32) * np.float32(s)).astype(np.float32))
    y.sum().backward()
    np.testing.assert_array_equal(x.grad.numpy(), np.ones(100, np.float32))


# ------------------------------------------------------------------------------------------ weight quantizers
def test_lsq_weight_forward_is_its_deployed_codes_times_scales():
    from accelsim.quant.qat.weights import LsqWeight

    w, f = torch.randn(6, 3, 3, 3), torch.rand(6) + 0.5
    q = LsqWeight(4, 6)
    out = q(w, f)
    codes, scale = q.deploy(w, f)
    assert codes.min() >= -8 and codes.max() <= 7
    np.testing.assert_array_equal(out.detach().numpy(), (codes.astype(np.float32) * scale[:, None, None, None]))
    wf = w * f[:, None, None, None]
    np.testing.assert_array_equal(codes, quantize(wf.numpy(), scale, np.zeros(6, np.int64), "s8", axis=0, qmin=-8, qmax=7))


def test_max_abs_weight_is_ort_symmetric_per_channel_with_a_straight_through_gradient():
    from accelsim.quant.qat.weights import MaxAbsWeight

    w = torch.randn(4, 10, requires_grad=True)
    f = torch.ones(4)
    q = MaxAbsWeight(5, 4)
    out = q(w, f)
    codes, scale = q.deploy(w, f)
    a = w.detach().abs().max(dim=1).values.numpy()
    s_ref, _ = scale_zero_point(-a, a, -16, 15, symmetric=True)
    np.testing.assert_array_equal(scale, s_ref)
    np.testing.assert_array_equal(out.detach().numpy(), (codes * scale[:, None]).astype(np.float32))
    out.sum().backward()
    np.testing.assert_array_equal(w.grad.numpy(), np.ones((4, 10)))  # STE: identity


@pytest.mark.parametrize("bits", [2, 3, 5])
def test_dorefa_weight_deploys_odd_codes_in_its_container_with_bn_in_the_scale(bits):
    from accelsim.quant.qat.weights import DorefaWeight

    w = torch.randn(5, 2, 3, 3)
    f = torch.tensor([0.5, -2.0, 1.0, 3.0, -0.25])  # a BatchNorm factor, negative for two channels
    q = DorefaWeight(bits, 5, w.abs().reshape(5, -1).max(dim=1).values)
    out = q(w, f)
    codes, scale = q.deploy(w, f)
    levels = (1 << (bits - 1)) - 1
    assert np.all(codes % 2 != 0) and np.abs(codes).max() <= levels and np.all(scale > 0)
    np.testing.assert_allclose(out.detach().numpy(), codes * scale[:, None, None, None], rtol=1e-6, atol=1e-7)
