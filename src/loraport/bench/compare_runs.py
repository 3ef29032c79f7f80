"""Do two runs of one study agree? The same study run on two machines (or two CPU kernel paths, or CPU
and GPU) gives different floats; a claim made from one run holds only if the other reproduces it.

    a, b = json.loads(Path("runA/summary.json").read_text()), json.loads(Path("runB/summary.json").read_text())
    cmp = compare_runs(a, b)          # per method aggregate: both estimates, both CIs, agreement
    print("\\n".join(render(cmp, "native", "default")))

A method's aggregate gap_recovered *reproduces* when each run's estimate lies inside the other run's
95% CI. When the two runs' usable held-out tasks differ, a run's own aggregates average different
tasks; `on_shared_tasks` recomputes both from their records over the tasks usable in both, so the
methods are compared on the same tasks (the task table still says which task's usability moved).

A held-out task is *robustly usable* when, in both runs, its oracle is at least `MIN_POINTS`
accuracy points above base Y and (for a choice task) above chance, and the teacher (X + X adapter)
scores above base Y.
"""

from __future__ import annotations

from typing import Any

__all__ = ["MIN_POINTS", "compare_runs", "on_shared_tasks", "render"]

#: The least oracle − base (and oracle − chance, for choice tasks) a robustly usable task shows, in
#: accuracy points.
MIN_POINTS = 15.0


def on_shared_tasks(
    a: dict[str, Any],
    b: dict[str, Any],
    records_a: list[dict[str, Any]],
    records_b: list[dict[str, Any]],
    study: dict[str, Any],
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Both summaries with their method aggregates recomputed from their records over the held-out
    tasks usable in both runs (`aggregated_over` names them), by the study's (its spec as a dict,
    as run.json keeps it) usable threshold and base reference."""
    from loraport.bench.metrics import aggregate, floors_at_chance, is_control, task_rows

    threshold, floor = study["usable_threshold"], floors_at_chance(study)
    usable = [
        {t for t, r in task_rows(recs, threshold, floor).items() if r["usable"]}
        for recs in (records_a, records_b)
    ]
    shared = sorted(usable[0] & usable[1])

    def redo(summary: dict[str, Any], records: list[dict[str, Any]]) -> dict[str, Any]:
        aggs = aggregate(records, threshold, floor=floor, only=shared)
        aggs = [r for r in aggs if not is_control(r["variant"])]
        return {**summary, "aggregates": aggs, "aggregated_over": shared}

    return redo(a, records_a), redo(b, records_b)


def _aggregates(summary: dict[str, Any]) -> dict[tuple, dict[str, Any]]:
    return {(a["variant"], a["n_anchors"], a["pool"]): a for a in summary.get("aggregates", [])}


def _inside(x: float, ci: list[float] | None) -> bool:
    return ci is not None and ci[0] - 1e-12 <= x <= ci[1] + 1e-12


def _task_check(t: dict[str, Any], chance: float | None) -> dict[str, Any]:
    over_base = 100 * (t["oracle_y"] - t["base_y"])
    over_chance = None if chance is None else 100 * (t["oracle_y"] - chance)
    teacher = t.get("teacher")
    teacher_up = None if teacher is None else 100 * (teacher - t["base_y"])
    ok = over_base >= MIN_POINTS and (over_chance is None or over_chance >= MIN_POINTS)
    ok = ok and (teacher_up is None or teacher_up > 0)
    return {
        "oracle_minus_base": round(over_base, 1),
        "oracle_minus_chance": None if over_chance is None else round(over_chance, 1),
        "teacher_minus_base": None if teacher_up is None else round(teacher_up, 1),
        "ok": ok,
    }


def _study_name(summary: dict[str, Any]) -> str | None:
    """A summary's study name: a port summary stores it as a string, older tests as {"name": ...}."""
    study = summary.get("study")
    return study if isinstance(study, str) or study is None else study.get("name")


def compare_runs(a: dict[str, Any], b: dict[str, Any]) -> dict[str, Any]:
    """Method aggregates and held-out tasks of two summaries of the same study, side by side."""
    if _study_name(a) != _study_name(b):
        raise ValueError(f"summaries of different studies: {_study_name(a)!r} vs {_study_name(b)!r}")
    agg_a, agg_b = _aggregates(a), _aggregates(b)
    methods = []
    for key in sorted(set(agg_a) & set(agg_b)):
        x, y = agg_a[key], agg_b[key]
        if x["gap_recovered"] is None or y["gap_recovered"] is None:
            continue
        methods.append(
            {
                "variant": key[0],
                "n_anchors": key[1],
                "pool": key[2],
                "a": x["gap_recovered"],
                "a_ci": x.get("ci95"),
                "b": y["gap_recovered"],
                "b_ci": y.get("ci95"),
                "diff": y["gap_recovered"] - x["gap_recovered"],
                "reproduces": _inside(x["gap_recovered"], y.get("ci95"))
                and _inside(y["gap_recovered"], x.get("ci95")),
            }
        )
    chance_a = {t: v["chance"] for t, v in (a.get("choice") or {}).get("tasks", {}).items()}
    chance_b = {t: v["chance"] for t, v in (b.get("choice") or {}).get("tasks", {}).items()}
    tasks = {}
    for t in sorted(set(a.get("tasks", {})) & set(b.get("tasks", {}))):
        ca, cb = _task_check(a["tasks"][t], chance_a.get(t)), _task_check(b["tasks"][t], chance_b.get(t))
        tasks[t] = {"a": ca, "b": cb, "ok": ca["ok"] and cb["ok"]}
    return {
        "study": _study_name(a),
        "aggregated_over": a.get("aggregated_over"),
        "methods": methods,
        "all_reproduce": all(m["reproduces"] for m in methods),
        "tasks": tasks,
        "all_tasks_ok": all(t["ok"] for t in tasks.values()),
    }


def _ci(ci: list[float] | None) -> str:
    return "—" if ci is None else f"{ci[0]:.3f} … {ci[1]:.3f}"


def render(cmp: dict[str, Any], name_a: str, name_b: str) -> list[str]:
    """Markdown tables of a comparison (runs named `name_a`, `name_b`)."""
    L = [f"### {cmp['study']}: {name_a} vs {name_b}", ""]
    if cmp.get("aggregated_over") is not None:
        shared = ", ".join(cmp["aggregated_over"]) or "none"
        L += [f"Aggregate gap_recovered over the held-out tasks usable in both runs: {shared}.", ""]
    L += [
        f"| method | N | pool | {name_a} | 95% CI | {name_b} | 95% CI | difference | reproduces |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for m in cmp["methods"]:
        L.append(
            f"| {m['variant']} | {m['n_anchors']} | {m['pool']} | {m['a']:.3f} | {_ci(m['a_ci'])} | "
            f"{m['b']:.3f} | {_ci(m['b_ci'])} | {m['diff']:+.3f} | {'yes' if m['reproduces'] else '**no**'} |"
        )
    L += [
        "",
        f"Held-out tasks (accuracy points; robustly usable: oracle ≥ {MIN_POINTS:.0f} over base and over "
        "chance, teacher above base, in both runs):",
        "",
        f"| task | oracle − base ({name_a} / {name_b}) | oracle − chance | teacher − base | robust |",
        "|---|---|---|---|---|",
    ]

    def pair(t: dict[str, Any], key: str) -> str:
        vals = [t["a"][key], t["b"][key]]
        return "—" if vals == [None, None] else " / ".join("—" if v is None else f"{v:+.1f}" for v in vals)

    for name, t in cmp["tasks"].items():
        L.append(
            f"| {name} | {pair(t, 'oracle_minus_base')} | {pair(t, 'oracle_minus_chance')} | "
            f"{pair(t, 'teacher_minus_base')} | {'yes' if t['ok'] else '**no**'} |"
        )
    L += [
        "",
        f"Every method reproduces: {'yes' if cmp['all_reproduce'] else 'no'}. "
        f"Every held-out task robustly usable: {'yes' if cmp['all_tasks_ok'] else 'no'}.",
    ]
    return L
