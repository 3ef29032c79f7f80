"""`loraport tasks list`: the registered tasks."""

from __future__ import annotations

import typer
from rich.table import Table

from loraport.cli.common import console, friendly

app = typer.Typer(no_args_is_help=True, help="The task suite.")


@app.command("list")
@friendly
def list_cmd(
    domain: str = typer.Option(None, "--domain", help="Only this domain (math, code, science)."),
    role: str = typer.Option(
        None, "--role", help="Only anchors, held-out or procedural tasks (anchor, heldout, procedural)."
    ),
) -> None:
    """List tasks with their domain, role, scorers and (for held-out tasks) related anchors."""
    from loraport.tasks import get_task, list_tasks

    table = Table()
    table.add_column("task", no_wrap=True)
    for col in ("domain", "role", "scorers", "related", "description"):
        table.add_column(col)
    for name in list_tasks(domain=domain, role=role):
        t = get_task(name)
        table.add_row(name, t.domain, t.role, ", ".join(t.scorers), ", ".join(t.related), t.description)
    console.print(table)
