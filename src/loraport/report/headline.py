"""The reference reports' headline, "best learned method minus the mean baseline", from a study's
per-task accuracies (pure functions over summary-shaped data; no torch, no I/O).

Definition (as the reference reports compute it): for each usable held-out task, the accuracy of
the best learned method on that task minus the accuracy of `mean` (the average of the target
anchors) on it; the headline is the mean of those differences over the usable tasks, in accuracy
points. "Learned" is every method variant but `mean` and the controls, at one (pool, N); the best
one is picked per task, so the figure is an upper bound of what picking a method would give.

    from loraport.report.headline import best_minus_mean_points
    h = best_minus_mean_points(summary["per_task_method"], summary["tasks"], n_anchors=8)
    h["points"], h["tasks"], h["per_task"]["code_paren"]["best"]
"""

from __future__ import annotations

from typing import Any

MEAN = "mean"


def cell_key(variant: str, pool: str, n_anchors: int) -> str:
    """The key of one (variant, pool, N) in a summary's per_task_method."""
    return f"{variant}|{pool}|N{n_anchors}"


def _split(key: str) -> tuple[str, str, int]:
    variant, pool, n = key.rsplit("|", 2)
    return variant, pool, int(n[1:])


def best_minus_mean_points(
    per_task_method: dict[str, dict[str, dict[str, Any]]],
    tasks: dict[str, dict[str, Any]],
    n_anchors: int,
    pool: str = "all",
) -> dict[str, Any] | None:
    """Mean over usable tasks of (best learned variant's accuracy − mean's accuracy), in points.

    per_task_method: task -> "variant|pool|N<n>" -> {"acc": accuracy averaged over seeds, "seeds"}.
    tasks: task -> {"usable": bool, "n": eval items, ...}. Tasks where `mean` or every learned
    variant is missing are left out (and listed under "skipped"). None when no task qualifies.
    Ties between learned variants go to the first name in sorted order.
    """
    per_task: dict[str, dict[str, Any]] = {}
    skipped = []
    seeds: set[int] = set()
    for task in sorted(t for t, row in tasks.items() if row.get("usable")):
        cells = per_task_method.get(task, {})
        mean = cells.get(cell_key(MEAN, pool, n_anchors))
        learned = {}
        for key, cell in sorted(cells.items()):
            variant, p, n = _split(key)
            if p == pool and n == n_anchors and variant != MEAN and ":" not in variant:
                learned[variant] = cell
        if mean is None or not learned:
            skipped.append(task)
            continue
        best = max(learned, key=lambda v: learned[v]["acc"])  # max keeps the first of equals
        per_task[task] = {
            "best": best,
            "best_acc": learned[best]["acc"],
            "mean_acc": mean["acc"],
            "points": 100.0 * (learned[best]["acc"] - mean["acc"]),
        }
        seeds.update(mean.get("seeds", []))
        seeds.update(learned[best].get("seeds", []))
    if not per_task:
        return None
    return {
        "definition": "mean over usable held-out tasks of (best learned method's accuracy − mean's "
        "accuracy) on that task, in accuracy points",
        "points": sum(r["points"] for r in per_task.values()) / len(per_task),
        "n_anchors": n_anchors,
        "pool": pool,
        "tasks": sorted(per_task),
        "n_items": {t: tasks[t].get("n") for t in sorted(per_task)},
        "seeds": sorted(seeds),
        "per_task": per_task,
        "skipped": skipped,
    }
