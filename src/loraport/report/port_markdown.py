"""The port study's report.md: headline, per-task table, method ladder, controls, teacher ceiling,
costs, Top-K selections and failure modes, from the summary and records port_report computed.

    text = port_markdown(meta, tasks, aggregates, usable, records, summary)
"""

from __future__ import annotations

import json
from collections import defaultdict
from typing import Any

from loraport.bench.answers import describe_flag
from loraport.bench.metrics import floors_at_chance, is_control
from loraport.report.choice import choice_section
from loraport.report.cost_curve import cost_curve_section
from loraport.report.tables import coverage, family_table, method_accuracies, task_order, variant_order
from loraport.report.teacher_ratio import two_ratios_section

DEGENERATE = -0.25
UNSTABLE = 0.15
PARSE_FAILURE = 0.05  # a share of unparseable outputs above this is listed under failure modes


def _fmt(x: float | None, digits: int = 3) -> str:
    return "—" if x is None else f"{x:.{digits}f}"


def _pm(row: dict[str, Any]) -> str:
    std = "n/a" if row["std"] is None else f"{row['std']:.3f}"
    return f"{_fmt(row['gap_recovered'])} ± {std}"


def _history(meta) -> str:
    """For a resumed run: the invocations run.json recorded and their summed wall time."""
    runs = meta.get("runs") or []
    if len(runs) <= 1:
        return ""
    return f" (this invocation; {len(runs)} invocations on this run folder, {meta.get('seconds_total')} s in all)"


def _reference_line(study) -> str:
    """Which base Y the gaps are measured from (the study's base_reference)."""
    if floors_at_chance(study):
        return (
            "Base Y reference: on choice tasks, at least chance (`base_reference: chance`): base Y that "
            "never names a parseable letter scores 0, so a port that learned only the answer format "
            "would otherwise be credited with the climb to chance. The main table shows both."
        )
    return "Base Y reference: its measured accuracy (`base_reference: measured`)."


def _base_cell(row) -> str:
    measured = row.get("base_y_measured")
    if measured is None or row["base_y"] is None or abs(measured - row["base_y"]) < 1e-12:
        return _fmt(row["base_y"])
    return f"{_fmt(row['base_y'])} (chance; measured {_fmt(measured)})"


def port_markdown(meta, tasks, agg, usable, records, summary) -> str:
    """report.md of a port study (see the module docstring)."""
    study = meta["study"]
    seeds = study["seeds"]
    n_eval = study["eval"]["n"]
    L: list[str] = [f"# Port study `{study['name']}`: {study['source']} → {study['target']}", ""]
    best = summary["best"]
    if best:
        ci = best["ci95"]
        L += [
            "## Headline",
            "",
            f"Best method: **{best['variant']}** (pool {best['pool']}, N={best['n_anchors']}) recovers "
            f"**{_pm(best)}** of the oracle's gain (mean ± std over {len(seeds)} seeds; 95% paired bootstrap CI "
            f"{_fmt(ci[0]) if ci else '—'} … {_fmt(ci[1]) if ci else '—'}) over {len(usable)} usable held-out tasks "
            f"({', '.join(usable)}; n = {n_eval} eval items each).",
            "",
            _reference_line(study),
            "",
        ]
        ref = summary["best_minus_mean_points"]
        if ref:
            L += [
                f"Best learned method minus the mean baseline: **{ref['points']:+.1f} accuracy points** "
                f"(as the reference reports define it: per usable task, the best learned method's accuracy "
                f"minus mean's, averaged over tasks; N={ref['n_anchors']}, pool {ref['pool']}, mean over seeds "
                f"{ref['seeds']}, tasks {', '.join(ref['tasks'])}, n = {n_eval} items each).",
                "",
            ]
        if summary["best_learned_minus_mean"] is not None:
            L += [
                f"Aggregate gap difference: the best learned method's gap_recovered minus mean's, at the same N "
                f"and pool: {summary['best_learned_minus_mean']:+.3f} (fraction of the oracle's gain).",
                "",
            ]
    else:
        L += ["## Headline", "", "No aggregate could be computed (no usable task or no method cell).", ""]
    variants = variant_order({r["variant"] for r in agg})
    n_top = max(study["n_anchors"])
    acc = method_accuracies(records)
    n_items = {t: row["n"] for t, row in tasks.items()}
    L += [
        "## Main table",
        "",
        f"Accuracy with the primary scorer, n = {n_eval} items per cell; methods at N={n_top}, pool `all`, mean over seeds {seeds}. "
        "Rows are grouped by domain; unusable tasks keep their accuracies, flagged, and stay out of every aggregate.",
        "",
    ]
    head = ["domain", "task", "base_Y", *variants, "oracle", "oracle − base (pts)", "usable", "teacher X"]
    L += ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for t in task_order(tasks):
        row = tasks[t]
        cells = []
        for v in variants:
            a = next(
                (r for r in agg if r["variant"] == v and r["pool"] == "all" and r["n_anchors"] == n_top), None
            )
            pt = a["per_task"].get(t) if a else None
            cell = acc.get((v, "all", n_top), {}).get(t)
            if pt is not None:
                cells.append(f"{pt['acc']:.3f} ({pt['gap_recovered']:+.2f})")
            else:
                cells.append("—" if cell is None else f"{cell['acc']:.3f}")
        gap = row["oracle_minus_base"]
        L.append(
            "| "
            + " | ".join(
                [
                    row["domain"],
                    t,
                    _base_cell(row),
                    *cells,
                    _fmt(row["oracle_y"]),
                    "—" if gap is None else f"{100 * gap:+.1f}",
                    "yes" if row["usable"] else f"**no** ({row['why_unusable']})",
                    _fmt(row["teacher"]),
                ]
            )
            + " |"
        )
    L += ["", "Method cells: accuracy (gap_recovered on that task; only usable tasks have one).", ""]
    cover = coverage(usable, n_items, seeds)
    L += ["## Method × N (aggregate gap_recovered, mean ± std over seeds, pool `all`)", ""]
    ns = sorted(study["n_anchors"])
    L += [
        "| method | " + " | ".join(f"N={n}" for n in ns) + " | 95% CI at N=" + str(n_top) + " |",
        "|---|" + "---|" * (len(ns) + 1),
    ]
    for v in variants:
        row = [
            next((r for r in agg if r["variant"] == v and r["pool"] == "all" and r["n_anchors"] == n), None)
            for n in ns
        ]
        top = row[-1]
        ci = top["ci95"] if top else None
        L.append(
            f"| {v} | "
            + " | ".join("—" if r is None else _pm(r) + _partial(r) for r in row)
            + f" | {'—' if not ci else f'{ci[0]:.3f} … {ci[1]:.3f}'} |"
        )
    L += [
        "",
        f"Each cell: per seed, the mean gap_recovered over the usable tasks; then mean ± std over seeds. {cover}",
    ]
    full = [n for n in ns if n == len(study["pools"].get("all", ()))]  # the table's pool only
    if full and len(seeds) > 1:
        L += [
            "",
            f"At N = {', '.join(map(str, full))} every anchor of the pool is used, so all seeds draw the same anchors and the std is 0 by construction.",
        ]
    topk = [r for r in agg if "[k=" in r["variant"] and r["pool"] == "all" and r["n_anchors"] == n_top]
    if topk:
        L += [
            "",
            f"## K sweep (N={n_top}, pool `all`)",
            "",
            "| variant | gap_recovered | 95% CI |",
            "|---|---|---|",
        ]
        for r in topk:
            ci = r["ci95"]
            L.append(f"| {r['variant']} | {_pm(r)} | {'—' if not ci else f'{ci[0]:.3f} … {ci[1]:.3f}'} |")
        L += ["", cover]
    L += _topk_selections(records, ["all", *sorted({r["pool"] for r in agg} - {"all"})])
    fam = family_table(tasks, acc, n_top)
    if fam:
        L += [
            "",
            f"## Per task: the best of each family (N={n_top}, pool `all`)",
            "",
            "Accuracy of the best variant of each family of methods (anchor maps: fitted on anchor pairs in weight "
            "space; behaviour: methods that run the models), picked per task by accuracy averaged over seeds "
            f"{seeds}; gap_recovered of the best learned variant, mean ± std over seeds; n = {n_eval} items per task.",
            "",
            *fam,
        ]
    pools = sorted({r["pool"] for r in agg} - {"all"})
    if pools:
        L += [
            "",
            "## Cross-domain anchor pools",
            "",
            "Gap recovered per held-out domain when anchors come from one domain only (largest N each pool allows).",
            "",
        ]
        domains = sorted({tasks[t]["domain"] for t in usable})
        L += ["| pool | method | " + " | ".join(domains) + " |", "|---|---|" + "---|" * len(domains)]
        for p in pools:
            for v in variants:
                rows = [r for r in agg if r["pool"] == p and r["variant"] == v]
                if not rows:
                    continue
                r = max(rows, key=lambda r: r["n_anchors"])
                vals = []
                for d in domains:
                    g = [x["gap_recovered"] for t, x in r["per_task"].items() if tasks[t]["domain"] == d]
                    vals.append(_fmt(sum(g) / len(g)) if g else "—")
                L.append(f"| {p} (N={r['n_anchors']}) | {v} | " + " | ".join(vals) + " |")
        sel = sorted(
            {
                (r["pool"], r["seed"], tuple(r["anchors"]))
                for r in records
                if r.get("condition") == "method" and r["pool"] != "all"
            }
        )
        L += [
            "",
            "Anchor selections (pool, seed: anchors): "
            + "; ".join(f"{p}, s{s}: {', '.join(a)}" for p, s, a in sel),
        ]
    L += _ladder(agg, summary, study, n_top, cover)
    L += ["", *two_ratios_section(summary["teacher_ratio"], agg, n_top, variants)]
    L += cost_curve_section(
        summary.get("cost_curve", []),
        (summary["teacher_ceiling"] or {}).get("gap_recovered"),
        summary.get("oracle_curve", []),
    )
    L += ["", "## Per-task winners", "", "| task | best method (N, pool) | gap_recovered |", "|---|---|---|"]
    for t in usable:
        cands = [(r["per_task"][t]["gap_recovered"], r) for r in agg if t in r["per_task"]]
        if cands:
            g, r = max(cands, key=lambda x: x[0])
            L.append(f"| {t} | {r['variant']} (N={r['n_anchors']}, {r['pool']}) | {g:+.3f} |")
    L += ["", "## Failure modes", ""]
    fm = []
    for t, row in tasks.items():
        if not row["usable"]:
            fm.append(f"- Excluded: {t} ({row['why_unusable']}; threshold {study['usable_threshold']}).")
    for r in agg:
        for t, pt in r["per_task"].items():
            if pt["gap_recovered"] <= DEGENERATE:
                fm.append(
                    f"- Degenerate: {r['variant']} on {t} (N={r['n_anchors']}, {r['pool']}): gap_recovered {pt['gap_recovered']:+.3f} ≤ {DEGENERATE}."
                )
        if r["std"] is not None and r["std"] > UNSTABLE:
            fm.append(
                f"- Seed instability: {r['variant']} (N={r['n_anchors']}, {r['pool']}): std {r['std']:.3f} > {UNSTABLE} over seeds {r['seeds']}."
            )
        if len(r["seeds"]) == 1:
            fm.append(
                f"- One seed only: {r['variant']} (N={r['n_anchors']}, {r['pool']}); its std is undefined."
            )
    for c in summary["controls"]:
        if not c["beats_control"]:
            fm.append(
                f"- Does not beat its {c['control']} control: {c['of']} (N={c['n_anchors']}, {c['pool']}): "
                f"{c['method_gap']:+.3f} vs {c['control_gap']:+.3f} on {len(c['tasks'])} tasks."
            )
    for name in summary["missing_cells"]:
        rec = next(r for r in records if r["name"] == name)
        fm.append(f"- Missing cell: {name} ({rec['missing']}).")
    for reason in meta.get("skipped", []):
        fm.append(f"- Not planned: {reason}.")
    choice = summary.get("choice") or {}
    for f in choice.get("flagged", []):
        fm.append(describe_flag(f, choice["tasks"][f["task"]]["chance"]))
    parse_table = _parse_failure_table(summary["parse_failures"])
    if parse_table:
        fm.append(
            f"- Parse failures above {PARSE_FAILURE:.0%} of outputs (no parseable answer): "
            f"{len(parse_table) - 2} conditions, in the table below."
        )
    L += fm or ["- None detected."]
    if parse_table:
        L += ["", "Share of outputs with no parseable answer (the scorer the metrics use; — : ≤ 5%):", ""]
        L += parse_table
    L += choice_section(choice)
    L += [
        "",
        "## Provenance",
        "",
        f"loraport {meta['loraport_version']}, Python {meta['python']}, executor {meta['executor']} on {meta.get('device') or 'cpu'}, {meta['seconds']} s wall{_history(meta)}; cells {meta['cells']}, computed this run {meta['computed']}. Recipe: `{json.dumps(study['recipe'])}`.{_sources(study)}",
        "",
    ]
    L += [
        "Figures: `figures/gap_vs_n.png`, `figures/k_sweep.png`, `figures/per_task.png`, `figures/cost_quality.png` "
        "(the Pareto front of quality against cost marked). `report.html` has these tables (sortable), the figures "
        "and sample items of every task.",
        "",
    ]
    return "\n".join(L)


def _sources(study: dict[str, Any]) -> str:
    """Where the source adapters came from, when not trained by this study's runs."""
    if study.get("source_adapters") != "shipped":
        return ""
    return (
        " Source adapters: the package's own (`source_adapters: shipped`: loraport.zoo.shipped_adapters, "
        "copied and checked by sha256 where base, task and recipe match; any other trained here)."
    )


def _topk_selections(records: list[dict[str, Any]], pools: list[str]) -> list[str]:
    """Which anchors each Top-K port chose, per held-out task and variant (seed 0 if run, else the
    lowest; each pool at its largest N); [] when no record has a Top-K choice."""
    chosen = [
        r
        for r in records
        if r.get("topk_selected") and r.get("pool") in pools and not is_control(r.get("variant", ""))
    ]
    if not chosen:
        return []
    seed = min(r["seed"] for r in chosen)
    largest = {p: max((r["n_anchors"] for r in chosen if r["pool"] == p), default=0) for p in pools}
    cells: dict[tuple[str, str], dict[str, list[str]]] = defaultdict(dict)
    for r in chosen:
        if r["seed"] == seed and r["n_anchors"] == largest[r["pool"]]:
            cells[(r["task"], r["variant"])][r["pool"]] = r["topk_selected"]
    shown = [p for p in pools if largest[p]]
    out = [
        "",
        "## Top-K selection log",
        "",
        f"The K anchors each Top-K port chose (seed {seed}; each pool at its largest N):",
        "",
        "| task | variant | " + " | ".join(f"{p} (N={largest[p]})" for p in shown) + " |",
        "|---|---|" + "---|" * len(shown),
    ]
    for (task, variant), by_pool in sorted(cells.items()):
        out.append(
            f"| {task} | {variant} | "
            + " | ".join(", ".join(by_pool.get(p, [])) or "—" for p in shown)
            + " |"
        )
    return out


def _partial(row: dict[str, Any]) -> str:
    """A note for an aggregate that lacks some usable tasks (missing cells)."""
    n = len(row["usable_tasks"])
    return f" ({n} of {n + len(row['missing'])} tasks)" if row["missing"] else ""


def _parse_failure_table(rates: dict[str, dict[str, float]]) -> list[str]:
    """A Markdown table of the conditions with a parse-failure share above PARSE_FAILURE for some
    scorer (controls last), one column per scorer; [] when there are none."""
    rows = {k: v for k, v in rates.items() if any(r > PARSE_FAILURE for r in v.values())}
    if not rows:
        return []
    scorers = sorted({s for v in rows.values() for s in v})
    out = ["| condition | " + " | ".join(scorers) + " |", "|---|" + "---|" * len(scorers)]
    for kind in sorted(rows, key=lambda k: (is_control(k), k)):
        cells = [rows[kind].get(s) for s in scorers]
        shown = ["" if c is None else ("—" if c <= PARSE_FAILURE else f"{100 * c:.1f}%") for c in cells]
        out.append(f"| {kind} | " + " | ".join(shown) + " |")
    return out


def _ladder(agg, summary, study, n_top, cover: str) -> list[str]:
    """What each method needs and costs next to what it recovers; then the controls."""
    cost = summary["costs"]
    ref = cost["oracle"]
    by = {(c["variant"], c["pool"], c["n_anchors"]): c for c in cost["methods"]}
    L = [
        "",
        f"## What each method needs and costs (N={n_top}, pool `all`)",
        "",
        "Cost per port, mean over its cells: wall seconds on this machine (including the teacher's "
        "generation and any init port it starts from; not the anchors' own training, which every "
        "anchor method shares), optimiser steps, generated tokens. "
        + (
            f"Reference: training an oracle took {ref['seconds']:.1f} s and {ref['steps']:.0f} steps on labels (mean over tasks)."
            if ref
            else "No oracle training cost was recorded."
        ),
        "",
        "| method | data it saw | gap_recovered | 95% CI | seconds | × oracle time | steps | generated tokens |",
        "|---|---|---|---|---|---|---|---|",
    ]
    rows = [r for r in agg if r["pool"] == "all" and r["n_anchors"] == n_top]
    for r in sorted(rows, key=lambda r: -(r["gap_recovered"] or -9)):
        c = by.get((r["variant"], "all", n_top))
        ci = r["ci95"]
        L.append(
            f"| {r['variant']} | {', '.join(c['data']) if c else '—'} | {_pm(r)} | "
            f"{'—' if not ci else f'{ci[0]:.3f} … {ci[1]:.3f}'} | "
            + (
                f"{c['seconds']:.1f} | {_fmt(c['relative_seconds'], 2)} | {c['steps']:.0f} | {c['generated_tokens']:.0f} |"
                if c
                else "— | — | — | — |"
            )
        )
    ceiling = summary["teacher_ceiling"]
    L += [
        "",
        cover,
        "",
        "## Controls",
        "",
        "Teacher ceiling (X + X adapter's own accuracy, as gap_recovered on the usable tasks): "
        + (f"**{ceiling['gap_recovered']:.3f}**." if ceiling else "—."),
        "A label-free method learns from the teacher's answers, so this is roughly what it can reach.",
        "",
    ]
    if summary["controls"]:
        L += [
            "| method | control | N | tasks | method gap | control gap | beats it |",
            "|---|---|---|---|---|---|---|",
        ]
        for c in summary["controls"]:
            if c["pool"] != "all":
                continue
            L.append(
                f"| {c['of']} | {c['control']} | {c['n_anchors']} | {len(c['tasks'])} | {c['method_gap']:+.3f} | "
                f"{c['control_gap']:+.3f} | {'yes' if c['beats_control'] else '**no**'} |"
            )
        L += [
            "",
            "shuffled: the method ported another held-out task's X adapter (the next one in the study's list "
            "from another domain, so it does not share the task's answer format); "
            "random: a random direction with the same per-module norms as the method's port.",
        ]
    elif summary["control_aggregates"]:
        L.append("Controls were run, but no usable task gives a method-versus-control comparison.")
    else:
        L.append("No controls were planned (study field `controls`).")
    if summary["shuffled_sources"]:
        pairs = ", ".join(f"{t} ← {o}" for t, o in sorted(summary["shuffled_sources"].items()))
        L += ["", f"Shuffled sources (task ← the X adapter its controls ported): {pairs}."]
    return L
