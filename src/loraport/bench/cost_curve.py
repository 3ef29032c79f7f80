"""The cost curve: a port variant's quality against its compute over a budget sweep, from stored
records' aggregates (numpy only, no torch).

A budget sweep is a method option `steps` given as a list in the study (`distill: {steps: [15, 30,
60, 120]}`): the planner makes one port cell per budget (cached like any other), named
`distill[...][steps=N]`. A *family* is the variant name without its `[steps=N]` part; a family
with two or more budgets at one (pool, N) is a curve. Each point carries the compute the port
recorded (optimiser steps taken, generated teacher tokens, wall time including the teacher and
the init port) as multiples of the oracle's training (its steps and seconds), its gap_recovered and
teacher ratio with their 95% CIs (bench.metrics, bench.teacher_ratio).

Two readings per curve:
- stops gaining at: the smallest budget b such that no larger budget's gap_recovered exceeds the
  upper end of b's CI (its point estimate where there is no CI): beyond b, more compute buys
  nothing the items can tell apart. When that is the largest budget, the curve is still gaining;
- crosses the teacher at: the smallest budget whose teacher ratio is ≥ 1 (the port at or above X +
  X adapter on the same items), and separately the smallest whose CI lower end is ≥ 1; None where
  no budget does (or the teacher ratio is undefined).

    curves = cost_curves(agg, costs(records), teacher_ratios(records, tasks, 0.03))
    curves[0]["stops_gaining_at"], curves[0]["crosses_teacher_at"]

The reference a curve is read against: the oracle's own learning curve (`oracle_curve`), its
adapter after each earlier epoch scored on the same items (conditions oracle_checkpoint, which a
study with a budget sweep plans). A label-free port at a fraction of the oracle's compute competes
with what the oracle had learned at that fraction from the labels themselves.
"""

from __future__ import annotations

import re
from collections import defaultdict
from typing import Any

_STEPS = re.compile(r"\[steps=(\d+)\]")


def budget_of(variant: str) -> tuple[str, int] | None:
    """(family, steps) of a variant named with a `steps` option, else None."""
    m = _STEPS.search(variant)
    if m is None or ":" in variant:  # controls are not points of a curve
        return None
    return variant[: m.start()] + variant[m.end() :], int(m.group(1))


def stops_gaining_at(points: list[dict[str, Any]]) -> int | None:
    """The smallest budget after which no budget's gap_recovered exceeds its CI's upper end."""
    pts = [p for p in points if p["gap_recovered"] is not None]
    for i, p in enumerate(pts):
        top = p["ci95"][1] if p.get("ci95") else p["gap_recovered"]
        if all(q["gap_recovered"] <= top for q in pts[i + 1 :]):
            return p["budget"]
    return None


def crosses_teacher_at(points: list[dict[str, Any]], lower_ci: bool = False) -> int | None:
    """The smallest budget whose teacher ratio (or its CI's lower end) is at least 1."""
    for p in points:
        if lower_ci:
            value = p["teacher_ci95"][0] if p.get("teacher_ci95") else None
        else:
            value = p["teacher_ratio"]
        if value is not None and value >= 1:
            return p["budget"]
    return None


def _ratio(a: float | None, b: float | None) -> float | None:
    return None if a is None or not b else a / b


def cost_curves(
    agg: list[dict[str, Any]], costs: dict[str, Any], ratios: dict[str, Any] | None = None
) -> list[dict[str, Any]]:
    """One curve per (family, pool, N) with two or more budgets: its points by budget and the two
    readings above. `agg` is bench.metrics.aggregate's rows, `costs` bench.metrics.costs(records),
    `ratios` bench.teacher_ratio.teacher_ratios(...) (None: no teacher ratios)."""
    cost = {(c["variant"], c["pool"], c["n_anchors"]): c for c in costs.get("methods", [])}
    oracle = costs.get("oracle") or {}
    tr = {(r["variant"], r["pool"], r["n_anchors"]): r for r in (ratios or {}).get("aggregates", [])}
    families: dict[tuple, list[dict[str, Any]]] = defaultdict(list)
    for row in agg:
        fam = budget_of(row["variant"])
        if fam is None:
            continue
        key = (row["variant"], row["pool"], row["n_anchors"])
        c, r = cost.get(key, {}), tr.get(key, {})
        families[(fam[0], row["pool"], row["n_anchors"])].append(
            {
                "variant": row["variant"],
                "budget": fam[1],
                "steps": c.get("steps"),
                "generated_tokens": c.get("generated_tokens"),
                "seconds": c.get("seconds"),
                "relative_steps": _ratio(c.get("steps"), oracle.get("steps")),
                "relative_seconds": _ratio(c.get("seconds"), oracle.get("seconds")),
                "gap_recovered": row["gap_recovered"],
                "std": row["std"],
                "ci95": row["ci95"],
                "teacher_ratio": r.get("teacher_ratio"),
                "teacher_ci95": r.get("ci95"),
                "seeds": row["seeds"],
            }
        )
    out = []
    for (family, pool, n), points in sorted(families.items()):
        if len(points) < 2:
            continue
        points.sort(key=lambda p: p["budget"])
        stop = stops_gaining_at(points)
        out.append(
            {
                "family": family,
                "pool": pool,
                "n_anchors": n,
                "points": points,
                "stops_gaining_at": stop,
                "still_gaining": stop is not None and stop == points[-1]["budget"],
                "crosses_teacher_at": crosses_teacher_at(points),
                "crosses_teacher_ci_at": crosses_teacher_at(points, lower_ci=True),
                "oracle": {k: oracle.get(k) for k in ("steps", "seconds", "generated_tokens")},
            }
        )
    return out


def oracle_curve(
    records: list[dict[str, Any]], threshold: float, floor: bool = False, seed: int = 0
) -> list[dict[str, Any]]:
    """Per earlier epoch of the Y oracles (records of condition oracle_checkpoint): its share of the
    oracle's optimiser steps (epoch / epochs), and gap_recovered over the usable tasks with the
    paired bootstrap CI, computed by bench.metrics.aggregate as for a method; [] without
    checkpoints."""
    from loraport.bench.metrics import ORACLE_CHECKPOINT, aggregate

    baselines = [r for r in records if r["condition"] in ("base_y", "oracle_y", "teacher")]
    epochs = [
        {
            **r,
            "condition": "method",
            "variant": f"epoch {r['epoch']}",
            "pool": "oracle",
            "n_anchors": r["epochs"],
            "seed": 0,
        }
        for r in records
        if r["condition"] == ORACLE_CHECKPOINT and "missing" not in r
    ]
    if not epochs:
        return []
    rows = aggregate(baselines + epochs, threshold, seed=seed, floor=floor)
    out = []
    for row in rows:
        epoch, of = int(row["variant"].split()[1]), row["n_anchors"]
        out.append(
            {
                "epoch": epoch,
                "epochs": of,
                "relative_steps": epoch / of,
                "gap_recovered": row["gap_recovered"],
                "ci95": row["ci95"],
                "per_task": {
                    t: {k: v[k] for k in ("acc", "gap_recovered")} for t, v in row["per_task"].items()
                },
                "missing": row["missing"],
            }
        )
    return sorted(out, key=lambda p: p["relative_steps"])
