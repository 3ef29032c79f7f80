"""`loraport map verify MAP [--anchors ANCHORS.yaml]`: check a map folder before sharing or using it."""

from __future__ import annotations

from pathlib import Path

import typer

from loraport.cli.common import console, friendly

app = typer.Typer(no_args_is_help=True, help="Check fitted map folders.")


@app.command("verify")
@friendly
def verify_cmd(
    map_dir: Path = typer.Argument(..., help="A map folder written by `loraport fit`."),
    anchors: Path | None = typer.Option(
        None, "--anchors", help="ANCHORS.yaml: also check that these are the anchors the map was fitted on."
    ),
) -> None:
    """Re-check a map: its header, the content hash of every byte, and (with --anchors) the anchors'
    SHA-256s. Exits 2 with one line naming the file and field on any mismatch."""
    from loraport.api import verify_map

    info = verify_map(map_dir, anchors=anchors)
    checked = f", {info['anchors_checked']} anchor adapters match" if anchors is not None else ""
    size = sum(f.stat().st_size for f in Path(map_dir).iterdir()) / 1e6  # as `loraport fit` reports it
    console.print(
        f"ok: {info['method']} map {info['source_base']} → {info['target_base']}, N={info['n']}, "
        f"{size:.1f} MB, content sha256 {info['content_sha256'][:16]}…{checked}",
        highlight=False,
        soft_wrap=True,
    )
