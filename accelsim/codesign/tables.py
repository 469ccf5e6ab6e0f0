"""The tables the search reads: the chip's cost (cycles, energy, DRAM bytes per image from the
timing model) and the sensitivity (bit-exact runs on the chip against the float model) of each
choice, measured with that one choice away from the base width and everything else at it.

A choice is a weight width for one layer, or an activation width for one activation group: the
activation width belongs to a tensor, so layers whose outputs meet in an Add, Mul or Concat form a
group that takes one width (accelsim.quant.plan.share_widths enforces it when quantizing).  The
cost of a whole map is predicted as the base plus the sum of its choices' changes; the chosen
points are then measured (accelsim.codesign.verify), since the changes do not add exactly.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Optional

import numpy as np
import onnx

from ..chip import ChipConfig, Simulator
from ..compiler import compile_model
from ..quant import QuantConfig, quantize_model
from ..quant.graph import fold_batchnorm, name_nodes
from ..quant.plan import plan_tensors, width_groups

LAYER_OPS = ("Conv", "Gemm", "MatMul")
UNIFORM = "__uniform__"  # a map holding only this key: every tensor and layer at one width
Candidate = tuple[int, int]  # (weight bits, activation bits)


@dataclass(frozen=True)
class Layer:
    """A searchable layer: its node name and the activation group its output belongs to."""

    name: str
    group: int
    macs: int = 0


@dataclass
class Metrics:
    """What one quantized model measures on the chip (per image for the costs)."""

    cycles: float
    energy_pj: float
    dram_bytes: float
    kl: float                       # mean KL(float || chip) of the softmax outputs
    sqnr_db: float                  # output signal-to-quantization-noise ratio against the float model
    top1_agreement: float           # fraction of samples whose arg-max equals the float model's
    accuracy: Optional[float]       # top-1 with labels
    noise: float = 0.0              # output noise power relative to the float output's power (1 / SQNR)

    def as_dict(self) -> dict:
        return dict(self.__dict__)


@dataclass
class Tables:
    """Base metrics and the change from the base of each weight choice (layer, bits) and each
    activation choice (group, bits)."""

    layers: list[Layer]
    weight_bits: list[int]
    activation_bits: list[int]
    base: Metrics
    base_bits: Candidate
    weight: dict[tuple[str, int], Metrics] = field(default_factory=dict)
    activation: dict[tuple[int, int], Metrics] = field(default_factory=dict)

    def groups(self) -> dict[int, list[str]]:
        """The searchable activation groups and their layers."""
        out: dict[int, list[str]] = {}
        for layer in self.layers:
            out.setdefault(layer.group, []).append(layer.name)
        return {g: names for g, names in out.items() if g in self.searched_groups}

    searched_groups: set = field(default_factory=set)


def prepared(model: onnx.ModelProto) -> onnx.ModelProto:
    """The float model with unique node names and BatchNorm folded (the names layer maps use)."""
    return fold_batchnorm(name_nodes(model))


@dataclass(frozen=True)
class Groups:
    """Activation groups: ``of_layer`` maps each layer to its group, ``members`` each group to the
    nodes whose outputs it holds (layers, and the Adds, Muls and Concats they meet in), ``fixed``
    the layers kept at the base width."""

    of_layer: dict[str, int]
    members: dict[int, list[str]]
    fixed: frozenset = frozenset()

    def searched(self) -> set[int]:
        """Groups none of whose members is a fixed layer."""
        return {g for g, names in self.members.items() if not set(names) & self.fixed}


def activation_groups(model: onnx.ModelProto) -> Groups:
    """The groups of tensors that share one activation width (accelsim.quant.plan.width_groups on
    the model's quantization plan), named by the nodes whose width each tensor takes."""
    shaped = onnx.shape_inference.infer_shapes(model)
    plan, _ = plan_tensors(shaped, QuantConfig())
    inputs = {i.name for i in model.graph.input}
    groups = sorted((sorted(g) for g in width_groups(shaped, plan)), key=lambda g: g[0])
    members = {k: sorted({plan[t].node for t in g if t not in inputs}) for k, g in enumerate(groups)}
    members = {k: v for k, v in members.items() if v}
    layers = [n.name for n in model.graph.node if n.op_type in LAYER_OPS]
    of_layer = {name: next(k for k, v in members.items() if name in v) for name in layers}
    return Groups(of_layer, members)


def searchable_layers(model: onnx.ModelProto, search_ends: bool = False) -> tuple[list[Layer], Groups]:
    """The Conv / Gemm / MatMul layers in graph order (without the first and last unless asked),
    and the activation groups (the unsearched layers fixed)."""
    groups = activation_groups(model)
    names = [n.name for n in model.graph.node if n.op_type in LAYER_OPS]
    searched = names if search_ends or len(names) <= 2 else names[1:-1]
    fixed = frozenset(set(names) - set(searched))
    return [Layer(name, groups.of_layer[name]) for name in searched], Groups(groups.of_layer, groups.members, fixed)


def _softmax(z: np.ndarray) -> np.ndarray:
    z = z - z.max(axis=-1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=-1, keepdims=True)


def compare(outputs: np.ndarray, reference: np.ndarray, labels: Optional[np.ndarray]) -> dict:
    """KL divergence, SQNR and top-1 agreement of ``outputs`` against the float ``reference``."""
    out = outputs.reshape(len(outputs), -1).astype(np.float64)
    ref = reference.reshape(len(reference), -1).astype(np.float64)
    p, q = _softmax(ref), _softmax(out)
    kl = float(np.mean(np.sum(p * (np.log(p + 1e-12) - np.log(q + 1e-12)), axis=1)))
    noise = float(np.sum((out - ref) ** 2))
    sqnr = float(10 * np.log10(np.sum(ref ** 2) / noise)) if noise > 0 else float("inf")
    agree = float(np.mean(out.argmax(1) == ref.argmax(1)))
    acc = float(np.mean(out.argmax(1) == np.asarray(labels).ravel())) if labels is not None else None
    return dict(kl=kl, sqnr_db=sqnr, top1_agreement=agree, accuracy=acc, noise=float(noise / np.sum(ref ** 2)))


@dataclass
class Evaluator:
    """Quantizes a layer-bit map, compiles it for the chip and measures it on the validation data."""

    model: onnx.ModelProto           # prepared float model
    calib: np.ndarray
    data: np.ndarray
    labels: Optional[np.ndarray]
    reference: np.ndarray            # the float model's outputs on ``data``
    chip: Optional[ChipConfig] = None
    batch: int = 32
    base_bits: Candidate = (8, 8)
    stats: dict = field(default_factory=dict, repr=False)  # calibration statistics, collected once

    def quantized(self, layer_bits: dict[str, dict[str, int]]) -> onnx.ModelProto:
        """The model quantized with ``layer_bits`` over the base widths; the key UNIFORM instead
        sets every width (graph input, first and last layer included)."""
        w, a = self.base_bits
        if UNIFORM in layer_bits:
            w, a = layer_bits[UNIFORM]["weight_bits"], layer_bits[UNIFORM]["activation_bits"]
            layer_bits = {}
        return quantize_model(self.model, self.calib, QuantConfig(weight_bits=w, activation_bits=a,
                                                                  layer_bits=layer_bits), progress=False,
                              stats_cache=self.stats)

    def measure(self, layer_bits: dict[str, dict[str, int]]) -> Metrics:
        """Bit-exact chip outputs on the data, and the chip's cost per image at ``batch``."""
        q = self.quantized(layer_bits)
        name = q.graph.input[0].name
        compiled = compile_model(q, self.chip, batch=min(self.batch, len(self.data)))
        sim = Simulator(compiled.chip)
        outs, reports = [], []
        for i in range(0, len(self.data), self.batch):
            out, report = compiled.run({name: self.data[i:i + self.batch]}, sim=sim)
            outs.append(out[q.graph.output[0].name])
            reports.append(report)
        cost = reports[0]
        images = cost.images
        return Metrics(cycles=cost.cycles / images, energy_pj=cost.energy_pj["total"] / images,
                       dram_bytes=(sum(cost.dram_read_bytes.values()) + sum(cost.dram_write_bytes.values())) / images,
                       **compare(np.concatenate(outs), self.reference, self.labels))


def layer_map(weights: dict[str, int], activations: dict[str, int]) -> dict[str, dict[str, int]]:
    """Per-layer weight and activation widths -> the map accelsim quantize --layer-bits takes (only
    what differs from the base is needed; every searched layer is written out)."""
    names = sorted(set(weights) | set(activations))
    out = {}
    for name in names:
        entry = {}
        if name in weights:
            entry["weight_bits"] = int(weights[name])
        if name in activations:
            entry["activation_bits"] = int(activations[name])
        out[name] = entry
    return out


def _minus(m: Metrics, base: Metrics) -> Metrics:
    acc = None if m.accuracy is None else m.accuracy - base.accuracy
    return Metrics(m.cycles - base.cycles, m.energy_pj - base.energy_pj, m.dram_bytes - base.dram_bytes,
                   m.kl - base.kl, m.sqnr_db, m.top1_agreement, acc, m.noise - base.noise)


def table_requests(ev_base: Candidate, layers: list[Layer], weight_bits: list[int], activation_bits: list[int],
                   groups: Groups) -> tuple[set, list[tuple[tuple, dict]]]:
    """The searched groups and every map the tables need, as (entry key, layer-bit map): the base
    ``("base",)``, ``("w", layer, bits)`` and ``("a", group, bits)`` (base widths excluded)."""
    w0, a0 = ev_base
    searched = groups.searched() & {layer.group for layer in layers}
    out: list[tuple[tuple, dict]] = [(("base",), {})]
    out += [(("w", layer.name, w), layer_map({layer.name: w}, {})) for layer in layers for w in weight_bits if w != w0]
    out += [(("a", g, a), layer_map({}, {name: a for name in groups.members[g]}))
            for g in sorted(searched) for a in activation_bits if a != a0]
    return searched, out


def build_tables(ev: Evaluator, layers: list[Layer], weight_bits: list[int], activation_bits: list[int],
                 groups: Groups, measure_many: Optional[Callable[[list[dict]], list[Metrics]]] = None) -> Tables:
    """Measure the base map, every layer at every weight width and every searched activation group
    at every activation width; ``measure_many`` measures a list of maps (default: one after another
    with ``ev.measure``; a cache or a cluster stands in)."""
    measure_many = measure_many or (lambda maps: [ev.measure(m) for m in maps])
    searched, requests = table_requests(ev.base_bits, layers, weight_bits, activation_bits, groups)
    results = dict(zip([k for k, _ in requests], measure_many([m for _, m in requests])))
    base = results[("base",)]
    w0, a0 = ev.base_bits
    t = Tables(layers, list(weight_bits), list(activation_bits), base, ev.base_bits, searched_groups=searched)
    zero = _minus(base, base)
    for layer in layers:
        for w in weight_bits:
            t.weight[layer.name, w] = zero if w == w0 else _minus(results["w", layer.name, w], base)
    for g in sorted(searched):
        for a in activation_bits:
            t.activation[g, a] = zero if a == a0 else _minus(results["a", g, a], base)
    return t
