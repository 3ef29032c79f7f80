"""`loraport fewstep`: few-step updates from the snapshots of a finished snapshots run.

    loraport fewstep runs/snapshots --credit backprop --credit dfa --credit transfer --k 1 --k 5 \
        --lr 0.01 --lr 0.1 --lr 1.0 --threads 2
"""

from __future__ import annotations

from pathlib import Path

import typer

from loraport.cli.common import console, friendly


@friendly
def fewstep(
    run_dir: Path = typer.Argument(..., help="A snapshots run directory written by `loraport bench`."),
    credit: list[str] = typer.Option(
        ["backprop", "dfa", "transfer"], "--credit", help="backprop, dfa or transfer (repeat for several)."
    ),
    k: list[int] = typer.Option([1, 5], "--k", help="Update steps from the frozen start (repeat; ≥ 1)."),
    lr: list[float] = typer.Option(
        [0.01, 0.1, 1.0], "--lr", help="Step-size grid (repeat); the best is chosen on the update batches."
    ),
    batches: int = typer.Option(4, "--batches", help="Update batches (from the task's train split)."),
    batch_size: int = typer.Option(8, "--batch-size", help="Items per update batch."),
    heldout: int = typer.Option(32, "--heldout", help="Held-out eval items that score each update."),
    threads: int = typer.Option(None, "--threads", help="torch threads (default: leave as is)."),
) -> None:
    """Few-step updates (backprop, DFA, transferred credit) from each snapshot's port and Y's own
    snapshot; writes fewstep.json and rebuilds the report with its table."""
    from loraport.bench.fewstep_study import run_fewsteps
    from loraport.train.fewstep import check_args

    check_args(credit, k, lr)  # bad arguments: one line, before any work
    rows = run_fewsteps(
        run_dir,
        credits=credit,
        ks=k,
        lrs=lr,
        batches=batches,
        batch_size=batch_size,
        heldout_n=heldout,
        threads=threads,
    )
    console.print(f"{len(rows)} few-step rows in {run_dir / 'fewstep.json'}; report rebuilt", highlight=False)
