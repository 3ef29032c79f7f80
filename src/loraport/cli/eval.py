"""`loraport eval`: score a base (optionally with an adapter) on a task, item by item."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.table import Table

from loraport.cli.common import BaseModelOpt, ChatOpt, DeviceOpt, TaskOpt, console, friendly


@friendly
def eval_cmd(
    base: str = BaseModelOpt,
    task: str = TaskOpt,
    adapter: Path = typer.Option(None, "--adapter", help="PEFT adapter folder to merge into the base."),
    limit: int = typer.Option(300, "--limit", help="Number of eval items."),
    seed: int = typer.Option(0, "--seed", help="Which eval items are drawn."),
    out: Path = typer.Option(None, "--out", help="Write per-item records (JSONL) here."),
    max_new_tokens: int = typer.Option(
        None,
        "--max-new-tokens",
        help="Generation budget (default: from the reference answers' length, right for the zoo; "
        "give more for real models that explain before answering).",
    ),
    device: str | None = DeviceOpt,
    chat_template: str | None = ChatOpt,
) -> None:
    """Evaluate with every scorer the task lists; prints accuracy and parse failures per scorer."""
    from rich.progress import Progress

    from loraport.evaluate import evaluate
    from loraport.models.chat import use_chat_template

    with use_chat_template(chat_template), Progress(transient=True) as bar:
        job = bar.add_task(f"generating {task}", total=limit)
        result = evaluate(
            base,
            task,
            adapter=adapter,
            max_new=max_new_tokens,
            n=limit,
            seed=seed,
            progress=lambda k: bar.advance(job, k),
            device=device,
        )
    table = Table(title=f"{task} on {base}" + (f" + {adapter}" if adapter else ""))
    for col in ("scorer", "n", "correct", "invalid", "accuracy"):
        table.add_column(col)
    for scorer, s in result.summary().items():
        table.add_row(scorer, str(s["n"]), str(s["correct"]), str(s["invalid"]), f"{s['accuracy']:.3f}")
    console.print(table)
    if out is not None:
        console.print(f"per-item records: {result.save(out)}", highlight=False)
