"""The port study's report (its StudyKind.report, bench/port_study.py): summary.json, figures/,
report.md and report.html of a port study's run, from its stored records alone (no torch).

    summary = port_report(Path("runs/demo"), meta, records)   # what build_report calls for kind port

Metrics come from bench/metrics.py (gap recovered, paired bootstrap, controls, costs) and the
teacher ratio; the Markdown is report/port_markdown.py.
"""

from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path
from typing import Any

from loraport.bench.answers import choice_summary
from loraport.bench.cost_curve import cost_curves, oracle_curve
from loraport.bench.metrics import (
    aggregate,
    control_rows,
    costs,
    floors_at_chance,
    is_control,
    parse_failures,
    task_rows,
    teacher_ceiling,
)
from loraport.bench.teacher_ratio import teacher_ratios
from loraport.io import atomic_file
from loraport.report.headline import best_minus_mean_points
from loraport.report.port_markdown import port_markdown


def port_report(run_dir: Path, meta: dict[str, Any], records: list[dict[str, Any]]) -> dict[str, Any]:
    """The port study's report (its StudyKind.report, see bench/port_study.py): per-task
    baselines, method aggregates (gap recovered), controls, teacher ceiling, costs and failure
    modes."""
    study = meta["study"]
    threshold = study["usable_threshold"]
    floor = floors_at_chance(study)
    tasks = task_rows(records, threshold, floor)
    full = aggregate(records, threshold, floor=floor)
    agg = [r for r in full if not is_control(r["variant"])]
    usable = [t for t, r in tasks.items() if r["usable"]]
    summary = _summary(meta, tasks, agg, usable, records)
    summary["controls"] = control_rows(full)
    summary["control_aggregates"] = [
        {k: v for k, v in r.items() if k != "per_task"} for r in full if is_control(r["variant"])
    ]
    summary["teacher_ceiling"] = teacher_ceiling(tasks)
    summary["teacher_ratio"] = teacher_ratios(records, tasks, threshold, floor=floor)
    # which X adapter each task's shuffled-source controls ported
    summary["shuffled_sources"] = {
        r["task"]: r["shuffled_from"] for r in records if r.get("control") == "shuffled"
    }
    summary["costs"] = costs(records)
    summary["cost_curve"] = cost_curves(agg, summary["costs"], summary["teacher_ratio"])
    summary["oracle_curve"] = oracle_curve(records, threshold, floor)
    with atomic_file(run_dir / "summary.json") as fh:
        json.dump(summary, fh, indent=1, sort_keys=True)
    from loraport.report.cost_curve import write_cost_curve_figure
    from loraport.report.figures import write_cost_figure, write_figures

    write_figures(run_dir / "figures", agg, tasks)
    write_cost_figure(run_dir / "figures", agg, summary["costs"])
    teacher_gap = (summary["teacher_ceiling"] or {}).get("gap_recovered")
    write_cost_curve_figure(run_dir / "figures", summary["cost_curve"], teacher_gap, summary["oracle_curve"])
    markdown = port_markdown(meta, tasks, agg, usable, records, summary)
    with atomic_file(run_dir / "report.md") as fh:
        fh.write(markdown)
    from loraport.report.html import write_html

    write_html(run_dir, markdown, records, tasks, max(meta["study"]["n_anchors"]))
    return summary


def _best(agg: list[dict[str, Any]], pool: str = "all") -> dict[str, Any] | None:
    rows = [r for r in agg if r["pool"] == pool and r["gap_recovered"] is not None]
    if not rows:
        return None
    n_max = max(r["n_anchors"] for r in rows)
    top = [r for r in rows if r["n_anchors"] == n_max]
    return max(top, key=lambda r: r["gap_recovered"])


def _summary(meta, tasks, agg, usable, records) -> dict[str, Any]:
    best = _best(agg)
    mean = next(
        (
            r
            for r in agg
            if r["method"] == "mean"
            and best
            and r["n_anchors"] == best["n_anchors"]
            and r["pool"] == best["pool"]
        ),
        None,
    )
    learned = [
        r
        for r in agg
        if r["method"] != "mean"
        and best
        and r["n_anchors"] == best["n_anchors"]
        and r["pool"] == best["pool"]
        and r["gap_recovered"] is not None
    ]
    best_learned = max(learned, key=lambda r: r["gap_recovered"]) if learned else None
    per_task_method = defaultdict(dict)
    for r in agg:
        for t, v in r["per_task"].items():
            per_task_method[t][f"{r['variant']}|{r['pool']}|N{r['n_anchors']}"] = v
    return {
        "study": meta["study"]["name"],
        "provenance": {
            k: meta.get(k)
            for k in (
                "loraport_version",
                "python",
                "torch",
                "bases",
                "executor",
                "device",
                "seconds",
                "cells",
                "computed",
                "skipped",
            )
        }
        | {k: meta[k] for k in ("runs", "seconds_total") if k in meta}  # a resumed run's invocations
        | {"study": meta["study"]},
        "usable_threshold": meta["study"]["usable_threshold"],
        "usable_tasks": usable,
        "tasks": tasks,
        "aggregates": [{k: v for k, v in r.items() if k != "per_task"} for r in agg],
        "per_task_method": per_task_method,
        "best": best
        and {k: best[k] for k in ("variant", "pool", "n_anchors", "gap_recovered", "std", "ci95")},
        # the aggregate gap_recovered of the best learned variant minus mean's (fraction of the
        # oracle's gain); the reference's headline, in accuracy points, is best_minus_mean_points
        "best_learned_minus_mean": None
        if not (best_learned and mean and mean["gap_recovered"] is not None)
        else best_learned["gap_recovered"] - mean["gap_recovered"],
        "best_minus_mean_points": best_minus_mean_points(
            per_task_method, tasks, max(meta["study"]["n_anchors"])
        ),
        "parse_failures": parse_failures(records),
        "choice": choice_summary(records),
        "missing_cells": sorted(r["name"] for r in records if "missing" in r),
    }
