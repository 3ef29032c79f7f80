"""The snapshots report's figure (matplotlib, Agg backend), from its summary alone.

figures/snapshots.png   per X epoch: X's own accuracy and each variant's ported Y accuracy (anchors
                        at their latest epoch), with 95% CIs
figures/fewstep.png     seed 003's question as a picture: per task and start (a port, Y's own
                        snapshot), the held-out loss change of each credit × k against the snapshot
                        epoch, with 95% CIs (symmetric-log axis: backprop moves the loss by orders of
                        magnitude more than the other credits)
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

FILE = "snapshots.png"
FEWSTEP_FILE = "fewstep.png"


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


def write_fewstep_figure(folder: Path, rows: list[dict[str, Any]]) -> list[str]:
    """Write figures/fewstep.png from few-step rows; returns its file name (none without rows)."""
    if not rows:
        return []
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = sorted({(r.get("task", ""), r.get("start", "")) for r in rows})
    folder.mkdir(parents=True, exist_ok=True)
    fig, axes = plt.subplots(1, len(panels), figsize=(3.6 * len(panels), 3.6), squeeze=False)
    for ax, (task, start) in zip(axes[0], panels, strict=True):
        mine = [r for r in rows if (r.get("task", ""), r.get("start", "")) == (task, start)]
        for credit, k in sorted({(r["credit"], r["k"]) for r in mine}):
            pts = sorted((r for r in mine if (r["credit"], r["k"]) == (credit, k)), key=lambda r: r["epoch"])
            ys = [r["d_heldout"] for r in pts]
            cis = [r.get("d_heldout_ci") or [r["d_heldout"]] * 2 for r in pts]
            err = [
                [y - c[0] for y, c in zip(ys, cis, strict=True)],
                [c[1] - y for y, c in zip(ys, cis, strict=True)],
            ]
            ax.errorbar([r["epoch"] for r in pts], ys, yerr=err, fmt="o-" if k == 1 else "s--", capsize=2,
                        label=f"{credit} k={k}")  # fmt: skip
        ax.axhline(0, color="grey", lw=0.6)
        ax.set_yscale("symlog", linthresh=1e-3)
        ax.set_xticks(sorted({r["epoch"] for r in mine}))
        ax.set_title(f"{task}\nfrom {start}" if task else f"from {start}", fontsize=9)
        ax.set_xlabel("snapshot epoch")
    axes[0][0].set_ylabel("held-out ΔL (95% CI)")
    axes[0][-1].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(folder / FEWSTEP_FILE, dpi=110)
    plt.close(fig)
    return [FEWSTEP_FILE]
