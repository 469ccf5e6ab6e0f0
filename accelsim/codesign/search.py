"""The search over the tables: an integer linear program over one-hot choices (scipy.optimize.milp,
HiGHS), its epsilon-constraint sweep into a frontier, and AMP's greedy ordering as the baseline.

Variables: ``x[l, w]`` = layer l takes weight width w; ``y[g, a]`` = activation group g takes width
a; one of each per layer and group.  Predicted change of a map from the base: the sum of the chosen
entries' changes (sensitivity: the output noise power relative to the float output, 1 / SQNR, which
adds up across layers better than KL divergence does (measured on MobileNetV2: rank correlation of
predicted and measured 0.96 against 0.81), or the KL divergence; costs: cycles, energy, DRAM bytes
per image).  Minimise the sensitivity under cost budgets, or a cost under a sensitivity cap.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import numpy as np

from .tables import Tables

COSTS = ("cycles", "energy_pj", "dram_bytes")


@dataclass(frozen=True)
class Choice:
    """A point of the search: weight width per searched layer, activation width per searched group."""

    weights: tuple[tuple[str, int], ...]
    activations: tuple[tuple[int, int], ...]

    def key(self) -> tuple:
        return self.weights, self.activations


def _variables(t: Tables) -> list[tuple[str, object, int]]:
    """("w", layer, bits) and ("a", group, bits) in a fixed order."""
    out: list[tuple[str, object, int]] = [("w", layer.name, w) for layer in t.layers for w in t.weight_bits]
    out += [("a", g, a) for g in sorted(t.searched_groups) for a in t.activation_bits]
    return out


def _entry(t: Tables, v: tuple[str, object, int]):
    kind, who, bits = v
    return t.weight[who, bits] if kind == "w" else t.activation[who, bits]


def predicted(t: Tables, c: Choice) -> dict[str, float]:
    """Base plus the changes of the choice's entries: sensitivity (KL) and each cost."""
    entries = [t.weight[name, w] for name, w in c.weights] + [t.activation[g, a] for g, a in c.activations]
    out = {"kl": t.base.kl + sum(e.kl for e in entries), "noise": t.base.noise + sum(e.noise for e in entries)}
    for k in COSTS:
        out[k] = getattr(t.base, k) + sum(getattr(e, k) for e in entries)
    return out


def _choice(t: Tables, variables: list, x: np.ndarray) -> Choice:
    on = [v for v, xi in zip(variables, x) if xi > 0.5]
    return Choice(tuple(sorted((v[1], v[2]) for v in on if v[0] == "w")),
                  tuple(sorted((v[1], v[2]) for v in on if v[0] == "a")))


def solve(t: Tables, budgets: dict[str, float], *, minimise: str = "noise",
          kl_cap: Optional[float] = None) -> Optional[Choice]:
    """The optimal choice: minimise ``minimise`` (noise, kl or a cost) with every cost in ``budgets`` at
    most its value (absolute, per image) and, given ``kl_cap``, the predicted KL at most that.
    None when infeasible."""
    from scipy.optimize import Bounds, LinearConstraint, milp

    variables = _variables(t)
    n = len(variables)
    objective = np.array([getattr(_entry(t, v), minimise) for v in variables], np.float64)
    rows, lo, hi = [], [], []
    for layer in t.layers:  # one weight width per layer
        rows.append([1.0 if v[0] == "w" and v[1] == layer.name else 0.0 for v in variables])
        lo.append(1)
        hi.append(1)
    for g in sorted(t.searched_groups):  # one activation width per group
        rows.append([1.0 if v[0] == "a" and v[1] == g else 0.0 for v in variables])
        lo.append(1)
        hi.append(1)
    limits = dict(budgets)
    if kl_cap is not None:
        limits["kl"] = kl_cap
    for k, limit in limits.items():
        rows.append([getattr(_entry(t, v), k) for v in variables])
        lo.append(-np.inf)
        hi.append(limit - getattr(t.base, k))
    res = milp(objective, constraints=LinearConstraint(np.array(rows), lo, hi), integrality=np.ones(n),
               bounds=Bounds(0, 1))
    if res.status != 0 or res.x is None:
        return None
    return _choice(t, variables, res.x)


def base_choice(t: Tables) -> Choice:
    w0, a0 = t.base_bits
    return Choice(tuple(sorted((layer.name, w0) for layer in t.layers)),
                  tuple(sorted((g, a0) for g in t.searched_groups)))


def greedy(t: Tables, budgets: dict[str, float], objective: str = "noise") -> Optional[Choice]:
    """AMP's ordering on the same tables: from the base, repeatedly take the move (one layer's
    weight width or one group's activation width) with the least sensitivity added per unit of the
    first budgeted cost saved, until every budget holds.  None when no sequence of moves gets there."""
    key = next(iter(budgets))
    current = {("w", n): w for n, w in base_choice(t).weights} | {("a", g): a for g, a in base_choice(t).activations}

    def total(cur: dict) -> dict[str, float]:
        return predicted(t, _as_choice(cur))

    while any(total(current)[k] > v for k, v in budgets.items()):
        best, best_ratio = None, np.inf
        now = total(current)
        for (kind, who), bits in current.items():
            options = t.weight_bits if kind == "w" else t.activation_bits
            for b in options:
                if b == bits:
                    continue
                trial = dict(current)
                trial[kind, who] = b
                after = total(trial)
                saved = now[key] - after[key]
                if saved <= 0:
                    continue
                ratio = (after[objective] - now[objective]) / saved
                if ratio < best_ratio:
                    best, best_ratio = trial, ratio
        if best is None:
            return None
        current = best
    return _as_choice(current)


def _as_choice(cur: dict) -> Choice:
    return Choice(tuple(sorted((who, b) for (kind, who), b in cur.items() if kind == "w")),
                  tuple(sorted((who, b) for (kind, who), b in cur.items() if kind == "a")))


def frontier(t: Tables, cost: str = "cycles", points: int = 24, budgets: Optional[dict[str, float]] = None,
             objective: str = "noise") -> list[tuple[float, Choice]]:
    """The epsilon-constraint sweep: ``points`` budgets on ``cost`` from the cheapest reachable to
    the base, each solved for the least sensitivity (other ``budgets`` held); distinct choices only,
    with the budget that found each."""
    cheapest = solve(t, dict(budgets or {}), minimise=cost)
    if cheapest is None:
        return []
    lo, hi = predicted(t, cheapest)[cost], getattr(t.base, cost)
    if budgets and cost in budgets:  # a budget on the swept cost ends the sweep there
        hi = min(hi, budgets[cost])
    out, seen = [], set()
    for limit in np.linspace(lo, max(hi, lo), points):
        c = solve(t, {**(budgets or {}), cost: float(limit) + 1e-9 * max(1.0, abs(float(limit)))}, minimise=objective)
        if c is not None and c.key() not in seen:
            seen.add(c.key())
            out.append((float(limit), c))
    return out
