"""`loraport zoo build|list|path`: the embedded base models."""

from __future__ import annotations

import typer
from rich.table import Table

from loraport.cli.common import console, friendly

app = typer.Typer(no_args_is_help=True, help="Build, list and locate the embedded base models.")


@app.command("build")
@friendly
def build_cmd(
    names: list[str] = typer.Argument(None, help="Zoo models to build (default: all)."),
) -> None:
    """Build zoo models that are not cached yet (seeded; later runs reuse them)."""
    from loraport.zoo import build_many, build_record, get_spec, is_built, zoo_specs

    todo = names or list(zoo_specs())
    for name in todo:
        get_spec(name)  # unknown names fail before any work
    cached = {name: is_built(name) for name in todo}
    if not all(cached.values()):
        console.print(f"building {', '.join(n for n, c in cached.items() if not c)}")
    for name, path in zip(todo, build_many(todo), strict=True):
        rec = build_record(name) or {}
        how = "cached" if cached[name] else f"built in {rec.get('seconds', '?')} s"
        console.print(f"{name}: {how}, final loss {rec.get('final_loss')}, {path}", highlight=False)


@app.command("list")
@friendly
def list_cmd() -> None:
    """List the zoo models: role, family, tokenizer, size, and whether each is built."""
    from loraport.zoo import build_record, zoo_specs

    table = Table()
    table.add_column("name", no_wrap=True)
    for col in ("role", "family", "tokenizer", "hidden×layers", "heads (q/kv)", "built", "build s"):
        table.add_column(col)
    for name, spec in zoo_specs().items():
        c = spec.config
        rec = build_record(spec)
        table.add_row(
            name,
            spec.role,
            spec.family,
            spec.tokenizer,
            f"{c['hidden_size']}×{c['num_hidden_layers']}",
            f"{c['num_attention_heads']}/{c.get('num_key_value_heads', c['num_attention_heads'])}",
            "yes" if rec else "no",
            str(rec["seconds"]) if rec else "—",
        )
    console.print(table)


@app.command("path")
@friendly
def path_cmd(name: str = typer.Argument(..., help="A zoo model name.")) -> None:
    """Print the cache folder of a zoo model (whether or not it is built yet)."""
    from loraport.zoo import get_spec

    print(get_spec(name).folder())
