"""The report's figures (matplotlib, Agg backend)."""

from __future__ import annotations

from pathlib import Path
from typing import Any


def write_figures(folder: Path, agg: list[dict[str, Any]], tasks: dict[str, dict[str, Any]]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    folder.mkdir(parents=True, exist_ok=True)
    rows = [r for r in agg if r["pool"] == "all" and r["gap_recovered"] is not None]

    fig, ax = plt.subplots(figsize=(7, 4))
    for v in sorted({r["variant"] for r in rows}):
        pts = sorted((r for r in rows if r["variant"] == v), key=lambda r: r["n_anchors"])
        xs = [r["n_anchors"] for r in pts]
        ys = [r["gap_recovered"] for r in pts]
        lo = [y - (r["ci95"][0] if r["ci95"] else y) for y, r in zip(ys, pts, strict=True)]
        hi = [(r["ci95"][1] if r["ci95"] else y) - y for y, r in zip(ys, pts, strict=True)]
        ax.errorbar(xs, ys, yerr=[lo, hi], marker="o", capsize=3, label=v)
    ax.axhline(0, color="gray", lw=0.8)
    ax.set(xlabel="anchors N", ylabel="gap recovered (95% CI)", title="gap recovered vs N")
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(folder / "gap_vs_n.png", dpi=110)
    plt.close(fig)

    fig, ax = plt.subplots(figsize=(6, 3.5))
    n_top = max((r["n_anchors"] for r in rows), default=0)
    topk = [r for r in rows if "[k=" in r["variant"] and r["n_anchors"] == n_top]
    for m in sorted({r["method"] for r in topk}):
        pts = sorted(
            (r for r in topk if r["method"] == m), key=lambda r: int(r["variant"].split("k=")[1].rstrip("]"))
        )
        ax.plot(
            [int(r["variant"].split("k=")[1].rstrip("]")) for r in pts],
            [r["gap_recovered"] for r in pts],
            marker="o",
            label=m,
        )
    ax.set(xlabel="K", ylabel="gap recovered", title=f"Top-K sweep (N={n_top})")
    if topk:
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(folder / "k_sweep.png", dpi=110)
    plt.close(fig)

    fig, ax = plt.subplots(figsize=(8, 4))
    top = [r for r in rows if r["n_anchors"] == n_top]
    names = sorted(tasks)
    width = 0.8 / max(1, len(top))
    for i, r in enumerate(sorted(top, key=lambda r: r["variant"])):
        vals = [r["per_task"].get(t, {}).get("gap_recovered", 0.0) for t in names]
        ax.bar([j + i * width for j in range(len(names))], vals, width, label=r["variant"])
    ax.set_xticks([j + 0.4 for j in range(len(names))], names, rotation=40, ha="right", fontsize=7)
    ax.axhline(0, color="gray", lw=0.8)
    ax.set(ylabel="gap recovered", title=f"per task (N={n_top})")
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=6)
    fig.tight_layout()
    fig.savefig(folder / "per_task.png", dpi=110)
    plt.close(fig)


def pareto_front(points: list[tuple[float, float]]) -> list[int]:
    """Indices of the (cost, quality) points no other point beats: none is at most as costly and
    at least as good, and strictly better in one. Sorted by cost."""
    front = [
        i
        for i, (c, q) in enumerate(points)
        if not any((c2 <= c and q2 >= q) and (c2 < c or q2 > q) for c2, q2 in points)
    ]
    return sorted(front, key=lambda i: points[i])


def write_cost_figure(folder: Path, agg: list[dict[str, Any]], cost: dict[str, Any]) -> None:
    """gap_recovered against compute relative to training the oracle (log scale), largest N."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    folder.mkdir(parents=True, exist_ok=True)
    by = {(c["variant"], c["pool"], c["n_anchors"]): c for c in cost["methods"]}
    rows = [r for r in agg if r["pool"] == "all" and r["gap_recovered"] is not None]
    n_top = max((r["n_anchors"] for r in rows), default=0)
    fig, ax = plt.subplots(figsize=(7, 4))
    shown = []
    for r in rows:
        c = by.get((r["variant"], "all", n_top))
        if r["n_anchors"] != n_top or not c or not c["relative_seconds"]:
            continue
        shown.append((r["variant"], c["relative_seconds"], r["gap_recovered"]))
    front = pareto_front([(x, y) for _, x, y in shown])
    for i, (variant, x, y) in enumerate(shown):
        ax.scatter(x, y, color="tab:red" if i in front else "tab:blue", zorder=3)
        ax.annotate(variant, (x, y), fontsize=6)
    if front:
        ax.step(
            [shown[i][1] for i in front],
            [shown[i][2] for i in front],
            where="post",
            color="tab:red",
            lw=1,
            label="Pareto front (no method is cheaper and better)",
        )
        ax.legend(fontsize=7, loc="lower right")
    ax.set_xscale("log")
    ax.axhline(0, color="gray", lw=0.8)
    ax.axvline(1, color="gray", lw=0.8, ls="--")
    ax.set(
        xlabel="port wall time / oracle training time",
        ylabel="gap recovered",
        title=f"cost vs quality (N={n_top})",
    )
    fig.tight_layout()
    fig.savefig(folder / "cost_quality.png", dpi=110)
    plt.close(fig)
