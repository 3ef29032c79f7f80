"""The snapshots report's figure (matplotlib, Agg backend), from its summary alone.

figures/snapshots.png   per X epoch: X's own accuracy and each variant's ported Y accuracy (anchors
                        at their latest epoch), with 95% CIs
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

FILE = "snapshots.png"


def write_snapshot_figure(folder: Path, summary: dict[str, Any]) -> list[str]:
    """Write the figure into `folder`; returns its file name (none without X snapshots)."""
    if not summary["x"]:
        return []
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    folder.mkdir(parents=True, exist_ok=True)
    fig, ax = plt.subplots(figsize=(5.5, 3.8))

    def plot(points: list[tuple[int, dict[str, Any]]], label: str, style: str) -> None:
        points = [(e, d) for e, d in points if d and "acc" in d]
        if not points:
            return
        xs = [e for e, _ in points]
        ys = [d["acc"] for _, d in points]
        err = [[d["acc"] - d["ci"][0] for _, d in points], [d["ci"][1] - d["acc"] for _, d in points]]
        ax.errorbar(xs, ys, yerr=err, fmt=style, capsize=3, label=label)

    plot([(r["epoch"], r) for r in summary["x"]], "X snapshot on X", "o-")
    ports = summary["ports"]
    last = max((r["anchor_epoch"] for r in ports), default=None)
    for variant, n in sorted({(r["variant"], r["n_anchors"]) for r in ports}):
        rows = [r for r in ports if (r["variant"], r["n_anchors"], r["anchor_epoch"]) == (variant, n, last)]
        plot(
            [(r["epoch"], r["y"]) for r in sorted(rows, key=lambda r: r["epoch"])],
            f"{variant} N={n} on Y",
            "s--",
        )
    ax.set_xticks(sorted(r["epoch"] for r in summary["x"]))
    ax.set(xlabel="X adapter epoch", ylabel="accuracy (95% CI)", title="which snapshot ports best")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(folder / FILE, dpi=110)
    plt.close(fig)
    return [FILE]
