"""`loraport demo`: the end-to-end study on the embedded default, offline."""

from __future__ import annotations

from pathlib import Path

import typer

from loraport.cli.common import console, friendly


@friendly
def demo(
    out: Path = typer.Option(Path("runs/demo"), "--out", help="Run folder (report.md, summary.json)."),
    seeds: int = typer.Option(3, "--seeds", help="Number of seeds."),
) -> None:
    """Build two tiny models, port held-out adapters with every method, print the table."""
    from loraport.demo import run_demo

    summary = run_demo(out, seeds=tuple(range(seeds)), log=lambda s: console.print(s, highlight=False))
    console.print((out / "report.md").read_text(), highlight=False, markup=False)
    console.print(
        f"wrote {out}/report.md, summary.json, records.jsonl ({summary['provenance']['seconds']} s)"
    )
