"""`loraport train`: one LoRA adapter for one task on one base."""

from __future__ import annotations

from pathlib import Path

import typer

from loraport.cli.common import BaseModelOpt, ChatOpt, DeviceOpt, Force, TaskOpt, console, friendly


@friendly
def train(
    base: str = BaseModelOpt,
    task: str = TaskOpt,
    out: Path = typer.Option(
        ..., "--out", help="Output folder (PEFT adapter + checkpoints + train_log.json)."
    ),
    rank: int = typer.Option(16, "--rank", "-r"),
    alpha: float = typer.Option(32.0, "--alpha"),
    target_modules: str = typer.Option(
        None, "--target-modules", help="Comma-separated (default: every projection)."
    ),
    epochs: int = typer.Option(4, "--epochs"),
    examples: int = typer.Option(2000, "--examples", help="Training items drawn from the task."),
    batch: int = typer.Option(32, "--batch"),
    lr: float = typer.Option(5e-3, "--lr"),
    max_length: int = typer.Option(256, "--max-length"),
    seed: int = typer.Option(0, "--seed"),
    force: bool = Force,
    device: str | None = DeviceOpt,
    chat_template: str | None = ChatOpt,
) -> None:
    """Train a LoRA adapter (deterministic for a seed; one checkpoint per epoch)."""
    import json

    from pydantic import ValidationError

    from loraport.errors import LoraportError
    from loraport.train import LOG_NAME, Recipe, train_lora

    try:
        recipe = Recipe(
            rank=rank,
            alpha=alpha,
            target_modules=tuple(target_modules.split(",")) if target_modules else None,
            epochs=epochs,
            examples=examples,
            batch=batch,
            lr=lr,
            max_length=max_length,
            seed=seed,
        )
    except ValidationError as e:
        err = e.errors()[0]
        raise LoraportError(f"recipe field {'.'.join(map(str, err['loc']))}: {err['msg']}") from None
    from loraport.models.chat import use_chat_template

    with use_chat_template(chat_template):
        path = train_lora(base, task, recipe, out=out, force=force, device=device)
    log = json.loads((path / LOG_NAME).read_text())
    console.print(
        f"{path}: {log['steps']} steps in {log['seconds']} s ({log['steps_per_second']} step/s), "
        f"final loss {log['losses'][-1]}",
        highlight=False,
    )
