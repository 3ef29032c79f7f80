"""The report's "Two ratios" section: every method's gap_recovered (against Y's oracle) beside its
teacher ratio (against X + X adapter, bench.teacher_ratio), aggregated and per task, as Markdown.

    lines = two_ratios_section(summary["teacher_ratio"], agg, n_anchors=8, variants=variants)
"""

from __future__ import annotations

from typing import Any


def _num(x: float | None, signed: bool = False) -> str:
    return "—" if x is None else (f"{x:+.3f}" if signed else f"{x:.3f}")


def _pm(value: float | None, std: float | None) -> str:
    return f"{_num(value)} ± {'n/a' if std is None else f'{std:.3f}'}"


def _ci(ci: list[float] | None) -> str:
    return "—" if not ci else f"{ci[0]:.3f} … {ci[1]:.3f}"


def two_ratios_section(
    ratios: dict[str, Any], agg: list[dict[str, Any]], n_anchors: int, variants: list[str]
) -> list[str]:
    """Markdown lines: per method variant at N=n_anchors (pool `all`) its aggregate gap_recovered
    and teacher ratio with CIs; then the per-task teacher ratios, undefined tasks flagged."""
    by = {r["variant"]: r for r in ratios["aggregates"] if r["pool"] == "all" and r["n_anchors"] == n_anchors}
    gaps = {r["variant"]: r for r in agg if r["pool"] == "all" and r["n_anchors"] == n_anchors}
    tasks = ratios["tasks"]
    pooled = ratios["aggregate_tasks"]
    L = [
        f"## Two ratios: against the oracle and against the teacher (N={n_anchors}, pool `all`)",
        "",
        "gap_recovered = (method − base Y) / (oracle − base Y); teacher ratio = (method − base Y) / "
        "(teacher − base Y), where the teacher is X + X adapter on the same eval items. A teacher ratio "
        "≥ 1 is what the label-free literature calls lossless. Mean ± std over seeds; 95% paired "
        "bootstrap CIs over items. gap_recovered averages over every usable task, as elsewhere in this "
        "report; the teacher ratio over the usable tasks whose teacher beats base Y by at least the "
        f"usable threshold ({ratios['threshold']}): " + (", ".join(pooled) if pooled else "none") + ".",
        "",
        "| method | gap_recovered | 95% CI | teacher ratio | 95% CI | tasks (teacher ratio) |",
        "|---|---|---|---|---|---|",
    ]
    for v in variants:
        g, r = gaps.get(v), by.get(v)
        if g is None and r is None:
            continue
        L.append(
            f"| {v} | {_pm(g['gap_recovered'], g['std']) if g else '—'} | {_ci(g['ci95']) if g else '—'} | "
            f"{_pm(r['teacher_ratio'], r['std']) if r else '—'} | {_ci(r['ci95']) if r else '—'} | "
            f"{len(r['tasks']) if r else 0} |"
        )
    shown = [v for v in variants if v in by]
    if tasks and shown:
        L += [
            "",
            "Per task (teacher ratio, mean over seeds; — : undefined, the reason in the last column):",
            "",
            "| task | teacher − base (pts) | " + " | ".join(shown) + " | note |",
            "|---|---|" + "---|" * len(shown) + "---|",
        ]
        for t, info in sorted(tasks.items()):
            gain = info["teacher_minus_base"]
            cells = [_num(by[v]["per_task"].get(t, {}).get("teacher_ratio"), signed=True) for v in shown]
            note = info["why_undefined"] or (
                "" if info["in_aggregate"] else "oracle unusable: not aggregated"
            )
            L.append(
                f"| {t} | {'—' if gain is None else f'{100 * gain:+.1f}'} | "
                + " | ".join(cells)
                + f" | {f'**{note}**' if info['why_undefined'] else note} |"
            )
    if not pooled:
        L += ["", "No usable task has a defined teacher ratio (see the notes above), so none is aggregated."]
    return L
