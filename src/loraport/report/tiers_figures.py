"""The tiers report's figure (matplotlib, Agg backend), from its summary alone.

figures/tiers.png   left: pre-Δ, post-Δ and lift per tier with 95% CIs; right: each port
                    variant's accuracy per tier beside the base and the oracle (procedure prompts)
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

FILE = "tiers.png"


def write_tiers_figure(folder: Path, summary: dict[str, Any]) -> list[str]:
    """Write the figure into `folder`; returns its file name in a list ([] without any number)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    tiers = summary["tiers"]
    labels = [Path(t).name for t in tiers]
    if not any(r[w] for r in summary["procedure"] for w in ("pre", "post", "lift")):
        return []
    folder.mkdir(parents=True, exist_ok=True)
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 3.8))
    for j, what in enumerate(("pre", "post", "lift")):
        xs, ys, err = [], [], [[], []]
        for i, r in enumerate(summary["procedure"]):
            d = r[what]
            if d is None:
                continue
            xs.append(i + (j - 1) * 0.2)
            ys.append(d["delta"])
            err[0].append(d["delta"] - d["ci"][0])
            err[1].append(d["ci"][1] - d["delta"])
        left.errorbar(xs, ys, yerr=err, fmt="o", capsize=3, label=f"{what}-Δ" if what != "lift" else "lift")
    left.axhline(0, color="gray", lw=0.8)
    left.set_xticks(range(len(tiers)), labels, fontsize=8)
    left.set_ylabel("Δ accuracy (procedure − plain)")
    left.legend(fontsize=8)
    first = {r["tier"]: r for r in summary["ports"]}
    for who in ("base", "oracle"):
        right.plot(labels, [first.get(t, {}).get(who) for t in tiers], "--", marker="s", label=who)
    for variant in sorted({r["variant"] for r in summary["ports"]}):
        acc = {r["tier"]: r["accuracy"] for r in summary["ports"] if r["variant"] == variant}
        right.plot(labels, [acc.get(t) for t in tiers], marker="o", label=f"port {variant}")
    right.set_ylabel("accuracy (procedure prompts)")
    if summary["ports"]:
        right.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(folder / FILE, dpi=120)
    plt.close(fig)
    return [FILE]
