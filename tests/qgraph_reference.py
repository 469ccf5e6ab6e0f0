"""An exact integer reference of a quantized graph (accelsim.compiler.ir), written independently of the
chip: NCHW numpy arrays, int64 convolutions, the documented requantization rules (isa.requant,
isa.quant).  Used where ONNX Runtime itself is not exact (4-bit and 16-bit layers)."""

from __future__ import annotations

import numpy as np

from accelsim.compiler.ir import QAdd, QAvgPool, QConcat, QConv, QGlobalAvgPool, QGraph, QLut, QMaxPool, QReshape
from isa.quant import dequantize, qrange, quantize
from isa.requant import add_fp32, requant_fp32


def _pad(x: np.ndarray, pads, value) -> np.ndarray:
    t, left, b, r = pads
    return np.pad(x, ((0, 0), (0, 0), (t, b), (left, r)), constant_values=value)


def _conv(node: QConv, x: np.ndarray, xt, yt) -> np.ndarray:
    if x.ndim == 2:
        x = x[:, :, None, None]
    q = _pad(x.astype(np.int64) - xt.zero_point, node.pads, 0)
    w = node.weight.astype(np.int64) - node.w_zero_point
    n_out, cg, kh, kw = w.shape
    sh, sw = node.stride
    dh, dw = node.dilation
    oh = (q.shape[2] - dh * (kh - 1) - 1) // sh + 1
    ow = (q.shape[3] - dw * (kw - 1) - 1) // sw + 1
    acc = np.zeros((x.shape[0], n_out, oh, ow), np.int64)
    per_group = n_out // node.group
    for o in range(n_out):
        c0 = (o // per_group) * cg
        for i in range(kh):
            for j in range(kw):
                patch = q[:, c0:c0 + cg, i * dh:i * dh + sh * (oh - 1) + 1:sh, j * dw:j * dw + sw * (ow - 1) + 1:sw]
                acc[:, o] += np.einsum("nchw,c->nhw", patch, w[o, :, i, j])
    scale = (np.float32(xt.scale) * node.w_scale.astype(np.float32)) / np.float32(yt.scale)
    lo, hi = qrange(yt.dtype)
    cl = node.clamp or (lo, hi)
    y = requant_fp32((acc + node.bias[None, :, None, None]).transpose(0, 2, 3, 1), scale, yt.zero_point, lo, hi)
    y = np.clip(y, cl[0], cl[1]).transpose(0, 3, 1, 2)
    return y.reshape(yt.shape)


def _windows(x: np.ndarray, k, s, pads, d, value):
    q = _pad(x, pads, value)
    oh = (q.shape[2] - d[0] * (k[0] - 1) - 1) // s[0] + 1
    ow = (q.shape[3] - d[1] * (k[1] - 1) - 1) // s[1] + 1
    return [q[:, :, i * d[0]:i * d[0] + s[0] * (oh - 1) + 1:s[0], j * d[1]:j * d[1] + s[1] * (ow - 1) + 1:s[1]]
            for i in range(k[0]) for j in range(k[1])]


def run_reference(graph: QGraph, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Float outputs (dequantized) of the graph's chip part for float inputs."""
    vals: dict[str, np.ndarray] = {}
    for fname, qname in graph.inputs.items():
        t = graph.tensors[qname]
        x = np.asarray(inputs[fname], np.float32)
        if fname in graph.input_clips:
            lo, hi = graph.input_clips[fname]
            x = np.clip(x, lo, hi).astype(np.float32)
        vals[qname] = quantize(x.reshape(t.shape), t.scale, t.zero_point, t.dtype).astype(np.int64)
    for node in graph.nodes:
        y = graph.tensors[node.output]
        if isinstance(node, QConv):
            vals[node.output] = _conv(node, vals[node.input], graph.tensors[node.input], y)
        elif isinstance(node, QMaxPool):
            lo, _ = qrange(y.dtype)
            vals[node.output] = np.max(_windows(vals[node.input], node.kernel, node.stride, node.pads, node.dilation,
                                                lo), axis=0)[:, :, :y.shape[2], :y.shape[3]]
        elif isinstance(node, QReshape):
            vals[node.output] = (vals[node.input].transpose(0, 2, 3, 1) if node.op_type == "Transpose"
                                 else vals[node.input]).reshape(y.shape)
        elif isinstance(node, QGlobalAvgPool):
            x, xt = vals[node.input], graph.tensors[node.input]
            total = (x - xt.zero_point).sum(axis=(2, 3), keepdims=True)
            scale = np.float32(xt.scale) / (np.float32(y.scale) * np.float32(x.shape[2] * x.shape[3]))
            lo, hi = node.clamp or qrange(y.dtype)
            vals[node.output] = requant_fp32(total, scale, y.zero_point, lo, hi)
        elif isinstance(node, QAdd):
            a, b = graph.tensors[node.a], graph.tensors[node.b]
            ra, rb = np.float32(a.scale) / np.float32(y.scale), np.float32(b.scale) / np.float32(y.scale)
            lo, hi = node.clamp or qrange(y.dtype)
            vals[node.output] = add_fp32(vals[node.a], vals[node.b], ra, rb, a.zero_point, b.zero_point,
                                         y.zero_point, lo, hi)
        elif isinstance(node, QLut):
            codes = vals[node.input] & 255
            if node.table.ndim == 1:
                vals[node.output] = node.table[codes]
            else:
                vals[node.output] = np.stack([node.table[c][codes[:, c]] for c in range(codes.shape[1])], 1)
        elif isinstance(node, QConcat):
            parts = []
            for name in node.inputs:
                t = graph.tensors[name]
                v = vals[name]
                if (t.scale, t.zero_point, node.clamp) != (y.scale, y.zero_point, None):
                    v = quantize(dequantize(v, t.scale, t.zero_point), y.scale, y.zero_point, y.dtype).astype(np.int64)
                    if node.clamp:
                        v = np.clip(v, *node.clamp)
                parts.append(v)
            vals[node.output] = np.concatenate(parts, axis=1)
        elif isinstance(node, QAvgPool):
            raise NotImplementedError("AveragePool: see tests/test_compiler.py::avgpool_reference")
        else:
            raise TypeError(type(node).__name__)
    return {f: dequantize(vals[q], graph.tensors[q].scale, graph.tensors[q].zero_point) for f, q in graph.outputs.items()}
