"""The recipe_transfer report's figures (matplotlib, Agg backend), from its summary alone.

figures/recipe_deltas.png      Δ vs none per regularizer on X and on Y, with 95% CIs
figures/recipe_quant_tax.png   quant tax, regularizer × scheme (heatmap, values written in)
figures/recipe_waterfall.png   accuracy per stage: base Y, + adapter, quantized Y + adapter
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

FILES = ("recipe_deltas.png", "recipe_quant_tax.png", "recipe_waterfall.png")


def write_recipe_figures(folder: Path, summary: dict[str, Any], schemes: list[str]) -> list[str]:
    """Write the three figures into `folder`; returns their file names."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    folder.mkdir(parents=True, exist_ok=True)

    rows = summary["deltas"]
    fig, ax = plt.subplots(figsize=(max(5, 0.8 * len(rows) + 2), 3.8))
    sides = ["x", "y", *(rows[0].get("tiers", {}) if rows else {})]  # a study's other tiers too
    for j, side in enumerate(sides):
        xs, ys, err = [], [], [[], []]
        for i, r in enumerate(rows):
            d = r[side] if side in ("x", "y") else r["tiers"][side]
            if d is None:
                continue
            xs.append(i + (j - (len(sides) - 1) / 2) * 0.6 / len(sides))
            ys.append(d["delta"])
            err[0].append(d["delta"] - d["ci"][0])
            err[1].append(d["ci"][1] - d["delta"])
        label = f"on {side.upper()}" if side in ("x", "y") else f"on {side}"
        ax.errorbar(xs, ys, yerr=err, fmt="o", capsize=3, color=f"C{j}", label=label)
    ax.axhline(0, color="gray", lw=0.8)
    ax.set_xticks(range(len(rows)), [r["regularizer"] for r in rows], rotation=30, ha="right", fontsize=8)
    ax.set(ylabel="Δ accuracy vs none (95% CI)", title="regularizer effect per base")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(folder / FILES[0], dpi=110)
    plt.close(fig)

    whos = list(dict.fromkeys(r["regularizer"] for r in summary["quant_tax"]))
    by = {(r["regularizer"], r["scheme"]): r["tax"] for r in summary["quant_tax"]}
    grid = np.array([[np.nan if by[(w, s)] is None else by[(w, s)]["delta"] for s in schemes] for w in whos])
    fig, ax = plt.subplots(figsize=(max(5, 1.0 * len(schemes) + 2), max(3, 0.4 * len(whos) + 1.5)))
    lim = float(np.nanmax(np.abs(grid))) if np.isfinite(grid).any() else 1.0
    im = ax.imshow(grid, cmap="RdBu_r", vmin=-max(lim, 1e-3), vmax=max(lim, 1e-3), aspect="auto")
    for i in range(len(whos)):
        for k in range(len(schemes)):
            if np.isfinite(grid[i, k]):
                ax.text(k, i, f"{grid[i, k]:+.2f}", ha="center", va="center", fontsize=7)
    ax.set_xticks(range(len(schemes)), schemes, rotation=30, ha="right", fontsize=8)
    ax.set_yticks(range(len(whos)), [w if w != "base" else "base alone" for w in whos], fontsize=8)
    ax.set_title("quant tax on Y (accuracy lost by quantizing the base)")
    fig.colorbar(im, ax=ax)
    fig.tight_layout()
    fig.savefig(folder / FILES[1], dpi=110)
    plt.close(fig)

    stages = ["base Y", "+ adapter", *(f"{s} + adapter" for s in schemes)]
    fig, ax = plt.subplots(figsize=(max(6, 0.9 * len(stages) + 2), 4))
    for r in summary["waterfall"]:
        if r["regularizer"] == "base only":
            continue
        ys = [r["base_y"], r["adapter_y"], *(r["quantized"][s] for s in schemes)]
        ax.plot(
            range(len(stages)), [np.nan if y is None else y for y in ys], marker="o", label=r["regularizer"]
        )
    ax.set_xticks(range(len(stages)), stages, rotation=30, ha="right", fontsize=8)
    ax.set(ylabel="accuracy", title="waterfall on Y: base → + adapter → quantized base + adapter")
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(folder / FILES[2], dpi=110)
    plt.close(fig)
    return list(FILES)
