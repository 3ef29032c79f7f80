"""`loraport fit`: fit a port method on anchor pairs and save the map folder (see port.mapfile)."""

from __future__ import annotations

from pathlib import Path

import typer

from loraport.cli.common import AllowPickle, Force, console, friendly, method_options


@friendly
def fit(
    anchors: Path = typer.Option(..., "--anchors", help="ANCHORS.yaml: bases and anchor pairs."),
    method: str = typer.Option(..., "--method", help="Port method (see `loraport methods`)."),
    out: Path = typer.Option(
        ..., "--out", help="Folder for the fitted map (self-contained: shareable without the anchors)."
    ),
    k: int | None = typer.Option(None, "--k", help="Top-K: anchors used per input (topk_* methods)."),
    option: list[str] | None = typer.Option(None, "--option", help="Method option key=value (repeatable)."),
    seed: int = typer.Option(0, "--seed"),
    layers: str = typer.Option(
        "relative", "--layers", help="Layer pairing: relative (depth) or cka (both bases read generic text)."
    ),
    force: bool = Force,
    allow_pickle: bool = AllowPickle,
) -> None:
    """Fit a map from N anchor pairs (the same task's adapter on the source and the target base)."""
    from loraport.api import fit as fit_api

    fmap = fit_api(
        anchors,
        method,
        out,
        options=method_options(k, option),
        seed=seed,
        layers=layers,
        force=force,
        allow_pickle=allow_pickle,
    )
    size = sum(f.stat().st_size for f in Path(out).iterdir()) / 1e6
    console.print(
        f"fitted {fmap.method} on N={fmap.n} anchors in {fmap.fit_seconds:.2f}s → {out} "
        f"({size:.1f} MB, self-contained; content sha256 {fmap.content_sha256[:16]}…)",
        highlight=False,
        soft_wrap=True,
    )
