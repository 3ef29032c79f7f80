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
    map_dir: Path | None = typer.Option(
        None, "--map", help="A map folder written by `loraport fit` (self-contained; anchors not needed)."
    ),
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
        None,
        "--prompts",
        help='spanfit/distill: JSONL of {"prompt": ...}, your unlabeled prompts (instead of a task\'s).',
    ),
    examples: Path | None = typer.Option(
        None,
        "--examples",
        help='spanfit/distill: JSONL of >= 3 {"prompt": ...} examples (labels optional); new prompts in '
        "their style are synthesized (by the target; --option synthesizer=source: the source) and filtered.",
    ),
    eval_data: Path | None = typer.Option(
        None,
        "--eval",
        help="A labelled JSONL (prompt, answer, scorer per line): the prompts must not repeat its items, "
        "and base target, port and teacher are scored on it after the port (loraport_eval.json).",
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
    anchors (copy, align), or a behaviour method (spanfit, distill) with --task or your own --prompts."""
    import sys

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
            examples=examples,
            init=init,
            eval_data=eval_data,
            progress=sys.stderr.isatty(),
        )
        console.print(f"wrote {path}")
        if eval_data is not None:
            _before_after(path, target_base, eval_data, source_base, adapter)


def _before_after(path: Path, target_base: str, eval_data: Path, source_base, adapter: Path) -> None:
    """Score base target, port and teacher on the labelled file; print the table, write the summary."""
    import json

    from rich.table import Table

    from loraport.adapters import load_adapter
    from loraport.evaluate.compare import EVAL_SUMMARY, before_after
    from loraport.io import atomic_file

    source = source_base or load_adapter(adapter).base_model
    summary = before_after(target_base, path, eval_data, source=source, source_adapter=adapter)
    table = Table(title=f"{eval_data} ({summary['n']} items)")
    for col in ("condition", "model", "scorer", "correct", "invalid", "accuracy"):
        table.add_column(col)
    for name, c in summary["conditions"].items():
        model = c["base"] + (" + adapter" if c["adapter"] else "")
        table.add_row(name, model, c["scorer"], str(c["correct"]), str(c["invalid"]), f"{c['accuracy']:.3f}")
    console.print(table)
    ratio = summary["teacher_ratio"]
    console.print(
        "teacher ratio (port's gain over base / teacher's): "
        + ("undefined (the teacher is no better than base)" if ratio is None else f"{ratio:.2f}")
    )
    with atomic_file(path / EVAL_SUMMARY) as fh:
        fh.write(json.dumps(summary, indent=1) + "\n")
