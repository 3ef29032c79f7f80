"""`loraport recipe-measures`: the loss tax and the weight diagnostics of a finished recipe_transfer run.

loraport recipe-measures runs/recipe_transfer --threads 2
"""

from __future__ import annotations

from pathlib import Path

import typer

from loraport.cli.common import console, friendly


@friendly
def recipe_measures(
    run_dir: Path = typer.Argument(..., help="A recipe_transfer run directory written by `loraport bench`."),
    cache: Path | None = typer.Option(
        None, "--cache", help="The cache the run used, if it was not RUN_DIR/cache (`bench --cache`)."
    ),
    threads: int = typer.Option(None, "--threads", help="torch threads (default: leave as is)."),
) -> None:
    """Per-item losses on Y (full precision and every scheme) and each adapter's ΔW spectrum, depth
    profile, CKA, overlap and PCA; writes recipe_measures.json and rebuilds the report with the loss
    tax, the mechanistic checks and whether they predict the quant tax or the cross-base sign."""
    from loraport.bench.recipe_measures import FILE, measure_recipe_run

    out = measure_recipe_run(
        run_dir, cache=cache, threads=threads, log=lambda s: console.print(s, highlight=False)
    )
    console.print(
        f"{len(out['loss'])} losses, {len(out['adapters'])} adapters in {run_dir / FILE}; report rebuilt",
        highlight=False,
    )
