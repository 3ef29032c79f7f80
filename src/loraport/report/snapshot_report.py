"""The snapshots study's report (bench/snapshot_study.py) and the few-step table (train/fewstep.py):
summary.json and report.md from stored records alone (no torch).

Sections: per X snapshot (epoch) its X accuracy, and per method variant, N and anchor snapshot the
ported Y accuracy and gap_recovered with 95% bootstrap CIs; the paired late − early differences;
finding lines, written only where a CI excludes zero (otherwise "not distinguishable"). Few-step
summaries (FewStepResult.summary rows, each with an "epoch") get seed 003's table and its two
finding lines via `fewstep_section`.
"""

from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np

from loraport.bench.metrics import bootstrap_ratio, correct, gap_recovered, percentile_ci
from loraport.bench.recipe_metrics import excludes_zero, paired_diff
from loraport.io import atomic_file
from loraport.report.fmt import delta_ci as _ci
from loraport.report.fmt import num as _f


def _sorted_correct(r: dict[str, Any]) -> np.ndarray | None:
    c = correct(r)
    if c is None:
        return None
    ids = r["scorers"][r["primary"]]["ids"]
    return c[np.argsort(ids, kind="stable")]


def index(records: list[dict[str, Any]]) -> tuple[dict, dict, dict]:
    """(baselines task -> condition -> correctness, X snapshots epoch -> task -> correctness,
    ports (variant, N, epoch, anchor_epoch) -> task -> seed -> correctness)."""
    base: dict[str, dict[str, np.ndarray]] = defaultdict(dict)
    xs: dict[int, dict[str, np.ndarray]] = defaultdict(dict)
    ports: dict[tuple, dict[str, dict[int, np.ndarray]]] = defaultdict(lambda: defaultdict(dict))
    for r in records:
        c = _sorted_correct(r)
        if c is None:
            continue
        if r["condition"] == "x_snapshot":
            xs[r["epoch"]][r["task"]] = c
        elif r["condition"] == "port":
            ports[(r["variant"], r["n_anchors"], r["epoch"], r["anchor_epoch"])][r["task"]][r["seed"]] = c
        else:
            base[r["task"]][r["condition"]] = c
    return base, xs, ports


def _acc_ci(parts: list[np.ndarray], seed: int = 0) -> dict[str, Any] | None:
    """Mean accuracy over the pooled items with a 95% bootstrap CI (items resampled per task)."""
    if not parts:
        return None
    d = paired_diff([(p, np.zeros_like(p)) for p in parts], seed)
    return {"acc": d["delta"], "ci": d["ci"], "items": d["items"]}


def snapshot_rows(records: list[dict[str, Any]], seed: int = 0) -> dict[str, Any]:
    base, xs, ports = index(records)
    x_rows = [{"epoch": e, **(_acc_ci(list(by.values()), seed) or {})} for e, by in sorted(xs.items())]
    rng = np.random.default_rng(seed)
    rows = []
    for (variant, n, e, ae), by_task in sorted(ports.items()):
        parts, boot, gaps = [], [], []
        for task, seeds in sorted(by_task.items()):
            cb, co = base[task].get("base_y"), base[task].get("oracle_y")
            cms = [c for _, c in sorted(seeds.items())]
            parts.append(np.mean(cms, axis=0))
            if cb is None or co is None or any(len(c) != len(cb) for c in cms):
                continue
            gaps.append(gap_recovered(float(parts[-1].mean()), float(cb.mean()), float(co.mean())))
            boot.append(bootstrap_ratio(rng, cb, co, cms))
        gaps = [g for g in gaps if g is not None]
        rows.append(
            {
                "variant": variant,
                "n_anchors": n,
                "epoch": e,
                "anchor_epoch": ae,
                "x_acc": next((r.get("acc") for r in x_rows if r["epoch"] == e), None),
                "y": _acc_ci(parts, seed),
                "gap_recovered": float(np.mean(gaps)) if gaps else None,
                "gap_ci": percentile_ci(boot),
            }
        )
    return {"x": x_rows, "ports": rows, "contrasts": contrasts(xs, ports, seed)}


def _pairs(a: dict[str, Any], b: dict[str, Any]) -> list[tuple[np.ndarray, np.ndarray]]:
    """(a, b) correctness per task both have (seeds averaged over the common ones)."""
    out = []
    for task in sorted(set(a) & set(b)):
        va, vb = a[task], b[task]
        if isinstance(va, dict):
            common = sorted(set(va) & set(vb))
            if not common:
                continue
            va, vb = np.mean([va[s] for s in common], 0), np.mean([vb[s] for s in common], 0)
        if len(va) == len(vb):
            out.append((va, vb))
    return out


def contrasts(xs: dict, ports: dict, seed: int = 0) -> list[dict[str, Any]]:
    """Paired late − early differences: X accuracy of the X snapshots; per (variant, N, anchor
    epoch) the ported Y accuracy across X snapshots; per (variant, N, X epoch) across anchor ones."""
    out = []
    if len(xs) > 1:
        lo, hi = min(xs), max(xs)
        d = paired_diff(_pairs(xs[hi], xs[lo]), seed)
        out.append({"what": "x_acc", "early": lo, "late": hi, "diff": d})
    groups: dict[tuple, dict[int, Any]] = defaultdict(dict)
    agroups: dict[tuple, dict[int, Any]] = defaultdict(dict)
    for (variant, n, e, ae), by_task in ports.items():
        groups[(variant, n, ae)][e] = by_task
        agroups[(variant, n, e)][ae] = by_task
    for what, gs in (("port_by_x_epoch", groups), ("port_by_anchor_epoch", agroups)):
        for (variant, n, fixed), by in sorted(gs.items()):
            if len(by) > 1:
                lo, hi = min(by), max(by)
                d = paired_diff(_pairs(by[hi], by[lo]), seed)
                out.append(
                    {
                        "what": what,
                        "variant": variant,
                        "n_anchors": n,
                        "at": fixed,
                        "early": lo,
                        "late": hi,
                        "diff": d,
                    }
                )
    return out


def _word(d: dict[str, Any] | None) -> str | None:
    """ "higher"/"lower" where the CI excludes zero, else None (not claimed)."""
    if d is None or not excludes_zero(d["ci"]):
        return None
    return "higher" if d["delta"] > 0 else "lower"


def findings(summary: dict[str, Any]) -> list[str]:
    """One line per question, stating a direction only where the CI excludes zero."""
    lines = []
    x = next((c for c in summary["contrasts"] if c["what"] == "x_acc"), None)
    xw = _word(x["diff"]) if x else None
    for c in summary["contrasts"]:
        w = _word(c["diff"])
        if c["what"] == "port_by_x_epoch":
            head = f"{c['variant']} N={c['n_anchors']} (anchors at epoch {c['at']}): ported Y accuracy at X epoch {c['late']} vs {c['early']} {_ci(c['diff'])}"
            if w is None:
                lines.append(f"{head}: not distinguishable, so the snapshot time is not shown to matter.")
            elif xw is not None:
                port = f"and the port is also {w}" if w == xw else f"but the port is {w}"
                lines.append(
                    f"{head}: X accuracy is {xw} late {port}: better on X "
                    + ("ports better." if w == xw == "higher" else "does not mean ports better.")
                )
            else:
                lines.append(
                    f"{head}: the later snapshot ports {w}; X's own accuracy change is not distinguishable."
                )
        elif c["what"] == "port_by_anchor_epoch":
            head = f"{c['variant']} N={c['n_anchors']} (X at epoch {c['at']}): anchors at epoch {c['late']} vs {c['early']} {_ci(c['diff'])}"
            lines.append(f"{head}: " + (f"later anchors port {w}." if w else "not distinguishable."))
    return lines


def _acc(d: dict[str, Any] | None) -> str:
    return "—" if not d or "acc" not in d else f"{d['acc']:.3f} [{d['ci'][0]:.3f}, {d['ci'][1]:.3f}]"


def markdown(meta: dict[str, Any], summary: dict[str, Any], figures: list[str] = ()) -> str:
    out = [
        f"# Snapshots study {summary['study']}",
        "",
        "## X snapshots on X",
        "",
        "| epoch | X accuracy [95% CI] |",
        "|---|---|",
    ]
    out += [f"| {r['epoch']} | {_acc(r)} |" for r in summary["x"]]
    out += [
        "",
        "## Ports of each snapshot to Y",
        "",
        "| variant | N | X epoch | anchor epoch | X acc | Y acc [95% CI] | gap recovered [95% CI] |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in summary["ports"]:
        gci = r["gap_ci"]
        g = _f(r["gap_recovered"]) + (f" [{gci[0]:.3f}, {gci[1]:.3f}]" if gci else "")
        out.append(
            f"| {r['variant']} | {r['n_anchors']} | {r['epoch']} | {r['anchor_epoch']} | {_f(r['x_acc'])} | {_acc(r['y'])} | {g} |"
        )
    out += [f"\n![X and ported Y accuracy per X snapshot](figures/{f})" for f in figures]
    out += ["", "## Findings", ""] + [
        f"- {line}" for line in summary["findings"] or ["(none: a single snapshot)"]
    ]
    if summary["missing"]:
        out += ["", "## Missing", ""] + [f"- {m}" for m in summary["missing"]]
    return "\n".join(out) + "\n"


def snapshot_report(run_dir: Path, meta: dict[str, Any], records: list[dict[str, Any]]) -> dict[str, Any]:
    """Write summary.json and report.md for a snapshots run; returns the summary."""
    study = meta["study"]
    summary: dict[str, Any] = {"kind": "snapshots", "study": study["name"], **snapshot_rows(records)}
    summary["missing"] = sorted(r["name"] for r in records if "missing" in r)
    summary["findings"] = findings(summary)
    few = run_dir / "fewstep.json"  # written by bench.fewstep_study.run_fewsteps, when it ran
    summary["fewstep"] = json.loads(few.read_text()) if few.is_file() else []
    with atomic_file(run_dir / "summary.json") as fh:
        json.dump(summary, fh, indent=1, sort_keys=True)
    from loraport.report.snapshot_figures import write_fewstep_figure, write_snapshot_figure

    figures = write_snapshot_figure(run_dir / "figures", summary)
    with atomic_file(run_dir / "report.md") as fh:
        fh.write(markdown(meta, summary, figures))
        if summary["fewstep"]:
            fh.write(
                "\n"
                + fewstep_section(
                    summary["fewstep"], write_fewstep_figure(run_dir / "figures", summary["fewstep"])
                )
            )
    return summary


def fewstep_findings(rows: list[dict[str, Any]]) -> list[str]:
    """Seed 003's two questions over few-step summaries (each with an "epoch"): does the held-out
    window close (held-out ΔL's CI below zero at the earliest snapshot, not at the latest), and does better
    credit (higher cosine with backprop) come with lower update variance? Stated only where the
    CIs support it (relative update variance carries a bootstrap CI over batches)."""
    lines = []
    by: dict[tuple, dict[int, dict]] = defaultdict(dict)
    for r in rows:
        by[(_where(r), r["credit"], r["k"])][r["epoch"]] = r
    for (where, credit, k), eps in sorted(by.items()):
        if len(eps) < 2:
            continue
        early, late = eps[min(eps)], eps[max(eps)]
        head = (
            f"{where}{credit} k={k}: held-out ΔL {_dv(early)} at epoch {min(eps)}, {_dv(late)} at epoch "
            f"{max(eps)} (PUR {_p(early)} → {_p(late)})"
        )
        helps = [_falls(r) for r in (early, late)]
        if None in helps:
            lines.append(f"{head}: no CI (one batch), not claimed.")
        elif helps == [True, False]:
            lines.append(
                f"{head}: the held-out window closes (the update lowers held-out loss early; late it is not shown to)."
            )
        elif helps == [True, True]:
            lines.append(f"{head}: the update lowers held-out loss at both; the window does not close.")
        elif helps == [False, True]:
            lines.append(f"{head}: the update lowers held-out loss late only; the window opens.")
        else:
            lines.append(f"{head}: not shown to lower held-out loss at either.")
    for where, k, epoch in sorted({(_where(r), r["k"], r["epoch"]) for r in rows}):
        at = {r["credit"]: r for r in rows if (_where(r), r["k"], r["epoch"]) == (where, k, epoch)}
        if len(at) < 2:
            continue
        order = sorted(at.values(), key=lambda r: -r["cosine"])
        pts = ", ".join(f"{r['credit']} cos {r['cosine']:+.2f} var {_var(r)}" for r in order)
        head = f"{where}epoch {epoch} k={k}: credit quality vs relative update variance: {pts}"
        cis = [r["variance"].get("relative_ci") for r in order]
        if None in cis:
            lines.append(f"{head}: no CI (fewer than three batches), not claimed.")
            continue
        # consecutive credits by cosine: lower variance where the CIs do not overlap
        lower = [cis[i][1] < cis[i + 1][0] for i in range(len(cis) - 1)]
        higher = [cis[i][0] > cis[i + 1][1] for i in range(len(cis) - 1)]
        if all(lower):
            lines.append(f"{head}: better credit comes with lower update variance.")
        elif all(higher):
            lines.append(f"{head}: better credit comes with higher update variance.")
        else:
            lines.append(f"{head}: the ordering is not distinguishable.")
    return lines


def _var(r: dict[str, Any]) -> str:
    v, ci = r["variance"]["relative"], r["variance"].get("relative_ci")
    return f"{v:.2f}" + (f" [{ci[0]:.2f}, {ci[1]:.2f}]" if ci else "")


def _falls(r: dict[str, Any]) -> bool | None:
    """Whether the held-out loss change's CI lies below zero (None without a CI)."""
    ci = r.get("d_heldout_ci")
    return None if ci is None else ci[1] < 0


def _num(x: float) -> str:
    """A loss change: four decimals, or two significant digits below 0.001 (a credit that barely
    moves the loss must not read as +0.0000)."""
    return f"{x:+.4f}" if x == 0 or abs(x) >= 1e-3 else f"{x:+.1e}"


def _dv(r: dict[str, Any]) -> str:
    ci = r.get("d_heldout_ci")
    return _num(r["d_heldout"]) + (f" [{_num(ci[0])}, {_num(ci[1])}]" if ci else "")


def _p(r: dict[str, Any]) -> str:
    return "—" if r.get("pur") is None else f"{r['pur']:+.2f}"


def _where(r: dict[str, Any]) -> str:
    """ "task, start: " of a few-step row (empty for rows without them)."""
    parts = [r[k] for k in ("task", "start") if r.get(k)]
    return ", ".join(parts) + ": " if parts else ""


def fewstep_section(rows: list[dict[str, Any]], figures: list[str] = ()) -> str:
    """Seed 003's table per snapshot time × credit × k, then the finding lines."""
    out = [
        "## Few-step updates",
        "",
        "| from | epoch | credit | k | lr | ΔL update batch | ΔL held-out | PUR [95% CI] | cos(backprop) | relative variance | acc before → after |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in sorted(rows, key=lambda r: (_where(r), r["epoch"], r["credit"], r["k"])):
        ci = r.get("pur_ci")
        p = (
            "—"
            if r.get("pur") is None
            else f"{r['pur']:+.2f}" + (f" [{ci[0]:+.2f}, {ci[1]:+.2f}]" if ci else "")
        )
        out.append(
            f"| {_where(r).rstrip(': ') or '—'} | {r['epoch']} | {r['credit']} | {r['k']} | {r['lr']:g} | {_num(r['d_train'])} | {_num(r['d_heldout'])} | {p} | "
            f"{r['cosine']:+.2f} | {r['variance']['relative']:.2f} | {r['acc_before']:.3f} → {r['acc_after']:.3f} |"
        )
    out += [
        f"\n![held-out loss change per credit × k against the snapshot epoch](figures/{f})" for f in figures
    ]
    out += ["", *[f"- {line}" for line in fewstep_findings(rows)]]
    return "\n".join(out) + "\n"


def results_section(folder: str, meta: dict[str, Any], summary: dict[str, Any]) -> list[str]:
    """The study's section of docs/results.md: what ran, X accuracy per snapshot, the ports of the
    earliest and latest snapshot, and every finding line (snapshots, then few-step updates)."""
    from loraport.report.results import provenance_line

    st = meta["study"]
    epochs = [r["epoch"] for r in summary["x"]]
    out = [
        f"## {folder}",
        "",
        f"Snapshots study `{st['name']}`: {st['source']} (X) → {st['target']} (Y); the X adapters of "
        f"{', '.join(st['heldout'])} ported at training epochs {st.get('snapshots')}, with anchors taken at "
        f"epochs {st.get('anchor_snapshots')}, by {', '.join(st['methods'])} at N ∈ {st['n_anchors']} over "
        f"seeds {st['seeds']}; {st['eval']['n']} eval items per task. " + provenance_line(folder, meta),
        "",
        "X accuracy per snapshot (mean over the held-out tasks): "
        + ", ".join(f"epoch {r['epoch']} {_acc(r)}" for r in summary["x"])
        + ".",
        "",
    ]
    if epochs:
        ends = [r for r in summary["ports"] if r["epoch"] in (min(epochs), max(epochs))]
        out += [
            "| variant | N | X epoch | anchor epoch | X acc | Y acc [95% CI] | gap recovered [95% CI] |",
            "|---|---|---|---|---|---|---|",
        ]
        for r in ends:
            gci = r["gap_ci"]
            g = _f(r["gap_recovered"]) + (f" [{gci[0]:.3f}, {gci[1]:.3f}]" if gci else "")
            out.append(
                f"| {r['variant']} | {r['n_anchors']} | {r['epoch']} | {r['anchor_epoch']} | "
                f"{_f(r['x_acc'])} | {_acc(r['y'])} | {g} |"
            )
        out.append("")
    out += [f"- {line}" for line in summary["findings"] or ["(none: a single snapshot)"]]
    if summary.get("fewstep"):
        lines = fewstep_findings(summary["fewstep"])
        quiet = ("not distinguishable.", "not claimed.", "at either.")
        claimed = [line for line in lines if not line.endswith(quiet)]
        out += [
            "",
            f"Few-step updates from every snapshot and port ({len(summary['fewstep'])} rows: task × start × "
            f"credit × k; the table is in the report). The {len(claimed)} finding lines a CI supports:",
            "",
            *[f"- {line}" for line in claimed],
            "",
            f"The other {len(lines) - len(claimed)} lines state no effect (not distinguishable, or no CI).",
        ]
    return out
