"""Per-task tables of the port study's report that need every task's accuracy, usable or not, and
each seed's (pure functions over stored records; no torch).

    acc = method_accuracies(records)             # (variant, pool, N) -> task -> {acc, per_seed}
    lines = family_table(tasks, acc, n_anchors=8)   # best of each family per task, as Markdown
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

import numpy as np

from loraport.bench.metrics import accuracy, gap_recovered, is_control

#: Families of methods for the per-task table: the baseline, maps fitted on anchor pairs in weight
#: space, and methods that run the models (align, spanfit, distill).
BEHAVIOUR = ("align", "spanfit", "distill")
FAMILIES = ("anchor map", "behaviour")


def family(method: str) -> str:
    """'baseline' for mean, 'behaviour' for methods that run the models, else 'anchor map'."""
    if method == "mean":
        return "baseline"
    return "behaviour" if method in BEHAVIOUR else "anchor map"


def method_accuracies(records: list[dict[str, Any]]) -> dict[tuple, dict[str, dict[str, Any]]]:
    """Accuracy (primary scorer) of every method cell on every task, usable or not, averaged over
    seeds, with each seed's own: (variant, pool, N) -> task -> {"acc", "per_seed": {seed: acc}}.
    Controls are left out."""
    out: dict[tuple, dict[str, dict[str, Any]]] = defaultdict(dict)
    for r in records:
        if r.get("condition") != "method" or is_control(r["variant"]):
            continue
        a = accuracy(r)
        if a is None:
            continue
        cell = out[(r["variant"], r["pool"], r["n_anchors"])].setdefault(r["task"], {"per_seed": {}})
        cell["per_seed"][r["seed"]] = a
    for by_task in out.values():
        for cell in by_task.values():
            cell["acc"] = float(np.mean(list(cell["per_seed"].values())))
    return dict(out)


def task_order(tasks: dict[str, dict[str, Any]]) -> list[str]:
    """Tasks grouped by domain, then by name."""
    return sorted(tasks, key=lambda t: (tasks[t]["domain"], t))


def variant_order(variants: set[str] | list[str]) -> list[str]:
    """`mean` first, then the rest by name."""
    return sorted(variants, key=lambda v: (v != "mean", v))


def coverage(tasks: list[str], n_items: dict[str, int], seeds: list[int]) -> str:
    """One sentence saying what an aggregate covers: its tasks, their items and the seeds."""
    if not tasks:
        return f"Covers no usable task (seeds {list(seeds)})."
    ns = sorted({n_items.get(t) for t in tasks} - {None})
    items = f"n = {ns[0]} items each" if len(ns) == 1 else f"n = {'/'.join(map(str, ns))} items"
    noun = "task" if len(tasks) == 1 else "tasks"
    return f"Covers {len(tasks)} usable {noun} ({', '.join(tasks)}; {items}) and seeds {list(seeds)}."


def _fmt_gap(gaps: list[float]) -> str:
    if not gaps:
        return "—"
    std = f"{np.std(gaps, ddof=1):.3f}" if len(gaps) > 1 else "n/a"
    return f"{np.mean(gaps):+.3f} ± {std}"


def family_table(
    tasks: dict[str, dict[str, Any]],
    acc: dict[tuple, dict[str, dict[str, Any]]],
    n_anchors: int,
    pool: str = "all",
) -> list[str]:
    """Per task at one N: base Y, mean, the best variant of each family, the best learned variant,
    the oracle, that best variant's gap_recovered (mean ± std over seeds) and which family won.
    The best is by accuracy averaged over seeds; unusable tasks show accuracies and no gap."""
    cells = {v: by_task for (v, p, n), by_task in acc.items() if p == pool and n == n_anchors}
    if not any(v != "mean" for v in cells):
        return []
    fams = [f for f in FAMILIES if any(family(v.split("[")[0]) == f for v in cells)]
    head = ["domain", "task", "base_Y", "mean", *(f"best {f}" for f in fams), "best learned", "oracle"]
    head += ["gap_recovered", "winner"]
    out = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for t in task_order(tasks):
        row = tasks[t]

        def best(pred, task=t) -> tuple[str, dict[str, Any]] | None:
            got = [(v, c[task]) for v, c in sorted(cells.items()) if task in c and pred(v)]
            return max(got, key=lambda x: x[1]["acc"]) if got else None

        def show(b) -> str:
            return "—" if b is None else f"{b[1]['acc']:.3f} ({b[0]})"

        mean = cells.get("mean", {}).get(t)
        per_fam = [best(lambda v, f=f: family(v.split("[")[0]) == f) for f in fams]
        learned = best(lambda v: v != "mean")
        gaps = []
        if learned and row["usable"]:
            gaps = [
                g
                for a in learned[1]["per_seed"].values()
                if (g := gap_recovered(a, row["base_y"], row["oracle_y"])) is not None
            ]
        winner = "—" if learned is None else f"{family(learned[0].split('[')[0])}: {learned[0]}"
        out.append(
            "| "
            + " | ".join(
                [
                    row["domain"],
                    t if row["usable"] else f"{t} (unusable)",
                    "—" if row["base_y"] is None else f"{row['base_y']:.3f}",
                    "—" if mean is None else f"{mean['acc']:.3f}",
                    *map(show, per_fam),
                    show(learned),
                    "—" if row["oracle_y"] is None else f"{row['oracle_y']:.3f}",
                    _fmt_gap(gaps) if row["usable"] else "— (unusable)",
                    winner,
                ]
            )
            + " |"
        )
    return out
