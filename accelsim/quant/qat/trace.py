"""Front ends: a PyTorch module (through torch.fx) or a float ONNX model becomes a list of
``Spec`` records (one per step of the prepared network), with BatchNorm and ReLU / ReLU6 / Clip
attached to the layer (or Add) they follow."""

from __future__ import annotations

import operator
from dataclasses import dataclass, field
from typing import Any, Optional

import numpy as np
import onnx
import torch
from onnx import numpy_helper

from .config import QatError
from .steps import Activation, ConvGeometry


@dataclass
class Spec:
    """One step before its quantizers exist."""

    kind: str                       # input | conv | linear | maxpool | flatten | dropout | add
    name: str
    inputs: list[str] = field(default_factory=list)
    weight: Optional[torch.Tensor] = None
    bias: Optional[torch.Tensor] = None
    geometry: Optional[ConvGeometry] = None
    bn: Optional[torch.nn.BatchNorm2d] = None
    act: Optional[Activation] = None
    pool: dict[str, Any] = field(default_factory=dict)
    p: float = 0.0
    users: int = 0


class _Builder:
    """Collects specs; ``alias`` maps a source graph's value names to the step that produces them."""

    def __init__(self) -> None:
        self.specs: dict[str, Spec] = {}
        self.alias: dict[str, str] = {}

    def add(self, spec: Spec, value: str) -> None:
        self.specs[spec.name] = spec
        self.alias[value] = spec.name

    def source(self, value: str, where: str) -> Spec:
        if value not in self.alias:
            raise QatError(f"{where}: reads {value!r}, which no supported step produces")
        return self.specs[self.alias[value]]

    def attach_bn(self, value: str, bn: torch.nn.BatchNorm2d, out: str, out_users: int, where: str) -> None:
        s = self.source(value, where)
        if s.kind != "conv" or s.bn is not None or s.act is not None or s.users > 1:
            raise QatError(f"{where}: BatchNorm must directly follow a convolution that nothing else reads")
        s.bn, s.users = bn, out_users
        self.alias[out] = s.name

    def attach_act(self, value: str, act: Activation, out: str, out_users: int, where: str) -> None:
        s = self.source(value, where)
        if s.kind not in ("conv", "linear", "add") or s.act is not None or s.users > 1:
            raise QatError(f"{where}: an activation must directly follow a layer or an Add that nothing else reads")
        s.act, s.users = act, out_users
        self.alias[out] = s.name

    def result(self) -> list[Spec]:
        return list(self.specs.values())


# ------------------------------------------------------------------------------------------ torch.fx
def _fx_act(node, module) -> Optional[Activation]:
    """The fused activation a module or function call is, or None."""
    if isinstance(module, torch.nn.ReLU) or node.target in (torch.relu, torch.nn.functional.relu) or \
            (node.op == "call_method" and node.target == "relu"):
        return Activation(0.0, None)
    if isinstance(module, torch.nn.ReLU6) or node.target is torch.nn.functional.relu6:
        return Activation(0.0, 6.0)
    if isinstance(module, torch.nn.Hardtanh):
        return Activation(float(module.min_val), float(module.max_val))
    return None


def _is_flatten(node, module) -> bool:
    if isinstance(module, torch.nn.Flatten):
        return module.start_dim == 1 and module.end_dim == -1
    if node.target is torch.flatten or (node.op == "call_method" and node.target == "flatten"):
        start = node.args[1] if len(node.args) > 1 else node.kwargs.get("start_dim", 0)
        return start == 1
    if node.op == "call_method" and node.target in ("view", "reshape"):
        shape = node.args[1:]
        if len(shape) == 1 and isinstance(shape[0], (tuple, list)):
            shape = tuple(shape[0])
        return len(shape) == 2 and shape[1] == -1 and _is_batch_size(shape[0], node.args[0])
    return False


def _is_batch_size(v, x) -> bool:
    return hasattr(v, "op") and v.op == "call_method" and v.target == "size" and v.args[0] is x and \
        (len(v.args) > 1 and v.args[1] == 0)


def from_torch(model: torch.nn.Module) -> list[Spec]:
    """The steps of a PyTorch module: Conv2d, Linear, BatchNorm2d (after a Conv2d), ReLU / ReLU6 /
    Hardtanh (after a layer or an Add), MaxPool2d, Flatten / view(N, -1), Dropout, Identity and +."""
    import torch.fx as fx

    try:
        gm = fx.symbolic_trace(model)
    except Exception as e:  # noqa: BLE001 (fx raises many kinds)
        raise QatError(f"torch.fx cannot trace the model: {e}") from None
    mods = dict(gm.named_modules())
    b = _Builder()
    output = None
    for node in gm.graph.nodes:
        where = f"node {node.name} ({node.op} {node.target if isinstance(node.target, str) else getattr(node.target, '__name__', node.target)})"
        module = mods.get(node.target) if node.op == "call_module" else None
        args = [b.source(v, where).name for v in _tensor_args(node)]
        nu = len(node.users)
        if node.op == "placeholder":
            if b.specs:
                raise QatError(f"{where}: models with more than one input are not supported")
            b.add(Spec("input", "input"), node.name)
        elif node.op == "output":
            output = b.alias.get(node.args[0].name) if hasattr(node.args[0], "name") else None
            if output is None:
                raise QatError(f"{where}: the model must return one tensor")
        elif node.op == "call_method" and node.target == "size":
            continue
        elif isinstance(module, torch.nn.Conv2d):
            _check_conv(module, where)
            g = ConvGeometry(tuple(module.stride), tuple(module.padding), tuple(module.dilation), module.groups)
            b.add(Spec("conv", node.target, args, module.weight, module.bias, g, users=nu), node.name)
        elif isinstance(module, torch.nn.Linear):
            b.add(Spec("linear", node.target, args, module.weight, module.bias, users=nu), node.name)
        elif isinstance(module, torch.nn.BatchNorm2d):
            b.attach_bn(node.args[0].name, module, node.name, nu, where)
        elif _fx_act(node, module) is not None:
            b.attach_act(node.args[0].name, _fx_act(node, module), node.name, nu, where)
        elif isinstance(module, torch.nn.MaxPool2d):
            if module.return_indices:
                raise QatError(f"{where}: MaxPool2d with return_indices is not supported")
            pool = dict(kernel=module.kernel_size, stride=module.stride, padding=module.padding,
                        dilation=module.dilation, ceil_mode=module.ceil_mode)
            b.add(Spec("maxpool", node.target, args, pool=pool, users=nu), node.name)
        elif _is_flatten(node, module):
            b.add(Spec("flatten", _name(node, module), args[:1]), node.name)
        elif isinstance(module, (torch.nn.Dropout, torch.nn.Identity)):
            p = module.p if isinstance(module, torch.nn.Dropout) else 0.0
            b.add(Spec("dropout", node.target, args, p=p), node.name)
        elif node.target in (operator.add, torch.add) and len(args) == 2 and len(node.args) == 2:
            b.add(Spec("add", node.name, args, users=nu), node.name)
        else:
            raise QatError(f"{where}: not supported by QAT (Conv2d, Linear, BatchNorm2d, ReLU, ReLU6, Hardtanh, "
                           "MaxPool2d, Flatten, Dropout and + are)")
    specs = b.result()
    return _finish(specs, output)


def _tensor_args(node) -> list[str]:
    """The fx values a node reads (not the ``x.size(0)`` of a view)."""
    return [a.name for a in node.args if hasattr(a, "op") and not (a.op == "call_method" and a.target == "size")]


def _name(node, module) -> str:
    return node.target if module is not None else node.name


def _check_conv(m: torch.nn.Conv2d, where: str) -> None:
    if m.padding_mode != "zeros" or isinstance(m.padding, str):
        raise QatError(f"{where}: Conv2d needs explicit zero padding (padding_mode 'zeros', integer padding)")


def _finish(specs: list[Spec], output: Optional[str]) -> list[Spec]:
    if not specs or specs[0].kind != "input":
        raise QatError("the model has no input")
    for s in specs:
        for i in s.inputs:
            if i not in {t.name for t in specs}:
                raise QatError(f"step {s.name}: reads {i!r}, which no supported step produces")
    if output != specs[-1].name:
        raise QatError(f"the model's output must be its last step ({specs[-1].name}), not {output}")
    return specs


# ------------------------------------------------------------------------------------------ ONNX
def _attrs(n: onnx.NodeProto) -> dict:
    return {a.name: onnx.helper.get_attribute_value(a) for a in n.attribute}


def _onnx_conv(n: onnx.NodeProto, inits: dict, where: str) -> Spec:
    a = _attrs(n)
    pads = list(a.get("pads", [0, 0, 0, 0]))
    if a.get("auto_pad", b"NOTSET") not in (b"NOTSET", "NOTSET") or pads[:2] != pads[2:]:
        raise QatError(f"{where}: Conv needs symmetric explicit pads")
    g = ConvGeometry(tuple(a.get("strides", [1, 1])), tuple(pads[:2]), tuple(a.get("dilations", [1, 1])),
                     int(a.get("group", 1)))
    w = torch.tensor(inits[n.input[1]])
    bias = torch.tensor(inits[n.input[2]]) if len(n.input) > 2 and n.input[2] else None
    return Spec("conv", n.name, [n.input[0]], w, bias, g)


def _onnx_gemm(n: onnx.NodeProto, inits: dict, where: str) -> Spec:
    a = _attrs(n)
    if a.get("transA", 0) or a.get("alpha", 1.0) != 1.0 or a.get("beta", 1.0) != 1.0:
        raise QatError(f"{where}: Gemm must be y = x W^T + b (transA 0, alpha = beta = 1)")
    w = inits[n.input[1]]
    w = w if a.get("transB", 0) else w.T
    bias = torch.tensor(inits[n.input[2]].reshape(-1)) if len(n.input) > 2 and n.input[2] else None
    return Spec("linear", n.name, [n.input[0]], torch.tensor(np.ascontiguousarray(w)), bias)


def _onnx_bn(n: onnx.NodeProto, inits: dict) -> torch.nn.BatchNorm2d:
    a = _attrs(n)
    scale, bias, mean, var = (inits[i] for i in n.input[1:5])
    bn = torch.nn.BatchNorm2d(len(scale), eps=float(a.get("epsilon", 1e-5)), momentum=1 - float(a.get("momentum", 0.9)))
    with torch.no_grad():
        bn.weight.copy_(torch.tensor(scale)), bn.bias.copy_(torch.tensor(bias))
        bn.running_mean.copy_(torch.tensor(mean)), bn.running_var.copy_(torch.tensor(var))
    return bn


def _onnx_clip(n: onnx.NodeProto, inits: dict, where: str) -> Activation:
    bounds = [float(inits[i]) if i else None for i in list(n.input[1:3]) + [""] * (3 - len(n.input))][:2]
    if any(i and i not in inits for i in n.input[1:]):
        raise QatError(f"{where}: Clip bounds must be constants")
    return Activation(bounds[0], bounds[1])


def from_onnx(model: onnx.ModelProto) -> tuple[list[Spec], dict[str, torch.nn.Module]]:
    """The steps of a float ONNX model (Conv, BatchNormalization, Relu, Clip, MaxPool, Flatten,
    Gemm, Add, Dropout, Identity), its trained weights as the starting point; the modules the
    BatchNorms became are returned so their parameters can be trained too."""
    g = model.graph
    inits = {i.name: numpy_helper.to_array(i).astype(np.float32) for i in g.initializer}
    inputs = [i for i in g.input if i.name not in inits]
    if len(inputs) != 1 or len(g.output) != 1:
        raise QatError("QAT takes models with one input and one output")
    users: dict[str, int] = {}
    for n in g.node:
        for i in n.input:
            users[i] = users.get(i, 0) + 1
    b = _Builder()
    b.add(Spec("input", "input"), inputs[0].name)
    bns: dict[str, torch.nn.Module] = {}
    for k, n in enumerate(g.node):
        where = f"node {n.name or k} ({n.op_type})"
        xs = [i for i in n.input if i and i not in inits]
        if n.op_type == "Conv":
            spec = _onnx_conv(n, inits, where)
        elif n.op_type == "Gemm" or (n.op_type == "MatMul" and n.input[1] in inits):
            spec = _onnx_gemm(n, inits, where)
        elif n.op_type == "BatchNormalization":
            bns[n.name] = bn = _onnx_bn(n, inits)
            b.attach_bn(xs[0], bn, n.output[0], users.get(n.output[0], 0), where)
            continue
        elif n.op_type in ("Relu", "Clip"):
            act = Activation(0.0, None) if n.op_type == "Relu" else _onnx_clip(n, inits, where)
            b.attach_act(xs[0], act, n.output[0], users.get(n.output[0], 0), where)
            continue
        elif n.op_type == "MaxPool":
            a = _attrs(n)
            pads = list(a.get("pads", [0, 0, 0, 0]))
            if pads[:2] != pads[2:]:
                raise QatError(f"{where}: MaxPool needs symmetric pads")
            pool = dict(kernel=tuple(a["kernel_shape"]), stride=tuple(a.get("strides", a["kernel_shape"])),
                        padding=tuple(pads[:2]), dilation=tuple(a.get("dilations", [1, 1])),
                        ceil_mode=bool(a.get("ceil_mode", 0)))
            spec = Spec("maxpool", n.name, xs, pool=pool)
        elif n.op_type == "Flatten" and _attrs(n).get("axis", 1) == 1:
            spec = Spec("flatten", n.name, xs)
        elif n.op_type in ("Dropout", "Identity"):
            spec = Spec("dropout", n.name, xs[:1])
        elif n.op_type == "Add" and len(xs) == 2:
            spec = Spec("add", n.name, xs)
        else:
            raise QatError(f"{where}: not supported by QAT (Conv, Gemm, BatchNormalization, Relu, Clip, MaxPool, "
                           "Flatten, Dropout, Identity and Add are)")
        spec.inputs = [b.source(i, where).name for i in spec.inputs]
        spec.users = users.get(n.output[0], 0)
        b.add(spec, n.output[0])
    out = b.alias.get(g.output[0].name)
    return _finish(b.result(), out), bns
