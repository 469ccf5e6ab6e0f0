"""``codesign(model, calib, data, ...)``: the tables, the ILP frontier, the greedy baseline, and every
frontier point measured bit-exact on the chip; the results written to a directory."""

from __future__ import annotations

import csv
import json
import sys
from pathlib import Path
from typing import Optional

import numpy as np
import onnx

from ..chip import ChipConfig
from ..quant import QuantConfig, quantize_model
from ..quant.ptq import float_runner
from .cache import ResultCache, cached, context_key
from .search import Choice, frontier, greedy, predicted
from .tables import Evaluator, Metrics, Tables, build_tables, layer_map, prepared, searchable_layers


def float_outputs(model: onnx.ModelProto, x: np.ndarray, batch: int = 64) -> np.ndarray:
    """The float model's first output on every sample (in batches where the model allows)."""
    run = float_runner(model, [model.graph.output[0].name])
    name = model.graph.input[0].name
    return np.concatenate([run({name: s[None]})[0] for s in x])


def choice_map(t: Tables, c: Choice, groups: dict[str, int]) -> dict[str, dict[str, int]]:
    """A choice as the layer-bit map accelsim quantize takes (activation widths per layer)."""
    acts = {name: a for g, a in c.activations for name, gg in groups.items() if gg == g}
    return layer_map(dict(c.weights), acts)


def uniform(ev: Evaluator, bits: int) -> Metrics:
    """Every layer (first and last too) at ``bits`` for weights and activations."""
    q = quantize_model(ev.model, ev.calib, QuantConfig(weight_bits=bits, activation_bits=bits), progress=False)
    saved = ev.quantized
    ev.quantized = lambda _: q  # type: ignore[method-assign]
    try:
        return ev.measure({})
    finally:
        ev.quantized = saved  # type: ignore[method-assign]


def _uniform_cached(ev: Evaluator, bits: int, measure) -> Metrics:
    """The uniform baseline through the same cache (its key names the width, not a layer map)."""
    return _through(measure, {"__uniform__": {"weight_bits": bits, "activation_bits": bits}}, lambda: uniform(ev, bits))


def _through(measure, key: dict, compute) -> Metrics:
    """``compute()`` stored under ``key`` when ``measure`` is cached, else computed directly."""
    store = getattr(measure, "store", None)
    if store is None:
        return compute()
    cache, context = store
    hit = cache.get(context, key)
    if hit is None:
        hit = compute()
        cache.put(context, key, hit)
    return hit


def spearman(a: list[float], b: list[float]) -> Optional[float]:
    """Spearman's rank correlation (None for fewer than three points or a constant side)."""
    if len(a) < 3 or len(set(a)) < 2 or len(set(b)) < 2:
        return None
    from scipy.stats import spearmanr

    return float(spearmanr(a, b).statistic)


def _progress(total: int, enabled: bool, desc: str):
    if not enabled:
        return None
    from tqdm import tqdm

    return tqdm(total=total, desc=desc, file=sys.stderr, leave=False)


def _fields(m: Metrics, area: Optional[float]) -> dict:
    return dict(accuracy=m.accuracy, top1_agreement=m.top1_agreement, sqnr_db=m.sqnr_db, kl=m.kl, cycles=m.cycles,
                energy_pj=m.energy_pj, dram_bytes=m.dram_bytes, area_mm2=area)


def codesign(model: onnx.ModelProto, calib: np.ndarray, data: np.ndarray, labels: Optional[np.ndarray] = None, *,
             chip: Optional[ChipConfig] = None, weight_bits: tuple[int, ...] = (4, 8),
             activation_bits: tuple[int, ...] = (4, 8), search_ends: bool = False, points: int = 24,
             cost: str = "cycles", batch: int = 32, out: Optional[str | Path] = None,
             progress: bool = True, cache: Optional[str | Path] = None) -> dict:
    """Search per-layer bit widths for ``model`` on ``chip``; returns (and writes to ``out``) the
    measured frontier, the uniform 8- and 4-bit baselines and the rank correlations.  Every
    measurement goes through a SQLite cache (``cache``, default ``out``/cache.sqlite): a rerun
    measures nothing twice."""
    m = prepared(model)
    reference = float_outputs(m, data)
    ev = Evaluator(m, calib, data, labels, reference, chip, batch)
    measure = ev.measure
    if cache is not None or out is not None:
        store = ResultCache(cache if cache is not None else Path(out) / "cache.sqlite")
        measure = cached(ev.measure, store, context_key(m, dict((chip or ChipConfig()).raw), calib, data, labels,
                                                          batch))
    layers, groups = searchable_layers(m, search_ends)
    n = len(layers) * len(weight_bits) + len(set(groups.values())) * len(activation_bits)
    bar = _progress(n, progress, "tables")
    t = build_tables(ev, layers, list(weight_bits), list(activation_bits), groups, bar.update if bar else None,
                     measure=measure)
    if bar:
        bar.close()
    found = frontier(t, cost, points)
    bar = _progress(len(found), progress, "verify")
    rows = []
    for limit, c in found:
        bits = choice_map(t, c, groups)
        measured = measure(bits)
        rows.append(dict(layer_bits=bits, budget={cost: limit}, predicted=predicted(t, c), measured=measured))
        if bar:
            bar.update(1)
    if bar:
        bar.close()
    chip_table = dict((chip or ChipConfig()).raw)  # the TOML tables: array, buffers, dram, ...
    result = dict(
        points=[dict(layer_bits=r["layer_bits"], chip=chip_table, budget=r["budget"],
                     predicted=dict(r["predicted"], accuracy=None, top1_agreement=None, sqnr_db=None, area_mm2=None),
                     measured=_fields(r["measured"], None)) for r in rows],
        baselines={f"uniform_{b}": _fields(_uniform_cached(ev, b, measure), None) for b in (8, 4)},
        rank_correlation={k: spearman([r["predicted"][k] for r in rows], [getattr(r["measured"], k) for r in rows])
                          for k in ("kl", "cycles", "energy_pj")},
        greedy={str(limit): _greedy_vs_ilp(t, cost, limit) for limit, _ in found},
        layers=[layer.name for layer in layers], cost=cost)
    if out is not None:
        write_outputs(result, Path(out))
    return result


def _greedy_vs_ilp(t: Tables, cost: str, limit: float) -> Optional[dict]:
    g = greedy(t, {cost: limit})
    return None if g is None else predicted(t, g)


def write_outputs(result: dict, out: Path) -> None:
    """frontier.json, frontier.csv and one layer-bit map per point (maps/point_NN.json)."""
    out.mkdir(parents=True, exist_ok=True)
    (out / "frontier.json").write_text(json.dumps(result, indent=1, default=float))
    maps = out / "maps"
    maps.mkdir(exist_ok=True)
    with open(out / "frontier.csv", "w", newline="") as f:
        w = csv.writer(f)
        keys = ["accuracy", "top1_agreement", "sqnr_db", "kl", "cycles", "energy_pj", "dram_bytes"]
        w.writerow(["point"] + [f"measured_{k}" for k in keys] + ["predicted_kl", "predicted_cycles", "layer_bits"])
        for i, p in enumerate(result["points"]):
            (maps / f"point_{i:02d}.json").write_text(json.dumps(p["layer_bits"], indent=1))
            w.writerow([i] + [p["measured"][k] for k in keys] + [p["predicted"]["kl"], p["predicted"]["cycles"],
                                                              f"maps/point_{i:02d}.json"])
