"""`loraport port`: write a PEFT LoRA for the target base from a source adapter."""

from __future__ import annotations

from pathlib import Path

import typer

from loraport.cli.common import AllowPickle, ChatOpt, DeviceOpt, Force, console, friendly, method_options


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
    source_base: str | None = typer.Option(
        None,
        "--source-base",
        help="Source model (align/spanfit/distill; default: the anchors' or adapter's).",
    ),
    task: str | None = typer.Option(
        None,
        "--task",
        help="spanfit/distill: the task whose train prompts are used and whose eval items they must avoid.",
    ),
    prompts: Path | None = typer.Option(
        None, "--prompts", help='spanfit/distill: JSONL of {"prompt": ...} instead.'
    ),
    init: str | None = typer.Option(
        None,
        "--init",
        help="distill: start from zero, a method's port (align, global_ridge, spanfit) or an adapter folder.",
    ),
    steps: int | None = typer.Option(None, "--steps", help="spanfit/distill: optimiser steps."),
    seconds: float | None = typer.Option(None, "--seconds", help="distill: wall-clock budget in seconds."),
    force: bool = Force,
    allow_pickle: bool = AllowPickle,
    device: str | None = DeviceOpt,
    chat_template: str | None = ChatOpt,
) -> None:
    """Port one adapter: through a fitted --map, or --anchors + --method, or a method that needs no
    anchors (copy, align), or a behaviour method (spanfit, distill) with --task."""
    from loraport.api import port as port_api
    from loraport.device import use_device
    from loraport.models.chat import use_chat_template

    options = method_options(k, option)
    options.update({k: v for k, v in (("steps", steps), ("seconds", seconds)) if v is not None})
    with use_device(device), use_chat_template(chat_template):
        path = port_api(
            adapter,
            target_base,
            out,
            map_dir=map_dir,
            anchors=anchors,
            method=method,
            options=options,
            seed=seed,
            force=force,
            allow_pickle=allow_pickle,
            source_base=source_base,
            task=task,
            prompts=prompts,
            init=init,
        )
    console.print(f"wrote {path}")
