"""The report's cost-curve section and figure (bench.cost_curve): each budget sweep's gap_recovered
and teacher ratio against compute, where it stops gaining and where it crosses the teacher.

    lines = cost_curve_section(summary["cost_curve"], teacher_gap=summary["teacher_ceiling"]["gap_recovered"])
    write_cost_curve_figure(run_dir / "figures", summary["cost_curve"], teacher_gap=0.6)
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

FIGURE = "cost_curve.png"


def _num(x: float | None, fmt: str = ".3f") -> str:
    return "—" if x is None else format(x, fmt)


def _ci(ci: list[float] | None) -> str:
    return "—" if not ci else f"{ci[0]:.3f} … {ci[1]:.3f}"


def _reading(curve: dict[str, Any]) -> str:
    stop = curve["stops_gaining_at"]
    if stop is None:
        gains = "no budget has a gap_recovered"
    elif curve["still_gaining"]:
        gains = f"still gaining at the largest budget (steps={stop})"
    else:
        gains = f"stops gaining at steps={stop} (no larger budget beats its CI's upper end)"
    cross, sure = curve["crosses_teacher_at"], curve["crosses_teacher_ci_at"]
    if cross is None:
        teacher = "never reaches the teacher (teacher ratio < 1, or undefined, at every budget)"
    else:
        teacher = f"reaches the teacher at steps={cross} (teacher ratio ≥ 1)" + (
            f", with its CI's lower end ≥ 1 from steps={sure}"
            if sure is not None
            else "; no budget's CI lower end reaches 1"
        )
    return f"{gains}; {teacher}."


def oracle_curve_lines(points: list[dict[str, Any]]) -> list[str]:
    """The oracle's learning curve as a table (a blank line first); [] without checkpoints."""
    if not points:
        return []
    tasks = sorted({t for p in points for t in p["per_task"]})
    L = [
        "",
        "**The oracle itself, after each earlier epoch** (Y's adapter trained on the labels, scored on "
        "the same items): what the labels taught Y at that share of the oracle's optimiser steps. A "
        "label-free port with a smaller budget competes with these rows, not with the finished oracle.",
        "",
        "| epoch | steps / oracle | gap_recovered | 95% CI | "
        + " | ".join(f"{t} accuracy" for t in tasks)
        + " |",
        "|---|---|---|---|" + "---|" * len(tasks),
    ]
    for p in points:
        accs = [_num(p["per_task"].get(t, {}).get("acc")) for t in tasks]
        L.append(
            f"| {p['epoch']} of {p['epochs']} | {p['relative_steps']:.2f} | {_num(p['gap_recovered'])} | "
            f"{_ci(p['ci95'])} | " + " | ".join(accs) + " |"
        )
    return L


def cost_curve_section(
    curves: list[dict[str, Any]], teacher_gap: float | None = None, oracle_points: list[dict[str, Any]] = ()
) -> list[str]:
    """Markdown lines (a blank line first): per curve a table of its budgets and its two readings,
    then the oracle's own curve where the run has its checkpoints; [] without a sweep."""
    if not curves:
        return []
    oracle = curves[0]["oracle"]
    L = [
        "",
        "## Cost curve: quality against compute (budget sweep)",
        "",
        "Each row is one budget of optimiser steps; compute is what the port recorded (wall time "
        "includes the teacher's answers and the init port), relative to training the oracle "
        f"({_num(oracle['steps'], '.0f')} steps, {_num(oracle['seconds'], '.1f')} s). "
        "95% paired bootstrap CIs over items. "
        + (
            f"The teacher (X + X adapter) recovers {teacher_gap:.3f} of the gap. "
            if teacher_gap is not None
            else ""
        )
        + f"Figure: `figures/{FIGURE}`.",
    ]
    for c in curves:
        L += [
            "",
            f"**{c['family']}** (N={c['n_anchors']}, pool `{c['pool']}`): {_reading(c)}",
            "",
            "| steps | steps / oracle | teacher tokens | wall / oracle | gap_recovered | 95% CI "
            "| teacher ratio | 95% CI |",
            "|---|---|---|---|---|---|---|---|",
        ]
        for p in c["points"]:
            L.append(
                f"| {p['budget']} | {_num(p['relative_steps'], '.2f')} | "
                f"{_num(p['generated_tokens'], '.0f')} | {_num(p['relative_seconds'], '.2f')} | "
                f"{_num(p['gap_recovered'])} | {_ci(p['ci95'])} | {_num(p['teacher_ratio'])} | "
                f"{_ci(p['teacher_ci95'])} |"
            )
    return L + oracle_curve_lines(list(oracle_points))


def write_cost_curve_figure(
    folder: Path,
    curves: list[dict[str, Any]],
    teacher_gap: float | None = None,
    oracle_points: list[dict[str, Any]] = (),
) -> Path | None:
    """Two panels against wall time / oracle training (log): gap_recovered (the teacher's dashed,
    the oracle's earlier epochs as black squares at their share of its steps, with the finished
    oracle at 1) and teacher ratio (1 dashed), one line per curve with CI bars. None without a sweep."""
    if not curves:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import FormatStrFormatter

    folder.mkdir(parents=True, exist_ok=True)
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    for c in curves:
        pts = [p for p in c["points"] if p["relative_seconds"]]
        label = f"{c['family']} (N={c['n_anchors']}, {c['pool']})"
        for ax, value, ci in ((axes[0], "gap_recovered", "ci95"), (axes[1], "teacher_ratio", "teacher_ci95")):
            shown = [p for p in pts if p[value] is not None]
            if not shown:
                continue
            xs, ys = [p["relative_seconds"] for p in shown], [p[value] for p in shown]
            lo = [y - (p[ci][0] if p[ci] else y) for y, p in zip(ys, shown, strict=True)]
            hi = [(p[ci][1] if p[ci] else y) - y for y, p in zip(ys, shown, strict=True)]
            ax.errorbar(xs, ys, yerr=[lo, hi], marker="o", capsize=3, label=label)
            for x, y, p in zip(xs, ys, shown, strict=True):
                ax.annotate(str(p["budget"]), (x, y), fontsize=6, xytext=(3, 3), textcoords="offset points")
    shown = [p for p in oracle_points if p["gap_recovered"] is not None]
    if shown:
        xs = [p["relative_steps"] for p in shown] + [1.0]
        ys = [p["gap_recovered"] for p in shown] + [1.0]
        lo = [y - (p["ci95"][0] if p["ci95"] else y) for y, p in zip(ys, shown, strict=False)] + [0.0]
        hi = [(p["ci95"][1] if p["ci95"] else y) - y for y, p in zip(ys, shown, strict=False)] + [0.0]
        axes[0].errorbar(
            xs,
            ys,
            yerr=[lo, hi],
            color="black",
            marker="s",
            ls=":",
            capsize=3,
            label="Y oracle on labels, per epoch (x: its share of steps)",
        )
    if teacher_gap is not None:
        axes[0].axhline(teacher_gap, color="tab:red", ls="--", lw=1, label="teacher")
    axes[1].axhline(1, color="tab:red", ls="--", lw=1, label="teacher (ratio 1)")
    for ax, name in zip(axes, ("gap recovered", "teacher ratio"), strict=True):
        ax.set_xscale("log")
        # plain numbers (0.2, 0.3) on the log axis, not powers of ten
        ax.xaxis.set_major_formatter(FormatStrFormatter("%g"))
        ax.xaxis.set_minor_formatter(FormatStrFormatter("%g"))
        ax.tick_params(axis="x", which="minor", labelsize=7)
        ax.axhline(0, color="gray", lw=0.8)
        ax.set(xlabel="port wall time / oracle training time", ylabel=f"{name} (95% CI)")
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=6)
    fig.suptitle("cost curve: budgets of optimiser steps (labels)", fontsize=9)
    fig.tight_layout()
    path = folder / FIGURE
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
