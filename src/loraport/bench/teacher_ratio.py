"""The teacher ratio: a port's gain over base Y as a share of its teacher's gain, on the same items.

teacher_ratio(acc, base, teacher) = (acc − base_Y) / (teacher − base_Y), where "teacher" is X + X
adapter answering the task's eval items (the `teacher` condition). It is the label-free literature's
yardstick ("lossless" means ≥ 1: the transferred adapter at or above its source); gap_recovered
measures the same gain against Y's oracle instead. Edge cases, as bench.metrics defines them for
gap_recovered:
- no teacher record, or the teacher no better than base Y (teacher − base ≤ 0): undefined for the
  task (None), flagged with the reason; never divided by zero;
- teacher − base below the study's usable threshold: undefined too (a 1-item teacher gain would
  make any port's ratio meaningless), flagged;
- a task whose oracle is unusable keeps its own ratio when defined, but no aggregate reads it (the
  teacher ratio's tasks are thus a subset of gap_recovered's: usable, with a defined teacher ratio);
- a method or teacher record scored on other items than base Y's is left out of that task.
Aggregate per (variant, pool, N): per seed, the mean ratio over the tasks that are usable and have
a defined teacher ratio; then mean ± std over seeds; 95% CI by a paired bootstrap over eval items
(the same resampled items for base Y, teacher and method within each task); a replicate in which
some task's resampled teacher is no better than its base has no ratio and is left out.

    ratios = teacher_ratios(records, task_rows(records, 0.03), 0.03)
    ratios["tasks"]["math_sum_more"]["why_undefined"]     # None, or why there is no ratio
    ratios["aggregates"][0]["teacher_ratio"]
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

import numpy as np

from loraport.bench.metrics import (
    base_correct,
    bootstrap_ratio,
    correct,
    index,
    is_control,
    percentile_ci,
)


def teacher_ratio(acc: float | None, base: float | None, teacher: float | None) -> float | None:
    """(acc − base) / (teacher − base); None when an input is missing or the teacher is no better
    than the base."""
    if acc is None or base is None or teacher is None or teacher - base <= 1e-12:
        return None
    return (acc - base) / (teacher - base)


def why_undefined(base: float | None, teacher: float | None, threshold: float) -> str | None:
    """None when a task's teacher ratio is defined, else why it is not."""
    if base is None:
        return "no base Y record"
    if teacher is None:
        return "no teacher record"
    gain = teacher - base
    if gain <= 1e-12:
        return "teacher no better than base Y"
    if gain < threshold:
        return f"teacher − base {gain:.3f} < {threshold}"
    return None


def _same_items(a: dict[str, Any], b: dict[str, Any]) -> bool:
    """Whether two records were scored on the same eval items (ids where both carry them)."""
    ca, cb = correct(a), correct(b)
    if ca is None or cb is None or len(ca) != len(cb):
        return False
    ia, ib = (r["scorers"][r["primary"]].get("ids") for r in (a, b))
    return ia is None or ib is None or list(ia) == list(ib)


def teacher_ratios(
    records: list[dict[str, Any]],
    tasks: dict[str, dict[str, Any]],
    threshold: float,
    seed: int = 0,
    floor: bool = False,
) -> dict[str, Any]:
    """Per task: the teacher's gain over base Y and whether a ratio is defined; per method variant
    (controls left out): the aggregate teacher ratio with std, CI and its per-task values.
    `tasks` is bench.metrics.task_rows(records, threshold, floor), and `floor` the same flag."""
    base, methods = index(records)
    info: dict[str, dict[str, Any]] = {}
    for t, row in tasks.items():
        teacher = base[t].get("teacher")
        why = why_undefined(row["base_y"], row["teacher"], threshold)
        if why is None and not _same_items(base[t]["base_y"], teacher):
            why = "teacher scored on other items than base Y"
        gain = None if row["teacher"] is None or row["base_y"] is None else row["teacher"] - row["base_y"]
        info[t] = {
            "teacher": row["teacher"],
            "teacher_minus_base": gain,
            "defined": why is None,
            "why_undefined": why,
            "in_aggregate": why is None and row["usable"],
        }
    pooled = [t for t, v in info.items() if v["in_aggregate"]]
    rng = np.random.default_rng(seed)
    out = []
    for (variant, pool, n_anchors), by_task in sorted(methods.items()):
        if is_control(variant):
            continue
        per_seed: dict[int, list[float]] = defaultdict(list)
        per_task: dict[str, dict[str, Any]] = {}
        boot_parts = []
        for t in sorted(info):
            if not info[t]["defined"]:
                continue
            cb, ct = base_correct(base[t]["base_y"], floor), correct(base[t]["teacher"])
            ratios, cms = {}, []
            for s, rec in sorted(by_task.get(t, {}).items()):
                if not _same_items(base[t]["base_y"], rec):
                    continue
                cm = correct(rec)
                ratios[s] = teacher_ratio(float(cm.mean()), float(cb.mean()), float(ct.mean()))
                cms.append(cm)
            if not ratios:
                continue
            per_task[t] = {"teacher_ratio": float(np.mean(list(ratios.values()))), "seeds": sorted(ratios)}
            if t not in pooled:
                continue
            for s, r in ratios.items():
                per_seed[s].append(r)
            boot_parts.append(bootstrap_ratio(rng, cb, ct, cms, positive_only=True))
        seed_means = [float(np.mean(v)) for v in per_seed.values() if v]
        ci = percentile_ci(boot_parts)
        out.append(
            {
                "variant": variant,
                "pool": pool,
                "n_anchors": n_anchors,
                "teacher_ratio": float(np.mean(seed_means)) if seed_means else None,
                "std": float(np.std(seed_means, ddof=1)) if len(seed_means) > 1 else None,
                "ci95": ci,
                "seeds": sorted(per_seed),
                "tasks": sorted(t for t in per_task if t in pooled),
                "per_task": per_task,
                "missing": sorted(t for t in pooled if t not in per_task),
            }
        )
    return {"threshold": threshold, "tasks": info, "aggregate_tasks": pooled, "aggregates": out}
