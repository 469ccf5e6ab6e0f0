"""``codesign(model, calib, data, ...)``: the tables, the ILP frontier, the greedy baseline, and every
frontier point measured bit-exact on the chip; the results written to a directory."""

from __future__ import annotations

import csv
import importlib.util
import json
import sys
from pathlib import Path
from typing import Optional

import numpy as np
import onnx

from ..chip import ChipConfig
from ..quant.ptq import float_runner
from .area import chip_area_mm2
from .cache import ResultCache, context_key
from .parallel import Runner
from .search import Choice, frontier, greedy, predicted
from .tables import (UNIFORM, Evaluator, Groups, Metrics, Tables, build_tables, layer_map, prepared,
                     searchable_layers)


def float_outputs(model: onnx.ModelProto, x: np.ndarray, batch: int = 64) -> np.ndarray:
    """The float model's first output on every sample (in batches where the model allows)."""
    run = float_runner(model, [model.graph.output[0].name])
    name = model.graph.input[0].name
    return np.concatenate([run({name: s[None]})[0] for s in x])


def choice_map(t: Tables, c: Choice, groups: Groups) -> dict[str, dict[str, int]]:
    """A choice as the layer-bit map accelsim quantize takes (activation widths per node: every
    member of a group, its Adds and Concats included)."""
    acts = {name: a for g, a in c.activations for name in groups.members[g]}
    return layer_map(dict(c.weights), acts)


def uniform_map(bits: int) -> dict:
    """The map of the uniform baseline at ``bits`` (graph input, first and last layer included)."""
    return {UNIFORM: {"weight_bits": bits, "activation_bits": bits}}


def spearman(a: list[float], b: list[float]) -> Optional[float]:
    """Spearman's rank correlation (None for fewer than three points or a constant side)."""
    if len(a) < 3 or len(set(a)) < 2 or len(set(b)) < 2:
        return None
    from scipy.stats import spearmanr

    return float(spearmanr(a, b).statistic)


def _fields(m: Metrics, area: Optional[float]) -> dict:
    return dict(accuracy=m.accuracy, top1_agreement=m.top1_agreement, sqnr_db=m.sqnr_db, kl=m.kl, noise=m.noise,
                cycles=m.cycles,
                energy_pj=m.energy_pj, dram_bytes=m.dram_bytes, area_mm2=area)


def codesign(model: onnx.ModelProto, calib: np.ndarray, data: np.ndarray, labels: Optional[np.ndarray] = None, *,
             chip: Optional[ChipConfig] = None, weight_bits: tuple[int, ...] = (4, 8),
             activation_bits: tuple[int, ...] = (4, 8), search_ends: bool = False, points: int = 24,
             cost: str = "cycles", batch: int = 32, out: Optional[str | Path] = None, progress: bool = True,
             cache: Optional[str | Path] = None, workers: int = 1, scheduler: Optional[str] = None,
             budgets: Optional[dict[str, float]] = None, accuracy_drop: float = 0.01,
             accuracy_floor: Optional[float] = None, plots: bool = True, objective: str = "noise") -> dict:
    """Search per-layer bit widths for ``model`` on ``chip``; returns (and writes to ``out``) the
    measured frontier, the uniform 8- and 4-bit baselines and the rank correlations.

    Every measurement goes through a SQLite cache (``cache``, default ``out``/cache.sqlite: a rerun
    measures nothing twice) and runs in this process (``workers=1``), on a LocalCluster of
    ``workers`` processes, or on the Dask cluster at ``scheduler``.  ``objective``: the predicted
    sensitivity the ILP minimises, output noise power (1 / SQNR, default) or KL divergence.  ``budgets`` (cycles, energy_pj,
    dram_bytes per image) bound every frontier solve; ``chosen`` in the result is the cheapest
    measured point within ``accuracy_drop`` of uniform 8-bit (top-1 with labels, else agreement),
    or at least ``accuracy_floor`` when given."""
    chip = chip or ChipConfig()
    m = prepared(model)
    ev = Evaluator(m, calib, data, labels, float_outputs(m, data), chip, batch)
    store = ResultCache(cache if cache is not None else Path(out) / "cache.sqlite") \
        if cache is not None or out is not None else None
    context = context_key(m, dict(chip.raw), calib, data, labels, batch)
    runner = Runner(ev, store, context, workers, scheduler)
    try:
        layers, groups = searchable_layers(m, search_ends)
        with _bar(progress, "tables", runner):
            t = build_tables(ev, layers, list(weight_bits), list(activation_bits), groups, runner.measure_many)
        found = frontier(t, cost, points, budgets, objective)
        maps = [choice_map(t, c, groups) for _, c in found]
        with _bar(progress, "verify", runner):
            measured = runner.measure_many(maps + [uniform_map(8), uniform_map(4)])
    finally:
        runner.close()
    rows = [dict(layer_bits=bits, budget={cost: limit}, predicted=predicted(t, c), measured=mm)
            for (limit, c), bits, mm in zip(found, maps, measured)]
    area = chip_area_mm2(chip.raw)["total"]
    result = dict(
        points=[dict(layer_bits=r["layer_bits"], chip=dict(chip.raw), budget=r["budget"],
                     predicted=dict(r["predicted"], accuracy=None, top1_agreement=None, sqnr_db=None, area_mm2=area),
                     measured=_fields(r["measured"], area)) for r in rows],
        baselines={"uniform_8": _fields(measured[-2], area), "uniform_4": _fields(measured[-1], area)},
        rank_correlation={k: spearman([r["predicted"][k] for r in rows], [getattr(r["measured"], k) for r in rows])
                          for k in ("kl", "noise", "cycles", "energy_pj")},
        greedy={str(limit): _greedy_vs_ilp(t, cost, limit, objective) for limit, _ in found},
        layers=[layer.name for layer in layers], cost=cost, measured_now=runner.measured)
    result["chosen"] = chosen_point(result, cost, accuracy_drop, accuracy_floor)
    if out is not None:
        write_outputs(result, Path(out))
        if plots and importlib.util.find_spec("matplotlib") is not None:
            from .plots import write_plots

            result["plots"] = [str(p) for p in write_plots(result, ev, chip, Path(out))]
    return result


class _bar:
    """A tqdm bar fed by the runner's progress callback (nothing when progress is off)."""

    def __init__(self, enabled: bool, desc: str, runner: "Runner") -> None:
        self.enabled, self.desc, self.runner, self.bar = enabled, desc, runner, None

    def __enter__(self):
        if self.enabled:
            from tqdm import tqdm

            self.bar = tqdm(desc=self.desc, file=sys.stderr, leave=False, unit="map")
            self.runner.progress = self.bar.update
        return self

    def __exit__(self, *exc) -> None:
        if self.bar is not None:
            self.bar.close()
        self.runner.progress = None


def chosen_point(result: dict, cost: str, accuracy_drop: float, floor: Optional[float] = None) -> Optional[int]:
    """Index of the cheapest measured point whose accuracy (agreement without labels) is at least
    ``floor``, or by default within ``accuracy_drop`` of uniform 8-bit; None when none is."""
    key = "accuracy" if result["baselines"]["uniform_8"]["accuracy"] is not None else "top1_agreement"
    if floor is None:
        floor = result["baselines"]["uniform_8"][key] - accuracy_drop
    ok = [i for i, p in enumerate(result["points"]) if p["measured"][key] >= floor - 1e-12]
    return min(ok, key=lambda i: result["points"][i]["measured"][cost]) if ok else None


def _greedy_vs_ilp(t: Tables, cost: str, limit: float, objective: str) -> Optional[dict]:
    g = greedy(t, {cost: limit}, objective)
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
