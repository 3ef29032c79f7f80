"""The tiers study's metrics, from stored records alone (numpy, no torch).

Items are paired by their id after the task name (tasks.procedure.pair_id), so a plain and a
procedure condition, and two tiers, line up item by item; items are pooled over the study's tasks
and every CI is a 95% bootstrap resampling items within each task (bench.recipe_metrics).

- pre-Δ(T) = acc(T, procedure) − acc(T, plain), T alone; post-Δ(T) the same with T's SFT adapter;
  lift(T) = post-Δ − pre-Δ, the SFT-attributable part (all per item, so all paired).
- port quality per tier and variant: accuracy on the procedure prompts and gap_recovered =
  (port − base) / (oracle − base) on them (percentile CI of the paired bootstrap ratio); a tier
  whose oracle − base is below the study's usable_threshold has no usable gap.
- shape(values across tiers, smallest first): each step between adjacent tiers is a paired
  difference with a CI; a step counts as up or down only when its CI excludes zero. The shape is
  "not distinguishable" when no step does, "monotone increasing/decreasing" when every
  distinguishable step goes one way, else named by its distinguishable turns ("U-shaped" down
  then up, "inverted U" up then down, "W-shaped" with two or more turns: a zigzag).
"""

from __future__ import annotations

import itertools
from collections import defaultdict
from typing import Any

import numpy as np

from loraport.bench.metrics import bootstrap_ratio, gap_recovered, percentile_ci
from loraport.bench.recipe_metrics import excludes_zero, paired_diff
from loraport.tasks.procedure import pair_id

Cell = dict[str, np.ndarray]  # task -> per-item correctness, items in pair-id order


def index(records: list[dict[str, Any]], scorer: str | None = None) -> dict[tuple, Cell]:
    """(tier, stage, prompt, variant or None) -> task -> per-item correctness of `scorer` (default:
    each record's primary), seeds of a port averaged. Missing records are left out."""
    seeds: dict[tuple, dict[str, list[np.ndarray]]] = defaultdict(lambda: defaultdict(list))
    for r in records:
        if "scorers" not in r:
            continue
        col = r["scorers"].get(scorer or r["primary"])
        if col is None:
            continue
        order = np.argsort([pair_id(i) for i in col["ids"]], kind="stable")
        c = np.asarray(col["correct"], dtype=float)[order]
        seeds[(r["tier"], r["stage"], r["prompt"], r.get("variant"))][r["task"]].append(c)
    return {k: {t: np.mean(v, axis=0) for t, v in tasks.items()} for k, tasks in seeds.items()}


def combine(*terms: tuple[float, Cell]) -> list[tuple[np.ndarray, np.ndarray]] | None:
    """Σ weight·cell per task, as (positive part, negative part) pairs for paired_diff (tasks
    every cell has, with equal item counts); None when a cell is missing."""
    if any(not cell for _, cell in terms):
        return None
    tasks = sorted(set.intersection(*(set(cell) for _, cell in terms)))
    out = []
    for task in tasks:
        rows = [(w, cell[task]) for w, cell in terms]
        if len({len(r) for _, r in rows}) != 1:
            continue
        pos = sum((w * r for w, r in rows if w > 0), np.zeros(len(rows[0][1])))
        neg = sum((-w * r for w, r in rows if w < 0), np.zeros(len(rows[0][1])))
        out.append((pos, neg))
    return out or None


def diff(*terms: tuple[float, Cell]) -> dict[str, Any] | None:
    """The paired mean of Σ weight·cell with its CI (None when a cell is missing)."""
    pairs = combine(*terms)
    return None if pairs is None else paired_diff(pairs)


def _acc(cell: Cell | None) -> float | None:
    return float(np.concatenate(list(cell.values())).mean()) if cell else None


def _terms(idx: dict[tuple, Cell], tier: str, what: str) -> list[tuple[float, Cell]]:
    """The weighted cells whose sum is `what` (pre, post or lift) for one tier."""

    def c(stage: str, prompt: str) -> Cell:
        return idx.get((tier, stage, prompt, None), {})

    pre = [(1.0, c("base", "procedure")), (-1.0, c("base", "plain"))]
    post = [(1.0, c("sft", "procedure")), (-1.0, c("sft", "plain"))]
    return {"pre": pre, "post": post, "lift": post + [(-w, x) for w, x in pre]}[what]


def procedure_rows(idx: dict[tuple, Cell], tiers: list[str]) -> list[dict[str, Any]]:
    """Per tier: accuracies of base and SFT under both prompts, pre-Δ, post-Δ and lift with CIs."""
    rows = []
    for tier in tiers:
        row: dict[str, Any] = {"tier": tier}
        for stage in ("base", "sft"):
            for prompt in ("plain", "procedure"):
                row[f"{stage}_{prompt}"] = _acc(idx.get((tier, stage, prompt, None)))
        for what in ("pre", "post", "lift"):
            row[what] = diff(*_terms(idx, tier, what))
        rows.append(row)
    return rows


def shape(steps: list[dict[str, Any] | None]) -> dict[str, Any]:
    """The shape of a quantity across tiers from its steps between adjacent tiers (paired_diff
    results, smallest tier first); see the module docstring. A missing step counts as flat."""
    signs = [0 if s is None or not excludes_zero(s["ci"]) else (1 if s["delta"] > 0 else -1) for s in steps]
    moves = [s for s in signs if s]
    word = {1: "up", -1: "down", 0: "flat or not distinguishable"}
    trail = ", ".join(word[s] for s in signs)
    if not moves:
        return {
            "shape": "not distinguishable",
            "signs": signs,
            "why": f"no step's CI excludes zero ({trail})",
        }
    turns = sum(a != b for a, b in itertools.pairwise(moves))
    if turns == 0:
        name = "monotone increasing" if moves[0] > 0 else "monotone decreasing"
    elif turns == 1:
        name = "U-shaped" if moves[0] < 0 else "inverted U"
    else:  # low-high-low-high or high-low-high: the seed's "W-shaped" trajectory
        name = "W-shaped"
    return {"shape": name, "signs": signs, "why": f"steps whose CI excludes zero: {trail}"}


def shape_of(idx: dict[tuple, Cell], tiers: list[str], what: str) -> dict[str, Any]:
    """The shape of pre, post or lift across the tiers: each step is the paired difference
    what(T[i+1]) − what(T[i]) over the same items."""
    steps = []
    for lo, hi in itertools.pairwise(tiers):
        steps.append(diff(*_terms(idx, hi, what), *[(-w, c) for w, c in _terms(idx, lo, what)]))
    return {"of": what, **shape(steps), "steps": steps}


def port_rows(
    idx: dict[tuple, Cell], tiers: list[str], threshold: float, seed: int = 0
) -> list[dict[str, Any]]:
    """Per port variant and tier: accuracy and gap_recovered (with a CI) on the procedure prompts."""
    variants = sorted({k[3] for k in idx if k[1] == "port"})
    rows = []
    for variant in variants:
        for tier in tiers:
            base = idx.get((tier, "base", "procedure", None), {})
            oracle = idx.get((tier, "sft", "procedure", None), {})
            ported = idx.get((tier, "port", "procedure", variant), {})
            acc, b, o = _acc(ported), _acc(base), _acc(oracle)
            usable = b is not None and o is not None and o - b >= threshold
            ci = None
            if usable and ported:
                rng = np.random.default_rng(seed)
                parts = [
                    bootstrap_ratio(rng, base[t], oracle[t], [ported[t]])
                    for t in sorted(set(base) & set(oracle) & set(ported))
                ]
                ci = percentile_ci(parts)
            rows.append(
                {
                    "variant": variant,
                    "tier": tier,
                    "accuracy": acc,
                    "base": b,
                    "oracle": o,
                    "gap_recovered": gap_recovered(acc, b, o) if usable else None,
                    "ci": ci,
                    "usable": usable,
                    "vs_base": diff((1.0, ported), (-1.0, base)) if ported else None,
                }
            )
    return rows


def port_shape(idx: dict[tuple, Cell], tiers: list[str], variant: str) -> dict[str, Any]:
    """The shape of a variant's port accuracy across tiers (paired over the same items)."""
    steps = []
    for lo, hi in itertools.pairwise(tiers):
        a = idx.get((hi, "port", "procedure", variant), {})
        b = idx.get((lo, "port", "procedure", variant), {})
        steps.append(diff((1.0, a), (-1.0, b)))
    return {"of": f"port accuracy {variant}", **shape(steps), "steps": steps}
