"""`loraport methods`: the registry with what each method needs and its options."""

from __future__ import annotations

from rich.table import Table

from loraport.cli.common import console, friendly


@friendly
def methods() -> None:
    """List port methods, what each needs, and its options with defaults."""
    from loraport.port import METHODS

    table = Table()
    for col in ("method", "needs", "options", "what it does"):
        table.add_column(col)
    for name in METHODS.names():
        cls = METHODS.get(name)
        opts = ", ".join(f"{k}={v.default}" for k, v in cls.Options.model_fields.items()) or "—"
        table.add_row(name, cls.needs, opts, cls.summary)
    console.print(table)
