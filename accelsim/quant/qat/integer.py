"""The integer-exact evaluation forward: the deployed network run on integer codes exactly as the
chip (and ONNX Runtime's QLinear kernels) compute it, so the accuracy training reports is the
chip's.

* input: ``q = clamp(rint(fl32(x / s)) + z)`` (a narrow width's float Clip first);
* Conv / Linear: the exact accumulator ``acc = sum((q_x - z_x) * c_w) + b_q`` (float64 holds it
  exactly), then ``y = clamp(rint(fl32(fl32(acc) * m)) + z_y, lo, hi)`` with the per-channel
  ``m = fl32(fl32(s_x * s_w) / s_y)`` and the clamp of the output's width and fused activation;
* MaxPool and Flatten move codes; Add is ONNX Runtime's QLinearAdd (isa.requant.add_fp32).
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from isa.requant import add_fp32

from .deploy import Deployment, deployment
from .steps import AddStep, DropoutStep, FlattenStep, InputStep, LayerStep, MaxPoolStep, QatNet


def _quantize_input(x: np.ndarray, q) -> np.ndarray:
    x = np.asarray(x, np.float32)
    if q.clip is not None:
        x = np.clip(x, np.float32(q.clip[0]), np.float32(q.clip[1]))
    v = np.rint(x / q.scale).astype(np.int64) + q.zero_point
    return np.clip(v, q.lo, q.hi)


def _accumulate(s: LayerStep, xq: np.ndarray, zx: int, codes: np.ndarray, bias: np.ndarray) -> np.ndarray:
    """The exact integer accumulator (float64 holds every value of these sizes exactly)."""
    x = torch.from_numpy((xq - zx).astype(np.float64))
    w = torch.from_numpy(codes.astype(np.float64))
    b = torch.from_numpy(bias.astype(np.float64))
    if s.kind == "linear":
        return F.linear(x, w, b).numpy()
    g = s.geometry
    return F.conv2d(x, w, b, g.stride, g.padding, g.dilation, g.groups).numpy()


def _requantize(acc: np.ndarray, m: np.ndarray, q) -> np.ndarray:
    """``clamp(rint(fl32(fl32(acc) * m)) + z, lo, hi)``, m per channel (axis 1)."""
    shape = (1, -1) + (1,) * (acc.ndim - 2)
    v = acc.astype(np.float32) * m.reshape(shape)
    return np.clip(np.rint(v).astype(np.int64) + q.zero_point, q.lo, q.hi)


def run_codes(net: QatNet, x: np.ndarray, d: Deployment | None = None) -> np.ndarray:
    """The output codes of the deployed network on float inputs ``x`` (N, ...)."""
    d = d or deployment(net.eval())
    env: dict[str, np.ndarray] = {}
    for s in net.steps:
        q = d.tensors[s.step_name]
        xs = [env[i] for i in s.inputs]
        if isinstance(s, InputStep):
            env[s.step_name] = _quantize_input(x, q)
        elif isinstance(s, LayerStep):
            qx = d.tensors[s.inputs[0]]
            codes, w_scale = d.weights[s.step_name]
            acc = _accumulate(s, xs[0], qx.zero_point, codes, d.biases[s.step_name])
            m = ((np.float32(qx.scale) * w_scale.astype(np.float32)) / np.float32(q.scale)).astype(np.float32)
            env[s.step_name] = _requantize(acc, m, q)
        elif isinstance(s, MaxPoolStep):
            t = torch.from_numpy(xs[0].astype(np.float64))
            env[s.step_name] = F.max_pool2d(t, s.kernel, s.stride, s.padding, s.dilation, s.ceil_mode).numpy().astype(np.int64)
        elif isinstance(s, FlattenStep):
            env[s.step_name] = xs[0].reshape(len(xs[0]), -1)
        elif isinstance(s, DropoutStep):
            env[s.step_name] = xs[0]
        elif isinstance(s, AddStep):
            qa, qb = d.tensors[s.inputs[0]], d.tensors[s.inputs[1]]
            ra, rb = np.float32(qa.scale) / np.float32(q.scale), np.float32(qb.scale) / np.float32(q.scale)
            env[s.step_name] = add_fp32(xs[0], xs[1], ra, rb, qa.zero_point, qb.zero_point, q.zero_point, q.lo, q.hi)
    return env[net.output]


def integer_forward(net: QatNet, x: np.ndarray, d: Deployment | None = None) -> np.ndarray:
    """The deployed network's dequantized float32 output, ``(q - z) * s``: what the chip's (and
    ONNX Runtime's) DequantizeLinear returns."""
    d = d or deployment(net.eval())
    q = d.tensors[net.output]
    codes = run_codes(net, x, d)
    return ((codes - q.zero_point).astype(np.float32) * q.scale).astype(np.float32)


def integer_accuracy(net: QatNet, x: np.ndarray, y: np.ndarray, batch: int = 500) -> float:
    """Top-1 accuracy of the integer-exact forward (the chip's)."""
    was = net.training
    d = deployment(net.eval())
    correct = 0
    for i in range(0, len(x), batch):
        out = run_codes(net, x[i:i + batch], d)
        correct += int((out.reshape(len(out), -1).argmax(axis=1) == y[i:i + batch]).sum())
    net.train(was)
    return correct / len(x)
