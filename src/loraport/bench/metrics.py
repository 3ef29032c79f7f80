"""The port study's metrics, from stored records alone (numpy, no torch), with defined edge cases.
Another study kind keeps its metrics in its own module (bench.kinds).

gap_recovered(acc, base, oracle) = (acc − base) / (oracle − base):
- oracle == base: undefined → None (the row is unusable; never divided by zero);
- oracle − base < threshold (oracle below base included): the task is unusable and excluded from
  every aggregate; its own gap is still shown when defined, flagged;
- negative values are kept (a port that does worse than the base);
- missing cells (failed or not computed) are left out and listed; an aggregate averages what exists
  and states its seeds;
- one seed: std is None (shown as "n/a"), never 0.
With `floor` (a study's `base_reference: chance`), base Y on a choice task counts as at least the
task's chance accuracy (`record["chance"]`): base Y that never produces a parseable letter scores 0,
and a port that learned only the format would otherwise be credited with the climb to chance.

Aggregate for a (variant, pool, N): per seed, the mean over usable tasks of gap_recovered; then
mean ± std over seeds. Its 95% CI is a paired bootstrap over eval items: the same resampled items
for base, oracle and method within each task.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Collection
from typing import Any

import numpy as np

BOOTSTRAP = 1000


def correct(record: dict[str, Any], scorer: str | None = None) -> np.ndarray | None:
    if "scorers" not in record:
        return None
    s = scorer or record["primary"]
    return np.asarray(record["scorers"][s]["correct"], dtype=float) if s in record["scorers"] else None


def accuracy(record: dict[str, Any] | None, scorer: str | None = None) -> float | None:
    c = None if record is None else correct(record, scorer)
    return None if c is None or not len(c) else float(c.mean())


def gap_recovered(acc: float | None, base: float | None, oracle: float | None) -> float | None:
    if acc is None or base is None or oracle is None or abs(oracle - base) < 1e-12:
        return None
    return (acc - base) / (oracle - base)


def base_correct(record: dict[str, Any], floor: bool = False) -> np.ndarray | None:
    """Base Y's per-item correctness; with `floor`, on a choice task scoring below chance, every
    item at the chance accuracy instead (the reference the gap is then measured from)."""
    c = correct(record)
    chance = record.get("chance")
    if floor and c is not None and len(c) and chance is not None and float(c.mean()) < chance:
        return np.full(len(c), float(chance))
    return c


#: The condition of the Y oracle's earlier epochs (planned with a budget sweep): the cost curve's
#: reference (bench.cost_curve.oracle_curve), neither a task baseline nor a port.
ORACLE_CHECKPOINT = "oracle_checkpoint"


def index(records: list[dict[str, Any]]):
    """(baselines by task and condition, method records by (variant, pool, N) -> task -> seed)."""
    base: dict[str, dict[str, dict]] = defaultdict(dict)
    methods: dict[tuple, dict[str, dict[int, dict]]] = defaultdict(lambda: defaultdict(dict))
    for r in records:
        if r["condition"] == "method":
            methods[(r["variant"], r["pool"], r["n_anchors"])][r["task"]][r["seed"]] = r
        elif r["condition"] != ORACLE_CHECKPOINT:
            base[r["task"]][r["condition"]] = r
    return base, methods


def floors_at_chance(study: dict[str, Any]) -> bool:
    """Whether a study (its spec as a dict) measures gaps from at least chance on choice tasks
    (`base_reference: chance`), the `floor` of task_rows and aggregate."""
    return study.get("base_reference", "measured") == "chance"


def why_unusable(gap: float | None, threshold: float) -> str | None:
    """None for a usable task, else the reason it is excluded from aggregates."""
    if gap is None:
        return "missing base or oracle"
    if abs(gap) < 1e-12:
        return "oracle equals base"
    if gap < 0:
        return "oracle below base"
    if gap < threshold:
        return f"oracle − base {gap:.3f} < {threshold}"
    return None


def task_rows(
    records: list[dict[str, Any]], threshold: float, floor: bool = False
) -> dict[str, dict[str, Any]]:
    """Per task: base Y (the reference: floored at chance with `floor`), its measured accuracy,
    the oracle, the teacher, oracle − base and whether the task is usable."""
    base, _ = index(records)
    rows = {}
    for task, conds in sorted(base.items()):
        b, o, t = (accuracy(conds.get(k)) for k in ("base_y", "oracle_y", "teacher"))
        measured = b
        if b is not None:
            b = float(base_correct(conds["base_y"], floor).mean())
        any_rec = next(iter(conds.values()))
        scored = [c for c in map(correct, conds.values()) if c is not None]
        gap = None if b is None or o is None else o - b
        why = why_unusable(gap, threshold)
        rows[task] = {
            "task": task,
            "domain": any_rec["domain"],
            "n": len(scored[0]) if scored else 0,
            "base_y": b,
            "base_y_measured": measured,
            "oracle_y": o,
            "teacher": t,
            "oracle_minus_base": gap,
            "usable": why is None,
            "why_unusable": why,
        }
    return rows


def aggregate(
    records: list[dict[str, Any]],
    threshold: float,
    seed: int = 0,
    floor: bool = False,
    only: Collection[str] | None = None,
) -> list[dict[str, Any]]:
    """Per (variant, pool, N): gap_recovered over the usable held-out tasks (those of `only` among
    them, when given), mean over seeds, with the paired bootstrap CI."""
    base, methods = index(records)
    rows = task_rows(records, threshold, floor)
    usable = [t for t, r in rows.items() if r["usable"] and (only is None or t in only)]
    rng = np.random.default_rng(seed)
    out = []
    for (variant, pool, n_anchors), by_task in sorted(methods.items()):
        per_seed: dict[int, list[float]] = defaultdict(list)
        per_task: dict[str, dict[str, Any]] = {}
        boot_parts = []
        for task in usable:
            seeds = by_task.get(task, {})
            cb, co = base_correct(base[task]["base_y"], floor), correct(base[task]["oracle_y"])
            accs, gaps, cms = {}, {}, []
            for s, rec in sorted(seeds.items()):
                cm = correct(rec)
                if cm is None or len(cm) != len(cb):
                    continue
                a = float(cm.mean())
                g = gap_recovered(a, float(cb.mean()), float(co.mean()))
                accs[s], gaps[s] = a, g
                per_seed[s].append(g)
                cms.append(cm)
            if gaps:
                per_task[task] = {
                    "acc": float(np.mean(list(accs.values()))),
                    "gap_recovered": float(np.mean(list(gaps.values()))),
                    "seeds": sorted(gaps),
                }
                boot_parts.append(bootstrap_ratio(rng, cb, co, cms))
        seed_means = [float(np.mean(v)) for v in per_seed.values() if v]
        ci = percentile_ci(boot_parts)
        out.append(
            {
                "variant": variant,
                "method": variant.split("[")[0],
                "pool": pool,
                "n_anchors": n_anchors,
                "gap_recovered": float(np.mean(seed_means)) if seed_means else None,
                "std": float(np.std(seed_means, ddof=1)) if len(seed_means) > 1 else None,
                "ci95": ci,
                "seeds": sorted(per_seed),
                "usable_tasks": sorted(per_task),
                "per_task": per_task,
                "missing": sorted(t for t in usable if t not in per_task),
            }
        )
    return out


def bootstrap_ratio(
    rng: np.random.Generator,
    base: np.ndarray,
    ref: np.ndarray,
    methods: list[np.ndarray],
    positive_only: bool = False,
) -> np.ndarray:
    """BOOTSTRAP paired resamples of one task's items of (method − base) / (ref − base): per-item
    correctness of base Y, the reference (the oracle for gap_recovered, the teacher for the teacher
    ratio) and the method (its seeds averaged). Undefined draws are inf/nan, or nan wherever
    ref ≤ base with `positive_only`."""
    idx = rng.integers(0, len(base), size=(BOOTSTRAP, len(base)))
    b_, r_ = base[idx].mean(1), ref[idx].mean(1)
    m_ = np.mean([cm[idx].mean(1) for cm in methods], axis=0)
    with np.errstate(divide="ignore", invalid="ignore"):
        if positive_only:
            return np.where(r_ - b_ > 1e-12, (m_ - b_) / (r_ - b_), np.nan)
        return (m_ - b_) / (r_ - b_)


def percentile_ci(parts: list[np.ndarray]) -> list[float] | None:
    """95% percentile interval of the per-task bootstrap draws averaged across tasks (draws that are
    not finite dropped); None without any."""
    if not parts:
        return None
    boot = np.mean(parts, axis=0)
    boot = boot[np.isfinite(boot)]
    return [float(np.percentile(boot, 2.5)), float(np.percentile(boot, 97.5))] if len(boot) else None


def parse_failures(records: list[dict[str, Any]]) -> dict[str, dict[str, float]]:
    """Share of invalid (unparseable) outputs per condition kind, for the scorer the metrics use."""
    acc: dict[tuple, list[int]] = defaultdict(lambda: [0, 0])
    for r in records:
        for s, v in r.get("scorers", {}).items():
            if s != r.get("primary"):
                continue
            kind = r.get("variant") or r["condition"]
            a = acc[(kind, s)]
            a[0] += sum(v["invalid"])
            a[1] += len(v["invalid"])
    out: dict[str, dict[str, float]] = defaultdict(dict)
    for (kind, s), (bad, n) in sorted(acc.items()):
        out[kind][s] = bad / n if n else 0.0
    return dict(out)


def is_control(variant: str) -> bool:
    """Control conditions are named "<control>:<variant>" (shuffled:global_ridge, random:...)."""
    return ":" in variant


def teacher_ceiling(rows: dict[str, dict[str, Any]]) -> dict[str, Any] | None:
    """Mean over usable tasks of (teacher − base_Y) / (oracle − base_Y): what a port that copied the
    teacher's (X + X adapter's) accuracy exactly would recover. None when no usable task has one."""
    gaps = {
        t: gap_recovered(r["teacher"], r["base_y"], r["oracle_y"])
        for t, r in rows.items()
        if r["usable"] and r["teacher"] is not None
    }
    gaps = {t: g for t, g in gaps.items() if g is not None}
    return {"gap_recovered": float(np.mean(list(gaps.values()))), "per_task": gaps} if gaps else None


COST_FIELDS = ("seconds", "steps", "generated_tokens")


def costs(records: list[dict[str, Any]]) -> dict[str, Any]:
    """Mean cost per port for each (variant, pool, N), and the oracles' mean training cost (the
    reference point). A cost is what the run recorded next to each adapter (see bench.runner)."""
    acc: dict[tuple, list[dict]] = defaultdict(list)
    oracle: list[dict] = []
    for r in records:
        c = r.get("cost")
        if not c:
            continue
        if r["condition"] == "method":
            acc[(r["variant"], r["pool"], r["n_anchors"])].append(c)
        elif r["condition"] == "oracle_y":
            oracle.append(c)

    def mean(cs: list[dict]) -> dict[str, Any]:
        out: dict[str, Any] = {f: float(np.mean([c.get(f, 0) or 0 for c in cs])) for f in COST_FIELDS}
        out["data"] = sorted({c.get("data", "?") for c in cs})
        out["n"] = len(cs)
        return out

    ref = mean(oracle) if oracle else None
    rows = []
    for (variant, pool, n), cs in sorted(acc.items()):
        row = {"variant": variant, "pool": pool, "n_anchors": n, **mean(cs)}
        row["relative_seconds"] = row["seconds"] / ref["seconds"] if ref and ref["seconds"] > 0 else None
        rows.append(row)
    return {"oracle": ref, "methods": rows}


def control_rows(agg: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Each control next to the method it controls, at the same (pool, N), on the same tasks."""
    by_key = {(r["variant"], r["pool"], r["n_anchors"]): r for r in agg}
    out = []
    for r in agg:
        if not is_control(r["variant"]):
            continue
        control, of = r["variant"].split(":", 1)
        m = by_key.get((of, r["pool"], r["n_anchors"]))
        shared = sorted(set(r["per_task"]) & set(m["per_task"])) if m else []
        if not shared:
            continue
        g_m = float(np.mean([m["per_task"][t]["gap_recovered"] for t in shared]))
        g_c = float(np.mean([r["per_task"][t]["gap_recovered"] for t in shared]))
        out.append(
            {
                "control": control,
                "of": of,
                "pool": r["pool"],
                "n_anchors": r["n_anchors"],
                "tasks": shared,
                "method_gap": g_m,
                "control_gap": g_c,
                "control_ci95": r["ci95"],
                "beats_control": g_m > g_c,
            }
        )
    return out
