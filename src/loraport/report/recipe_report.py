"""The recipe_transfer study's report (bench/recipe_study.py): summary.json and report.md from the
run's stored records alone (no torch).

Sections: the Δ of each regularizer against none per base with 95% CIs; sign changes across bases
(claimed only where both CIs exclude zero, with the swing); the quant tax matrix regularizer ×
scheme; the waterfall base → + adapter → quantized base + adapter; and "What this supports / what
it does not", written from the numbers (one seed: point estimates; effects inside their CIs: not
claimed).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from loraport.bench.recipe_metrics import (
    NONE,
    deltas,
    excludes_zero,
    index,
    port_sides,
    ports,
    quant_tax,
    waterfall,
)
from loraport.io import atomic_file
from loraport.report.fmt import delta_ci as _ci
from loraport.report.fmt import num as _f
from loraport.report.recipe_measures_report import claims as measures_claims
from loraport.report.recipe_measures_report import cross_base_claims, tier_claims
from loraport.report.recipe_measures_report import sections as measures_sections
from loraport.report.recipe_measures_report import summarize as measures_summary


def claims(study: dict[str, Any], summary: dict[str, Any]) -> dict[str, list[str]]:
    """The "What this supports / what it does not" lists, from the summary's numbers."""
    yes: list[str] = []
    no: list[str] = []
    seeds = study.get("seeds", [0])
    if len(seeds) == 1:
        no.append(
            "Seed-to-seed variation: one seed, so every Δ is a point estimate for one training run; "
            "its CI covers the sampling of eval items only."
        )
    for row in summary["deltas"]:
        claimed, not_claimed = cross_base_claims(row)
        tiers_yes, tiers_no = tier_claims(row, tier_name=lambda t: _tier(study, t))
        yes += claimed + tiers_yes
        no += [line for line in (not_claimed, tiers_no) if line]
    for scheme in study.get("schemes", []):
        ref = next(
            (r for r in summary["quant_tax"] if r["regularizer"] == NONE and r["scheme"] == scheme), None
        )
        if ref and ref["tax"] and excludes_zero(ref["tax"]["ci"]):
            yes.append(
                f"Quantizing Y with {scheme} changes the unregularized adapter's accuracy by {_ci(_neg(ref['tax']))}."
            )
        elif ref and ref["tax"]:
            no.append(
                f"A quant tax of {scheme} on the unregularized adapter: {_ci(ref['tax'])} includes zero."
            )
        moved = [
            r
            for r in summary["quant_tax"]
            if r["scheme"] == scheme and r["vs_none"] is not None and excludes_zero(r["vs_none"]["ci"])
        ]
        for r in moved:
            yes.append(
                f"{r['regularizer']} changes the quant tax of {scheme} by {_ci(r['vs_none'])} against none."
            )
        if not moved:
            no.append(
                f"A regularizer-dependent quant tax for {scheme}: every regularizer's difference from "
                "none's tax is inside its CI (nor does that prove independence)."
            )
    for side in dict.fromkeys(r["side"] for r in summary.get("ports", [])):
        rows = [r for r in summary["ports"] if r["side"] == side and r["vs_none"] is not None]
        moved = [r for r in rows if excludes_zero(r["vs_none"]["ci"])]
        for r in moved:
            word = "better" if r["vs_none"]["delta"] > 0 else "worse"
            yes.append(
                f"{r['regularizer']} on X ports {word} with {side}: Δ {_ci(r['vs_none'])} against none's port."
            )
        if rows and not moved:
            no.append(
                f"A regularizer effect on how well X's adapter ports with {side}: every Δ is inside its CI."
            )
    more_yes, more_no = measures_claims(summary)
    yes += more_yes
    no += more_no
    if summary["missing"]:
        no.append(f"The {len(summary['missing'])} conditions without records (failed or not computed).")
    no.append(
        f"Anything beyond these two bases, the tasks {', '.join(study.get('heldout', []))} and "
        f"{study.get('eval', {}).get('n', '?')} eval items per task."
    )
    return {"supports": yes, "does_not": no}


def _tax_table(rows: list[dict[str, Any]], schemes: list[str]) -> list[str]:
    """Regularizer × scheme: tax [CI], and below it the difference from none's tax."""
    out = ["| regularizer | " + " | ".join(schemes) + " |", "|---|" + "---|" * len(schemes)]
    by = {(r["regularizer"], r["scheme"]): r for r in rows}
    for who in dict.fromkeys(r["regularizer"] for r in rows):
        cells = []
        for s in schemes:
            r = by[(who, s)]
            cell = _ci(r["tax"])
            if r["vs_none"] is not None:
                cell += f"<br>vs none {_ci(r['vs_none'])}"
            cells.append(cell)
        out.append(f"| {who if who != 'base' else 'base alone'} | " + " | ".join(cells) + " |")
    return out


def _figure(figures: list[str], name: str, alt: str) -> list[str]:
    return ["", f"![{alt}](figures/{name})"] if name in figures else []


def _tier(study: dict[str, Any], side: str) -> str:
    """A tier side ("tier<i>") as "tier<i> (<base>)"."""
    names = study.get("tiers") or []
    i = int(side[4:])
    return f"{side} ({names[i]})" if i < len(names) else side


def _neg(d: dict[str, Any]) -> dict[str, Any]:
    return {**d, "delta": -d["delta"], "ci": [-d["ci"][1], -d["ci"][0]]}


def recipe_report(run_dir: Path, meta: dict[str, Any], records: list[dict[str, Any]]) -> dict[str, Any]:
    """Write summary.json and report.md for a recipe_transfer run; returns the summary."""
    study = meta["study"]
    schemes = list(study.get("schemes", []))
    idx = index(records)
    summary: dict[str, Any] = {
        "kind": "recipe_transfer",
        "study": study["name"],
        "seeds": study.get("seeds", [0]),
        "deltas": deltas(idx),
        "quant_tax": quant_tax(idx, schemes),
        "waterfall": waterfall(idx, schemes),
        "ports": ports(idx),
        "port_quant_tax": {side: quant_tax(idx, schemes, side) for side in port_sides(idx)},
        "missing": sorted(r["name"] for r in records if "missing" in r),
    }
    summary["sign_changes"] = [r["regularizer"] for r in summary["deltas"] if r["verdict"] == "sign change"]
    summary.update(measures_summary(run_dir, records, idx, schemes, summary["deltas"]))
    summary["claims"] = claims(study, summary)
    with atomic_file(run_dir / "summary.json") as fh:
        json.dump(summary, fh, indent=1, sort_keys=True)
    from loraport.report.recipe_figures import write_recipe_figures
    from loraport.report.recipe_measures_figures import write_measures_figures

    figures = write_recipe_figures(run_dir / "figures", summary, schemes)
    figures += write_measures_figures(run_dir / "figures", summary, schemes)
    with atomic_file(run_dir / "report.md") as fh:
        fh.write(markdown(meta, summary, schemes, figures))
    return summary


def markdown(
    meta: dict[str, Any], summary: dict[str, Any], schemes: list[str], figures: list[str] = ()
) -> str:
    study = meta["study"]
    out = [
        f"# Recipe transfer: {study['name']}",
        "",
        f"X = {study['source']}, Y = {study['target']}; tasks {', '.join(study['heldout'])}; "
        f"seeds {summary['seeds']}; {study['eval']['n']} eval items per task. Accuracy of the "
        "primary scorer; Δ and CIs are paired over items (95% bootstrap, items resampled within "
        "each task; scores averaged over seeds).",
        "",
        "## Regularizer effect per base (Δ accuracy vs none)",
        "",
        "| regularizer | Δ on X [95% CI] | Δ on Y [95% CI] |",
        "|---|---|---|",
    ]
    tiers = list(summary["deltas"][0].get("tiers", {})) if summary["deltas"] else []
    if tiers:
        out[-2] += "".join(f" Δ on {_tier(study, t)} [95% CI] |" for t in tiers)
        out[-1] += "---|" * len(tiers)
    out += [
        f"| {r['regularizer']} | {_ci(r['x'])} | {_ci(r['y'])} |"
        + "".join(f" {_ci(r['tiers'][t])} |" for t in tiers)
        for r in summary["deltas"]
    ]
    out += _figure(figures, "recipe_deltas.png", "Δ per base")
    out += [
        "",
        "## Sign changes across bases",
        "",
        "Claimed only where both CIs exclude zero; otherwise not distinguishable.",
        "",
        "| regularizer | verdict | swing (Δ_Y − Δ_X) | why |",
        "|---|---|---|---|",
    ]
    out += [
        f"| {r['regularizer']} | {r['verdict']} | {_f(r['swing'], True)} | {r['why']} |"
        for r in summary["deltas"]
    ]
    if tiers:
        out += [
            "",
            "Across capacity tiers (each tier against X and against Y; swing Δ_tier − Δ_base):",
            "",
            "| regularizer | bases | verdict | swing | why |",
            "|---|---|---|---|---|",
        ]
        out += [
            f"| {r['regularizer']} | {a['a'].upper()} vs {_tier(study, a['b'])} | {a['verdict']} | "
            f"{_f(a['swing'], True)} | {a['why']} |"
            for r in summary["deltas"]
            for a in r["across_tiers"]
        ]
    out += [
        "",
        "## Quant tax on Y (accuracy with the adapter in full precision − on the quantized base)",
        "",
        "Positive: quantizing the base costs accuracy. Each cell: tax [95% CI]; below it, the "
        "difference from none's tax.",
        "",
    ]
    out += _tax_table(summary["quant_tax"], schemes)
    out += _figure(figures, "recipe_quant_tax.png", "quant tax")
    out += [
        "",
        "## Waterfall (accuracy per stage)",
        "",
        "| recipe | base X | + adapter X | base Y | + adapter Y | "
        + " | ".join(f"{s} + adapter" for s in schemes)
        + " |",
        "|---|---|---|---|---|" + "---|" * len(schemes),
    ]
    for r in summary["waterfall"]:
        q = [_f(r["quantized"][s]) for s in schemes]
        out.append(
            f"| {r['regularizer']} | {_f(r['base_x'])} | {_f(r['adapter_x'])} | {_f(r['base_y'])} | "
            f"{_f(r['adapter_y'])} | " + " | ".join(q) + " |"
        )
    out += ["", '(The "base only" row\'s quantized columns are the quantized base alone.)']
    out += _figure(figures, "recipe_waterfall.png", "waterfall")
    out += [""]
    if summary["ports"]:
        out += [
            "## Ports of each recipe's X adapter to Y",
            "",
            "Does a regularizer on X change how well X's adapter ports? Accuracy on Y of the port; "
            "the recipe's Y oracle beside it; Δ against none's port of the same variant [95% CI].",
            "",
            "| port | recipe | accuracy on Y | Y oracle | Δ vs none's port |",
            "|---|---|---|---|---|",
        ]
        out += [
            f"| {r['side']} | {r['regularizer']} | {_f(r['accuracy'])} | {_f(r['oracle_y'])} | "
            f"{_ci(r['vs_none'])} |"
            for r in summary["ports"]
        ]
        for side, rows in summary["port_quant_tax"].items():
            out += ["", f"Quant tax of the ports ({side}):", "", *_tax_table(rows, schemes)]
        out += [""]
    out += measures_sections(summary, schemes, list(figures))
    out += ["## What this supports / what it does not", "", "Supports:", ""]
    out += [f"- {c}" for c in summary["claims"]["supports"]] or ["- nothing: every effect is inside its CI"]
    out += ["", "Does not support:", ""]
    out += [f"- {c}" for c in summary["claims"]["does_not"]]
    if summary["missing"]:
        out += ["", "## Missing conditions", ""] + [f"- {m}" for m in summary["missing"]]
    return "\n".join(out) + "\n"


def results_section(folder: str, meta: dict[str, Any], summary: dict[str, Any]) -> list[str]:
    """The study's section of docs/results.md: what ran, each regularizer's Δ per base, and the
    report's two claim lists (what the run supports, what it does not)."""
    from loraport.report.results import provenance_line

    study = meta["study"]
    bpb = {r["regularizer"]: r for r in summary.get("bpb_deltas") or []}
    out = [
        f"## {folder}",
        "",
        f"Recipe-transfer study `{study['name']}`: X = {study['source']}, Y = {study['target']}"
        + (f", capacity tiers {', '.join(study['tiers'])}" if study.get("tiers") else "")
        + "; tasks "
        f"{', '.join(study['heldout'])}; regularizers {', '.join(study.get('regularizers', {}))}; quantized Y "
        f"{', '.join(study.get('schemes', [])) or '(none)'}; seeds {summary['seeds']}; {study['eval']['n']} eval "
        "items per task. " + provenance_line(folder, meta),
        "",
        "| regularizer | Δ accuracy on X vs none [95% CI] | Δ on Y [95% CI] | verdict |"
        + (" Δ mBPB on X [95% CI] | Δ mBPB on Y [95% CI] | verdict (mBPB) |" if bpb else ""),
        "|---|---|---|---|" + ("---|---|---|" if bpb else ""),
        *[
            f"| {r['regularizer']} | {_ci(r['x'])} | {_ci(r['y'])} | {r['verdict']} |"
            + (
                f" {_ci(bpb[r['regularizer']]['x'], 1)} | {_ci(bpb[r['regularizer']]['y'], 1)} | "
                f"{bpb[r['regularizer']]['verdict']} |"
                if r["regularizer"] in bpb
                else (" — | — | — |" if bpb else "")
            )
            for r in summary["deltas"]
        ],
        "",
        *(
            [
                "mBPB: the reference answer's loss in milli-bits per byte (positive Δ: the regularizer "
                "raises it), from `loraport recipe-measures`.",
                "",
            ]
            if bpb
            else []
        ),
        "What this supports:",
        "",
        *([f"- {c}" for c in summary["claims"]["supports"]] or ["- nothing: every effect is inside its CI"]),
        "",
        "What it does not:",
        "",
        *[f"- {c}" for c in summary["claims"]["does_not"]],
    ]
    return out
