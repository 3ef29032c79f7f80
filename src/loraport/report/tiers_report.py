"""The tiers study's report (bench/tiers_study.py): summary.json and report.md from the run's
stored records alone (no torch).

Sections: accuracy and pre-Δ / post-Δ / lift per tier with 95% CIs; the shape of each across the
tiers (stated only where step CIs support it); port quality per tier (accuracy, gap_recovered);
scorer agreement per condition (every alternate scorer against the primary: 2×2 table, κ, PABAK,
AC1, McNemar, compliance) and the headline shift (how far pre-Δ and post-Δ move under the other
scorer); a model judge (the study's `judge:`) against each extractor on the items it judged;
and a threats list written from the run (seeds, judge, n per cell, missing cells).
"""

from __future__ import annotations

import itertools
import json
from pathlib import Path
from typing import Any

from loraport.bench.tiers_metrics import index, port_rows, port_shape, procedure_rows, shape_of
from loraport.io import atomic_file
from loraport.report.fmt import delta_ci as _ci
from loraport.report.fmt import num as _f
from loraport.scorers.agreement import agreement_by, headline_shifts, table_stats


def group(record: dict[str, Any]) -> str:
    """The agreement group of a record: tier, stage, prompt (ports: with their variant)."""
    who = record["stage"] if record["stage"] != "port" else f"port {record['variant']}"
    return f"{short(record['tier'])} · {who} · {record['prompt']}"


def short(tier: str) -> str:
    """A tier as tables show it: a zoo name as it is, a folder by its last part."""
    return Path(tier).name


def on_judged_items(record: dict[str, Any], scorer: str, judge: str) -> dict[str, Any]:
    """`record` with only `scorer` and `judge`, both on the items the judge scored (a subset)."""
    col, jcol = record["scorers"][scorer], record["scorers"][judge]
    keep = set(jcol["ids"])
    rows = [k for k, i in enumerate(col["ids"]) if i in keep]
    sub = {f: [col[f][k] for k in rows] for f in ("ids", "correct", "invalid") if col.get(f)}
    return {**record, "scorers": {scorer: sub, judge: jcol}}


def on_common_items(record: dict[str, Any], a: str, b: str) -> dict[str, Any]:
    """`record` with only scorers `a` and `b`, each on the items both scored (two judges may have
    judged different subsets)."""
    cols = record["scorers"][a], record["scorers"][b]
    both = set(cols[0]["ids"]) & set(cols[1]["ids"])
    out = {}
    for name, col in zip((a, b), cols, strict=True):
        rows = [k for k, i in enumerate(col["ids"]) if i in both]
        out[name] = {f: [col[f][k] for k in rows] for f in ("ids", "correct", "invalid") if col.get(f)}
    return {**record, "scorers": out}


def agreement_section(records: list[dict[str, Any]], tiers: list[str]) -> list[dict[str, Any]]:
    """Per alternate scorer (A) against the primary (B), and per extractor (A) against a model
    judge (B) on the items it judged: the agreement table per group and the headline shift of
    pre-Δ and post-Δ per tier."""
    done = [r for r in records if "scorers" in r]
    if not done:
        return []
    primary = done[0]["primary"]
    shared = set.intersection(*(set(r["scorers"]) for r in done))
    judges = sorted(s for s in shared if s.startswith("judge:"))
    extractors = sorted(shared - set(judges))
    pairs = [(alt, primary, done) for alt in extractors if alt != primary]
    for judge in judges:
        pairs += [(e, judge, [on_judged_items(r, e, judge) for r in done]) for e in extractors]
    for first, second in itertools.combinations(judges, 2):  # a second judge family validates the first
        pairs.append((first, second, [on_common_items(r, first, second) for r in done]))
    out = []
    for alt, primary, rows in pairs:
        table = agreement_by(rows, alt, primary, by=group)
        contrasts = [
            (f"{short(t)} · {s} · procedure", f"{short(t)} · {s} · plain")
            for t in tiers
            for s in ("base", "sft")
            if f"{short(t)} · {s} · procedure" in table and f"{short(t)} · {s} · plain" in table
        ]
        out.append(
            {
                "a": alt,
                "b": primary,
                "groups": {g: ag.as_dict() for g, ag in table.items()},
                "headline": headline_shifts(table, contrasts),
            }
        )
    return out


def threats(study: dict[str, Any], summary: dict[str, Any], records: list[dict[str, Any]]) -> list[str]:
    """What limits the run's claims, from the study and the numbers."""
    out = []
    seed = study.get("recipe", {}).get("seed", 0)
    out.append(
        f"Single training seed: each tier's SFT adapter (and X's) is one run (recipe seed {seed}); "
        "every CI covers the sampling of eval items, not training noise."
    )
    if len(study.get("seeds", [0])) == 1 and study.get("methods"):
        out.append("Ports: one anchor-subset seed per N.")
    scorers = sorted({s for r in records if "scorers" in r for s in r["scorers"]})
    judges = [s for s in scorers if s.startswith("judge:")]
    if judges:
        n_judged = {j: max(len(r["scorers"][j]["ids"]) for r in records if "scorers" in r) for j in judges}
        out.append(
            "Judge strength: "
            + "; ".join(f"{j} judged only the first {n} items of each cell" for j, n in n_judged.items())
            + (
                ". It is a small model; its agreement rows say how weak it is."
                if len(judges) == 1
                else ". Each is a small model; their agreement rows (with the extractors and with each "
                "other) say how weak each is."
            )
        )
    else:
        out.append(
            "No model judge in this run: agreement is between deterministic extractors only "
            f"({', '.join(scorers)}), which share the failure of reading a number that is not the answer."
        )
    per_task = {}
    for r in records:
        if "scorers" in r:
            per_task[r["task"]] = len(r["scorers"][r["primary"]]["ids"])
    n = sum(per_task.values())
    widths = [
        row[w]["ci"][1] - row[w]["ci"][0]
        for row in summary["procedure"]
        for w in ("lift",)
        if row[w] is not None
    ]
    width = f"; the widest lift CI spans {max(widths):.3f}" if widths else ""
    out.append(f"n per cell: {n} eval items ({', '.join(f'{t}: {k}' for t, k in per_task.items())}){width}.")
    out.append(
        "Tiers are separate pretraining runs: a pattern across them confounds capacity with each "
        "run's seed and pretraining length."
    )
    unusable = sorted({r["tier"] for r in summary["ports"] if not r["usable"]})
    if unusable:
        out.append(f"No usable gap (oracle − base below the threshold) on: {', '.join(unusable)}.")
    if summary["missing"]:
        out.append(f"{len(summary['missing'])} conditions have no records (failed or not computed).")
    return out


def tiers_report(run_dir: Path, meta: dict[str, Any], records: list[dict[str, Any]]) -> dict[str, Any]:
    """Write summary.json and report.md for a tiers run; returns the summary."""
    study = meta["study"]
    tiers = list(study["tiers"])
    idx = index(records)
    summary: dict[str, Any] = {
        "kind": "tiers",
        "study": study["name"],
        "tiers": tiers,
        "procedure": procedure_rows(idx, tiers),
        "shapes": [shape_of(idx, tiers, w) for w in ("pre", "post", "lift")],
        "ports": port_rows(idx, tiers, study.get("usable_threshold", 0.03)),
        "missing": sorted(r["name"] for r in records if "missing" in r),
    }
    variants = sorted({r["variant"] for r in summary["ports"]})
    summary["shapes"] += [port_shape(idx, tiers, v) for v in variants]
    summary["agreement"] = agreement_section(records, tiers)
    summary["threats"] = threats(study, summary, records)
    with atomic_file(run_dir / "summary.json") as fh:
        json.dump(summary, fh, indent=1, sort_keys=True)
    from loraport.report.tiers_figures import write_tiers_figure

    figures = write_tiers_figure(run_dir / "figures", summary)
    with atomic_file(run_dir / "report.md") as fh:
        fh.write(markdown(meta, summary, figures))
    return summary


def markdown(meta: dict[str, Any], summary: dict[str, Any], figures: list[str] = ()) -> str:
    study = meta["study"]
    out = [
        f"# Capacity tiers: {study['name']}",
        "",
        f"Tiers (smallest first): {', '.join(map(short, summary['tiers']))}; source "
        f"{short(study['source'])}; tasks "
        f"{', '.join(study['heldout'])}; {study['eval']['n']} eval items per task. Accuracy of the "
        "primary scorer; Δ and CIs are paired over items (95% bootstrap, items resampled within "
        "each task).",
        "",
        "## Procedure prompts before and after SFT",
        "",
        "pre-Δ = procedure − plain on the base; post-Δ the same with the tier's SFT adapter (trained "
        "with the procedure in the prompt); lift = post-Δ − pre-Δ.",
        "",
        *procedure_table(summary),
    ]
    if "tiers.png" in figures:
        out += ["", "![pre-Δ, post-Δ, lift and port accuracy per tier](figures/tiers.png)"]
    out += ["", "## Shape across tiers", "", "A step counts only where its paired CI excludes zero.", ""]
    out += [f"- {s['of']}: **{s['shape']}** ({s['why']})" for s in summary["shapes"]]
    if summary["ports"]:
        out += [
            "",
            "## Port quality per tier (procedure prompts)",
            "",
            "| variant | tier | accuracy | base | oracle | gap_recovered [95% CI] | Δ vs base |",
            "|---|---|---|---|---|---|---|",
        ]
        for r in summary["ports"]:
            gap = "unusable" if not r["usable"] else _f(r["gap_recovered"], True)
            if r["ci"]:
                gap += f" [{r['ci'][0]:+.3f}, {r['ci'][1]:+.3f}]"
            out.append(
                f"| {r['variant']} | {short(r['tier'])} | {_f(r['accuracy'])} | {_f(r['base'])} | "
                f"{_f(r['oracle'])} | {gap} | {_ci(r['vs_base'])} |"
            )
    for ag in summary["agreement"]:
        out += [
            "",
            f"## Scorer agreement: {ag['a']} (A) vs {ag['b']} (B)",
            "",
            "| condition | n | both | A only | B only | neither | agree | κ | PABAK | AC1 | McNemar p | "
            "acc A → B | invalid A | compliance |",
            "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
        ]
        for g, a in ag["groups"].items():
            out.append(
                f"| {g} | {a['n']} | {a['both']} | {a['a_only']} | {a['b_only']} | {a['neither']} | "
                f"{a['observed']:.3f} | {_f(a['kappa'])} | {a['pabak']:.3f} | {_f(a['ac1'])} | "
                f"{a['mcnemar_p']:.3g} | {a['acc_a']:.3f} → {a['acc_b']:.3f} | {a['invalid_a']} | "
                f"{_f(a['compliance'])} |"
            )
        h = ag["headline"]
        out += ["", f"Headline shift (B replaces A): max |shift| {h['max_abs_shift']:.3f}.", ""]
        out += [
            f"- {c['contrast']}: {c['delta_a']:+.3f} under A, {c['delta_b']:+.3f} under B "
            f"(shift {c['shift']:+.3f})"
            for c in h["contrasts"]
        ]
    out += ["", "## Threats", ""] + [f"- {t}" for t in summary["threats"]]
    if summary["missing"]:
        out += ["", "## Missing conditions", ""] + [f"- {m}" for m in summary["missing"]]
    return "\n".join(out) + "\n"


def procedure_table(summary: dict[str, Any]) -> list[str]:
    """Per tier: accuracy plain and with the procedure, before and after SFT, and pre-Δ, post-Δ and
    lift with their CIs (Markdown rows, header first)."""
    return [
        "| tier | base plain | base proc. | SFT plain | SFT proc. | pre-Δ | post-Δ | lift |",
        "|---|---|---|---|---|---|---|---|",
        *(
            f"| {short(r['tier'])} | {_f(r['base_plain'])} | {_f(r['base_procedure'])} | {_f(r['sft_plain'])} | "
            f"{_f(r['sft_procedure'])} | {_ci(r['pre'])} | {_ci(r['post'])} | {_ci(r['lift'])} |"
            for r in summary["procedure"]
        ),
    ]


def results_section(folder: str, meta: dict[str, Any], summary: dict[str, Any]) -> list[str]:
    """The study's section of docs/results.md: what ran, the procedure table, the shapes, the port
    quality per tier, each scorer pair's agreement range and headline shift, and the threats."""
    from loraport.report.results import provenance_line

    st = meta["study"]
    out = [
        f"## {folder}",
        "",
        f"Tiers study `{st['name']}`: tiers {', '.join(map(short, summary['tiers']))} (smallest first), "
        f"source {short(st['source'])}; tasks {', '.join(st['heldout'])}; {st['eval']['n']} eval items per "
        "task. " + provenance_line(folder, meta),
        "",
        *procedure_table(summary),
    ]
    out += ["", *[f"- {s['of']} across tiers: **{s['shape']}** ({s['why']})." for s in summary["shapes"]]]
    if summary["ports"]:
        out += ["", "Port quality per tier (procedure prompts):", ""]
        out += [
            f"- {r['variant']} on {short(r['tier'])}: accuracy {_f(r['accuracy'])} (base {_f(r['base'])}, "
            f"oracle {_f(r['oracle'])}), gap_recovered "
            + ("unusable" if not r["usable"] else _f(r["gap_recovered"], True))
            + (f" [{r['ci'][0]:+.3f}, {r['ci'][1]:+.3f}]" if r["ci"] else "")
            + "."
            for r in summary["ports"]
        ]
    if summary["agreement"]:
        out += ["", "Scorer agreement (per condition: a tier, a stage and a prompt):", ""]
    for ag in summary["agreement"]:
        groups = list(ag["groups"].values())
        counts = [sum(g[c] for g in groups) for c in ("both", "a_only", "b_only", "neither")]
        pooled = table_stats(*counts)
        kappas = [g["kappa"] for g in groups if g["kappa"] is not None]
        out.append(
            f"- {ag['a']} vs {ag['b']}: pooled over {len(groups)} conditions ({sum(counts)} items) "
            f"agreement {pooled['observed']:.3f}, Cohen's κ {_f(pooled['kappa'])}, AC1 {pooled['ac1']:.3f}"
            + (f" (κ per condition {min(kappas):.3f}–{max(kappas):.3f})" if kappas else "")
            + f"; the largest headline shift if one replaces the other is {ag['headline']['max_abs_shift']:.3f}."
        )
    out += ["", "Threats (written by the report):", "", *[f"- {t}" for t in summary["threats"]]]
    return out
