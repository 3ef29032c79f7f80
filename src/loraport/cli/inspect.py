"""`loraport inspect`: what an adapter folder holds."""

from __future__ import annotations

import json
from pathlib import Path

import typer
from rich.table import Table

from loraport.cli.common import AllowPickle, console, friendly


@friendly
def inspect(
    adapter: Path = typer.Argument(..., help="PEFT LoRA folder."),
    as_json: bool = typer.Option(False, "--json", help="Print machine-readable JSON."),
    allow_pickle: bool = AllowPickle,
) -> None:
    """Base, target modules, rank, alpha, provenance and per-layer ΔW norms."""
    from loraport.api import inspect_adapter

    info = inspect_adapter(adapter, allow_pickle=allow_pickle)
    if as_json:
        console.print_json(json.dumps(info))
        return
    console.print(f"[bold]{adapter}[/bold]")
    for key in ("base_model", "rank", "alpha", "use_rslora", "scaling", "target_modules", "num_modules"):
        console.print(f"  {key}: {info[key]}")
    if info["provenance"]:
        console.print(f"  provenance: {json.dumps(info['provenance'])}", soft_wrap=True)
    table = Table(title="‖ΔW‖_F per layer and projection")
    roles = sorted({r for row in info["norms"].values() for r in row})
    table.add_column("layer", justify="right")
    for r in roles:
        table.add_column(r, justify="right")
    for layer, row in info["norms"].items():
        table.add_row(str(layer), *(f"{row[r]:.4g}" if r in row else "" for r in roles))
    console.print(table)
