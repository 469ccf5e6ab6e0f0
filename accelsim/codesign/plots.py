"""The pictures of a co-design run (matplotlib, the `plot` extra): the measured Pareto front with
the uniform baselines, the chosen point's bit map, its per-layer cost breakdown, and the chip's
roofline with every layer of the chosen point placed on it."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..chip import ChipConfig, Simulator
from ..compiler import compile_model, layer_table
from .tables import Evaluator


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _quality(m: dict) -> tuple[str, float]:
    return ("top-1 accuracy (%)", 100 * m["accuracy"]) if m["accuracy"] is not None else \
        ("top-1 agreement with float (%)", 100 * m["top1_agreement"])


def pareto_plot(result: dict, path: Path, cost: str = "cycles") -> None:
    """Measured quality against ``cost`` per image, the predicted points beside them, baselines marked."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(6, 4))
    label, _ = _quality(result["baselines"]["uniform_8"])
    xs = [p["measured"][cost] for p in result["points"]]
    ys = [_quality(p["measured"])[1] for p in result["points"]]
    ax.plot(xs, ys, "o-", label="frontier (measured on the chip)")
    for name, b in result["baselines"].items():
        ax.plot([b[cost]], [_quality(b)[1]], "s", markersize=9, label=name.replace("_", " ") + "-bit")
    if result.get("chosen") is not None:
        c = result["points"][result["chosen"]]["measured"]
        ax.plot([c[cost]], [_quality(c)[1]], "*", markersize=14, color="k", label="chosen")
    ax.set_xlabel(f"{cost.replace('_pj', ' (pJ)')} per image")
    ax.set_ylabel(label)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def bitmap_plot(result: dict, index: int, path: Path) -> None:
    """Weight and activation width of every searched layer at point ``index``."""
    plt = _plt()
    bits = result["points"][index]["layer_bits"]
    layers = [n for n in result["layers"] if n in bits] or sorted(bits)
    w = [bits.get(n, {}).get("weight_bits", 8) for n in layers]
    a = [bits.get(n, {}).get("activation_bits", 8) for n in layers]
    x = np.arange(len(layers))
    fig, ax = plt.subplots(figsize=(max(4, 0.5 * len(layers) + 2), 3.5))
    ax.bar(x - 0.2, w, 0.4, label="weight bits")
    ax.bar(x + 0.2, a, 0.4, label="activation bits")
    ax.set_xticks(x, layers, rotation=60, ha="right", fontsize=7)
    ax.set_ylabel("bits")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def layer_costs(ev: Evaluator, layer_bits: dict, chip: ChipConfig):
    """The per-layer cost rows of a map (timing model, one batch) and the compiled model."""
    q = ev.quantized(layer_bits)
    compiled = compile_model(q, chip, batch=min(ev.batch, len(ev.data)))
    x = ev.data[:compiled.batch]
    _, report = compiled.run({q.graph.input[0].name: x}, sim=Simulator(compiled.chip), values=False)
    return layer_table(compiled, report), report


def cost_plot(rows, path: Path) -> None:
    """Cycles and energy per layer of the chosen point."""
    plt = _plt()
    rows = [r for r in rows if r.where == "chip"]
    x = np.arange(len(rows))
    fig, ax = plt.subplots(1, 2, figsize=(max(6, 0.5 * len(rows) + 4), 3.5))
    ax[0].bar(x, [r.cycles for r in rows])
    ax[0].set_ylabel("cycles")
    ax[1].bar(x, [r.energy_pj / 1e6 for r in rows], color="C1")
    ax[1].set_ylabel("energy (uJ)")
    for a in ax:
        a.set_xticks(x, [r.name for r in rows], rotation=60, ha="right", fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def roofline_plot(rows, chip: ChipConfig, path: Path) -> None:
    """MACs per cycle against MACs per DRAM byte for every layer, under the array's peak (8x8) and
    the DRAM bandwidth roof."""
    plt = _plt()
    peak = chip["array"]["rows"] * chip["array"]["cols"]
    bw = chip["dram"]["bandwidth"]
    pts = [(r.macs / max(1, r.dram_weight_bytes + r.dram_activation_bytes), r.macs / max(1, r.cycles), r.name)
           for r in rows if r.where == "chip" and r.macs > 0]
    fig, ax = plt.subplots(figsize=(6, 4))
    xs = np.logspace(-2, 4, 200)
    ax.loglog(xs, np.minimum(peak, bw * xs), "k-", label=f"roof: {peak} MACs/cycle (8x8), {bw} B/cycle")
    for oi, perf, name in pts:
        ax.loglog([oi], [perf], "o")
        ax.annotate(name, (oi, perf), fontsize=6)
    ax.set_xlabel("MACs per DRAM byte")
    ax.set_ylabel("MACs per cycle")
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def write_plots(result: dict, ev: Evaluator, chip: ChipConfig, out: Path) -> list[Path]:
    """All four pictures into ``out``; returns their paths."""
    out.mkdir(parents=True, exist_ok=True)
    paths = [out / "pareto.png"]
    pareto_plot(result, paths[0], result.get("cost", "cycles"))
    index = result.get("chosen")
    if index is None and result["points"]:
        index = len(result["points"]) - 1
    if index is not None:
        rows, _ = layer_costs(ev, result["points"][index]["layer_bits"], chip)
        for name, draw in (("bitmap.png", lambda p: bitmap_plot(result, index, p)),
                           ("layer_costs.png", lambda p: cost_plot(rows, p)),
                           ("roofline.png", lambda p: roofline_plot(rows, chip, p))):
            draw(out / name)
            paths.append(out / name)
    return paths
