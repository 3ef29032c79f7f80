"""The recipe_transfer report's figures from recipe_measures.json (via the summary alone).

figures/recipe_loss_tax.png   loss tax, recipe × scheme (heatmap, values written in)
figures/recipe_depth.png      ‖ΔW‖_F and base-vs-adapted CKA per layer, per base and recipe
figures/recipe_pca.png        the adapters of every recipe and seed, PC1–PC2 and PC1–PC3, per base
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

FILES = ("recipe_loss_tax.png", "recipe_depth.png", "recipe_pca.png")


def write_measures_figures(folder: Path, summary: dict[str, Any], schemes: list[str]) -> list[str]:
    """Write the figures the summary has data for; returns their file names."""
    if not summary.get("measures"):
        return []
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    folder.mkdir(parents=True, exist_ok=True)
    written = []

    whos = list(dict.fromkeys(r["regularizer"] for r in summary["loss_tax"]))
    by = {(r["regularizer"], r["scheme"]): r["tax"] for r in summary["loss_tax"]}
    grid = np.array([[np.nan if by[(w, s)] is None else by[(w, s)]["delta"] for s in schemes] for w in whos])
    if whos and np.isfinite(grid).any():
        fig, ax = plt.subplots(figsize=(max(5, 1.0 * len(schemes) + 2), max(3, 0.4 * len(whos) + 1.5)))
        lim = max(float(np.nanmax(np.abs(grid))), 1e-3)
        im = ax.imshow(grid, cmap="RdBu_r", vmin=-lim, vmax=lim, aspect="auto")
        for i in range(len(whos)):
            for k in range(len(schemes)):
                if np.isfinite(grid[i, k]):
                    ax.text(k, i, f"{grid[i, k]:+.3f}", ha="center", va="center", fontsize=7)
        ax.set_xticks(range(len(schemes)), schemes, rotation=30, ha="right", fontsize=8)
        ax.set_yticks(range(len(whos)), [w if w != "base" else "base alone" for w in whos], fontsize=8)
        ax.set_title("loss tax on Y (nats/token added by quantizing the base)")
        fig.colorbar(im, ax=ax)
        fig.tight_layout()
        fig.savefig(folder / FILES[0], dpi=110)
        plt.close(fig)
        written.append(FILES[0])

    sides = list(dict.fromkeys(r["side"] for r in summary["depth"]))
    if sides:
        fig, axes = plt.subplots(2, len(sides), figsize=(4.2 * len(sides), 6), squeeze=False)
        for j, side in enumerate(sides):
            for r in (r for r in summary["depth"] if r["side"] == side):
                axes[0, j].plot(r["norm"], marker=".", label=r["regularizer"])
                axes[1, j].plot(range(1, len(r["cka"]) + 1), r["cka"], marker=".", label=r["regularizer"])
            axes[0, j].set(title=f"{side}: ‖ΔW‖_F per layer", xlabel="layer")
            axes[1, j].set(title=f"{side}: CKA base vs adapted", xlabel="decoder layer")
        axes[0, 0].legend(fontsize=6)
        fig.tight_layout()
        fig.savefig(folder / FILES[1], dpi=110)
        plt.close(fig)
        written.append(FILES[1])

    pcas = summary["pca"]
    if pcas:
        fig, axes = plt.subplots(2, len(pcas), figsize=(4.2 * len(pcas), 7), squeeze=False)
        for j, p in enumerate(pcas):
            c = np.asarray(p["coords"])
            regs = list(dict.fromkeys(p["regularizers"]))
            for reg in regs:
                rows = [i for i, r in enumerate(p["regularizers"]) if r == reg]
                for ax, k in ((axes[0, j], 1), (axes[1, j], 2)):
                    ax.scatter(c[rows, 0], c[rows, k], label=reg, s=22)
            ex = p["explained"]
            axes[0, j].set(
                title=f"{p['task']} on {p['side'].upper()}",
                xlabel=f"PC1 ({ex[0]:.0%})",
                ylabel=f"PC2 ({ex[1]:.0%})",
            )
            axes[1, j].set(xlabel=f"PC1 ({ex[0]:.0%})", ylabel=f"PC3 ({ex[2]:.0%})")
        axes[0, 0].legend(fontsize=6)
        fig.tight_layout()
        fig.savefig(folder / FILES[2], dpi=110)
        plt.close(fig)
        written.append(FILES[2])
    return written
