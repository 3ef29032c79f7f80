"""The recipe_transfer report's sections on ports against oracles on the quantized target, the loss
tax, the mechanistic checks and whether they predict anything (issue 19, items 3 and 5).

Oracle vs port comes from the records alone. The loss tax, the mechanistic checks and the
correlations come from `recipe_measures.json` (bench.recipe_measures, `loraport recipe-measures
RUN_DIR`), read like the records: without that file the report says how to add them.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from loraport.bench import recipe_metrics
from loraport.bench.recipe_metrics import (
    NONE,
    bpb_index,
    excludes_zero,
    loss_index,
    oracle_vs_port,
    port_sides,
    quant_tax,
)
from loraport.bench.recipe_predict import MIN_UNITS, adapter_taxes, predicts_sign, predicts_tax
from loraport.report.fmt import delta_ci as _ci
from loraport.report.fmt import num as _f

#: The recipe whose Y adapter is trained on the quantized Y, and that scheme: fake_quant at λ = 1
#: trains on int4_sym_row (train.regularizers.FakeQuant.SCHEME; a test checks they agree; the
#: report imports no torch-heavy module, so it does not import train).
QAT = ("fake_quant", "int4_sym_row", 1.0)
MEASURES = "recipe_measures.json"
#: The per-adapter numbers the mechanistic table shows (bench.recipe_measures' names).
COLUMNS = ("effective_rank", "stable_rank", "top_energy", "norm", "cka_mean", "overlap", "cosine")


def _qat(records: list[dict[str, Any]]) -> tuple[str, str] | None:
    name, scheme, strength = QAT
    ok = any(r.get("regularizer") == name and r.get("strength") == strength for r in records)
    return (name, scheme) if ok else None


def summarize(
    run_dir: Path, records: list[dict[str, Any]], idx: dict, schemes: list[str], deltas: list[dict[str, Any]]
) -> dict[str, Any]:
    """The summary entries of these sections (measures-based ones None without the file)."""
    out: dict[str, Any] = {"oracle_vs_port": oracle_vs_port(idx, schemes, _qat(records))}
    path = run_dir / MEASURES
    if not path.is_file():
        return {**out, "measures": False}
    m = json.loads(path.read_text())
    lidx = loss_index(records, m["loss"])
    adapters = m["adapters"]
    return {
        **out,
        "measures": True,
        "bpb_deltas": recipe_metrics.deltas(bpb_index(records, m["loss"])),
        "loss_tax": quant_tax(lidx, schemes),
        "port_loss_tax": {side: quant_tax(lidx, schemes, side) for side in port_sides(lidx)},
        "loss_items": m.get("loss_items"),
        "mechanistic": mechanistic(adapters),
        "depth": depth(adapters),
        "pca": m["pca"],
        "predictors": predicts_tax(adapters, adapter_taxes(records, m["loss"], schemes))
        + predicts_sign(adapters, deltas),
    }


def mechanistic(adapters: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    """Per side (x, y, each port) and recipe: each COLUMNS value averaged over tasks and seeds."""
    groups: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for a in adapters.values():
        groups.setdefault((a["side"], a["regularizer"]), []).append(a)
    rows = []
    order = lambda kv: (kv[0][0] not in ("x", "y"), kv[0][0], kv[0][1] != NONE, kv[0][1])  # noqa: E731
    for (side, reg), items in sorted(groups.items(), key=order):
        row: dict[str, Any] = {"side": side, "regularizer": reg, "n": len(items)}
        for c in COLUMNS:
            vals = [a[c] for a in items if a.get(c) is not None]
            row[c] = float(np.mean(vals)) if vals else None
        rows.append(row)
    return rows


def depth(adapters: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    """Per side and recipe: ‖ΔW‖ per layer and CKA per layer, averaged over tasks and seeds."""
    groups: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for a in adapters.values():
        groups.setdefault((a["side"], a["regularizer"]), []).append(a)
    return [
        {
            "side": side,
            "regularizer": reg,
            "norm": np.mean([a["depth"] for a in items], axis=0).tolist(),
            "cka": np.mean([a["cka"] for a in items], axis=0).tolist(),
        }
        for (side, reg), items in sorted(groups.items())
    ]


def claims(summary: dict[str, Any]) -> tuple[list[str], list[str]]:
    """(supports, does not) lines of these sections."""
    yes: list[str] = []
    no: list[str] = []
    for r in summary.get("oracle_vs_port", []):
        if r["scheme"] is not None and r["vs_fp"] is not None and excludes_zero(r["vs_fp"]["ci"]):
            word = "more" if r["vs_fp"]["delta"] < 0 else "less"
            yes.append(
                f"On Y quantized with {r['scheme']}, {r['regularizer']}'s port ({r['side']}) loses {word} "
                f"than its oracle: the port − oracle gap moves by {_ci(r['vs_fp'])}."
            )
    moved = [r for r in summary.get("oracle_vs_port", []) if r["vs_fp"] is not None]
    if moved and not any(excludes_zero(r["vs_fp"]["ci"]) for r in moved):
        no.append(
            "That quantizing Y hurts ports more (or less) than oracles: every change of the gap is inside its CI."
        )
    if not summary.get("measures"):
        no.append(
            "Anything about the loss tax or the weight diagnostics: `loraport recipe-measures` was not run."
        )
        return yes, no
    b_yes, b_no = _bpb_claims(summary.get("bpb_deltas") or [])
    yes += b_yes
    no += b_no
    for r in summary["loss_tax"]:
        if r["regularizer"] == NONE and r["tax"] and excludes_zero(r["tax"]["ci"]):
            up = r["tax"]["delta"] > 0
            yes.append(
                f"Quantizing Y with {r['scheme']} {'raises' if up else 'lowers'} the unregularized adapter's "
                f"loss by {_ci(r['tax'], 4, 1.0 if up else -1.0)} nats/token."
            )
    for p in summary["predictors"]:
        if p["verdict"] == "predicts":
            lo, hi = p["ci"]
            yes.append(
                f"{p['predictor']} predicts the {p['outcome']}: ρ {p['rho']:+.2f} [{lo:+.2f}, {hi:+.2f}], n = {p['n']}."
            )
    for verdict, why in (
        ("does not predict", "each ρ's 95% CI includes zero"),
        ("not computed", f"too few units (fewer than {MIN_UNITS}) or a constant side, so no ρ"),
    ):
        names = [
            f"{p['predictor']} → {p['outcome']}" for p in summary["predictors"] if p["verdict"] == verdict
        ]
        if names:
            no.append(f"That these diagnostics predict these outcomes ({why}): {'; '.join(names)}.")
    return yes, no


def cross_base_claims(
    row: dict[str, Any],
    *,
    digits: int = 3,
    better: str = "helps",
    worse: str = "hurts",
    sign: float = 1.0,
    unit: str = "",
    lead: str = "",
    of: str = "",
) -> tuple[list[str], str | None]:
    """What one regularizer's Δ on X and on Y (a recipe_metrics.deltas row) supports, and the line for
    what it does not (None when its verdict is claimed): a sign change, the same sign on both bases,
    or an effect on one base. `sign` × Δ > 0 is `better` (-1 for a loss), `digits` and `unit` format
    the Δs, `lead` starts each claim and `of` names the measure in the does-not line."""
    reg, dx, dy = row["regularizer"], row["x"], row["y"]
    both = f"Δ on X {_ci(dx, digits)}, on Y {_ci(dy, digits)}{unit}"
    word = lambda d: better if sign * d["delta"] > 0 else worse  # noqa: E731
    if row["verdict"] == "sign change":
        return [
            f"{lead}{reg} changes sign across bases: {both}; swing {row['swing']:+.{digits}f}{unit}."
        ], None
    if row["verdict"] == "same sign":
        return [f"{lead}{reg} {word(dx)} on both bases: {both}."], None
    yes = [
        f"{lead}{reg} {word(d)} on {side}: Δ {_ci(d, digits)}{unit}."
        for side, d in (("X", dx), ("Y", dy))
        if d is not None and excludes_zero(d["ci"])
    ]
    return yes, f"A cross-base sign change (or transfer){of} for {reg}: {row['why']} ({both})."


def tier_claims(
    row: dict[str, Any],
    *,
    tier_name: Callable[[str], str] = str,
    digits: int = 3,
    unit: str = "",
    lead: str = "",
    of: str = "",
) -> tuple[list[str], str | None]:
    """What one regularizer's comparisons between X or Y and each capacity tier (the row's
    `across_tiers`) support, and one line for those it does not (None when every one is claimed);
    formatted as cross_base_claims does."""
    reg, yes, quiet = row["regularizer"], [], []
    for a in row.get("across_tiers", []):
        pair = f"{a['a'].upper()} and {tier_name(a['b'])}"
        if a["verdict"] == "sign change":
            yes.append(
                f"{lead}{reg} changes sign between {pair}: swing {a['swing']:+.{digits}f}{unit} ({a['why']})."
            )
        elif a["verdict"] == "same sign":
            yes.append(f"{lead}{reg} moves {pair} the same way ({a['why']}).")
        else:
            quiet.append(f"{pair} ({a['why']})")
    return yes, (f"A sign change (or transfer){of} for {reg} between {'; '.join(quiet)}." if quiet else None)


def _bpb_claims(rows: list[dict[str, Any]]) -> tuple[list[str], list[str]]:
    """Claims on each regularizer's Δ in mBPB per base (positive: it raises the loss)."""
    yes: list[str] = []
    no: list[str] = []
    for r in rows:
        claimed, not_claimed = cross_base_claims(
            r,
            digits=1,
            better="lowers the loss",
            worse="raises the loss",
            sign=-1.0,
            unit=" mBPB",
            lead="In bits per byte, ",
            of=" in bits per byte",
        )
        tiers_yes, tiers_no = tier_claims(
            r, digits=1, unit=" mBPB", lead="In bits per byte, ", of=" in bits per byte"
        )
        yes += claimed + tiers_yes
        no += [line for line in (not_claimed, tiers_no) if line]
    return yes, no


def _swing(x: float | None) -> str:
    return "—" if x is None else f"{x:+.1f}"


def _bpb_section(rows: list[dict[str, Any]], items: int | None) -> list[str]:
    if not rows:
        return [
            "## Regularizer effect per base in bits per byte",
            "",
            "Not measured: recipe_measures.json predates bits per byte; run `loraport recipe-measures "
            "RUN_DIR` again.",
            "",
        ]
    tiers = list(rows[0].get("tiers") or {})
    out = [
        "## Regularizer effect per base in bits per byte",
        "",
        f"The reference answer's loss on the first {items} eval items of each task, in milli-bits per "
        "UTF-8 byte (mBPB: the summed negative log-likelihood / (ln 2 · bytes); the tokenizers differ, "
        "bytes do not). Δ = mBPB(regularizer) − mBPB(none) on the same base, paired over items [95% CI]: "
        "positive, the regularizer raises the loss (hurts). Unlike accuracy, the loss moves on a base "
        "whose adapters answer at chance. Sign changes are claimed only where both CIs exclude zero.",
        "",
        "| regularizer | Δ on X [95% CI] | Δ on Y [95% CI] |"
        + "".join(f" Δ on {t} [95% CI] |" for t in tiers)
        + " verdict | swing (Δ_Y − Δ_X) | why |",
        "|---|---|---|" + "---|" * len(tiers) + "---|---|---|",
    ]
    out += [
        f"| {r['regularizer']} | {_ci(r['x'], 1)} | {_ci(r['y'], 1)} |"
        + "".join(f" {_ci(r['tiers'][t], 1)} |" for t in tiers)
        + f" {r['verdict']} | {_swing(r['swing'])} | {r['why']} |"
        for r in rows
    ]
    across = [(r["regularizer"], a) for r in rows for a in r.get("across_tiers", [])]
    if across:
        out += [
            "",
            "Across capacity tiers (swing Δ_tier − Δ_base, mBPB):",
            "",
            "| regularizer | bases | verdict | swing | why |",
            "|---|---|---|---|---|",
        ]
        out += [
            f"| {reg} | {a['a'].upper()} vs {a['b']} | {a['verdict']} | {_swing(a['swing'])} | {a['why']} |"
            for reg, a in across
        ]
    return [*out, ""]


def _loss_table(rows: list[dict[str, Any]], schemes: list[str]) -> list[str]:
    out = ["| recipe | " + " | ".join(schemes) + " |", "|---|" + "---|" * len(schemes)]
    by = {(r["regularizer"], r["scheme"]): r for r in rows}
    for who in dict.fromkeys(r["regularizer"] for r in rows):
        cells = []
        for s in schemes:
            r = by[(who, s)]
            cells.append(_ci(r["tax"], 4) + (f"<br>vs none {_ci(r['vs_none'], 4)}" if r["vs_none"] else ""))
        out.append(f"| {who if who != 'base' else 'base alone'} | " + " | ".join(cells) + " |")
    return out


def sections(summary: dict[str, Any], schemes: list[str], figures: list[str]) -> list[str]:
    """Markdown lines of these sections."""
    fig = lambda name, alt: ["", f"![{alt}](figures/{name})"] if name in figures else []  # noqa: E731
    out: list[str] = []
    ovp = summary.get("oracle_vs_port") or []
    if ovp:
        out += [
            "## Oracle vs port on the quantized target",
            "",
            "Each port and its recipe's Y oracle scored on the same Y (full precision, then quantized per "
            "scheme; adapters in full precision). Port − oracle paired over items [95% CI]; gap recovered "
            "(port − base)/(oracle − base) on that base; the last column is how quantizing moves the "
            "port − oracle gap (negative: the port loses more than the oracle).",
            "",
            "| port | recipe | oracle | Y | port | oracle | base | port − oracle | recovered | change vs full precision |",
            "|---|---|---|---|---|---|---|---|---|---|",
        ]
        out += [
            f"| {r['side']} | {r['regularizer']} | {r['oracle']} | {r['scheme'] or 'full precision'} | "
            f"{_f(r['port_acc'])} | {_f(r['oracle_acc'])} | "
            f"{_f(r['base_acc'])} | {_ci(r['gap'])} | {_f(r['recovered'])} | {_ci(r['vs_fp'])} |"
            for r in ovp
        ]
        out += [""]
    if not summary.get("measures"):
        return [
            *out,
            "## Loss tax and mechanistic checks",
            "",
            "Not measured: `loraport recipe-measures RUN_DIR` computes the per-item losses and the weight "
            "diagnostics into recipe_measures.json and rebuilds this report.",
            "",
        ]
    out += _bpb_section(summary.get("bpb_deltas") or [], summary.get("loss_items"))
    out += [
        "## Loss tax on Y (mean token NLL of the reference answer: quantized − full precision)",
        "",
        f"On the first {summary['loss_items']} eval items of each task. "
        "Positive: quantizing the base raises the loss (nats per answer token). Each cell: tax [95% CI]; "
        "below it, the difference from none's tax.",
        "",
        *_loss_table(summary["loss_tax"], schemes),
    ]
    for side, rows in summary["port_loss_tax"].items():
        out += ["", f"Loss tax of the ports ({side}):", "", *_loss_table(rows, schemes)]
    out += fig("recipe_loss_tax.png", "loss tax")
    out += [
        "",
        "## Mechanistic checks",
        "",
        "Per base and recipe, averaged over tasks and seeds: the ΔW spectrum (mean over modules of the "
        "effective rank exp H(σ/Σσ), the stable rank ‖ΔW‖²_F/‖ΔW‖²_2 and the energy share of the top "
        "components), ‖ΔW‖_F over all modules, linear CKA of base and adapted hidden states (mean over "
        "layers; 1: only a rotation and scale), and the subspace overlap and cosine with the reference "
        "adapter (none's on the same base; for a port, its recipe's Y oracle).",
        "",
        "| base | recipe | adapters | " + " | ".join(COLUMNS) + " |",
        "|---|---|---|" + "---|" * len(COLUMNS),
    ]
    out += [
        f"| {r['side']} | {r['regularizer']} | {r['n']} | " + " | ".join(_f(r[c]) for c in COLUMNS) + " |"
        for r in summary["mechanistic"]
    ]
    out += fig("recipe_depth.png", "‖ΔW‖ and CKA along depth")
    out += fig("recipe_pca.png", "PCA of the adapters")
    out += [
        "",
        "## Do the diagnostics predict the quant tax or the cross-base sign?",
        "",
        "Spearman's ρ over Y adapters (quant tax, averaged over schemes) or over regularizers (the swing "
        "Δ_Y − Δ_X against the cross-base difference of the regularizer's shift of the diagnostic), "
        "with a 95% bootstrap CI. Claimed only where the CI excludes zero.",
        "",
        "| diagnostic | outcome | n | ρ [95% CI] | verdict |",
        "|---|---|---|---|---|",
    ]
    for p in summary["predictors"]:
        rho = "—" if p["rho"] is None else f"{p['rho']:+.2f} [{p['ci'][0]:+.2f}, {p['ci'][1]:+.2f}]"
        out.append(f"| {p['predictor']} | {p['outcome']} | {p['n']} | {rho} | {p['verdict']} ({p['why']}) |")
    return [*out, ""]
