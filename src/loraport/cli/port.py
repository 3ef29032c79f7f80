"""`loraport port`: write a PEFT LoRA for the target base from a source adapter."""

from __future__ import annotations

from pathlib import Path

import typer

from loraport.cli.common import AllowPickle, Force, console, friendly, method_options


@friendly
def port(
    adapter: Path = typer.Option(..., "--adapter", help="Source adapter (PEFT folder)."),
    target_base: str = typer.Option(
        ..., "--target-base", help="Target model: folder, cached hub id or .gguf."
    ),
    out: Path = typer.Option(..., "--out", help="Output PEFT folder."),
    map_dir: Path | None = typer.Option(None, "--map", help="A map saved by `loraport fit`."),
    anchors: Path | None = typer.Option(None, "--anchors", help="ANCHORS.yaml, to fit on the fly."),
    method: str | None = typer.Option(None, "--method", help="Method to fit on the fly (or `copy`)."),
    k: int | None = typer.Option(None, "--k", help="Top-K for topk_* methods."),
    option: list[str] | None = typer.Option(None, "--option", help="Method option key=value (repeatable)."),
    seed: int = typer.Option(0, "--seed"),
    force: bool = Force,
    allow_pickle: bool = AllowPickle,
) -> None:
    """Port one adapter: through a fitted --map, or --anchors + --method, or --method copy."""
    from loraport.api import port as port_api

    path = port_api(
        adapter,
        target_base,
        out,
        map_dir=map_dir,
        anchors=anchors,
        method=method,
        options=method_options(k, option),
        seed=seed,
        force=force,
        allow_pickle=allow_pickle,
    )
    console.print(f"wrote {path}")
