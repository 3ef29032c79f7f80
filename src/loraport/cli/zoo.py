"""`loraport zoo build|list|path`: the embedded base models.

loraport zoo build                                # check the shipped models, build the tiers
loraport zoo build --from-scratch tiny-llama-y    # rebuild; per file: matches the shipped sha256?
"""

from __future__ import annotations

import json

import typer
from rich.table import Table

from loraport.cli.common import console, friendly

app = typer.Typer(no_args_is_help=True, help="Check, build, list and locate the embedded base models.")


@app.command("build")
@friendly
def build_cmd(
    names: list[str] = typer.Argument(None, help="Zoo models to build (default: all)."),
    from_scratch: bool = typer.Option(
        False,
        "--from-scratch",
        help="Rebuild from the build code into the cache, even a shipped or cached model, and say per "
        "file whether the rebuild matches the shipped sha256 (a build's floats depend on the CPU).",
    ),
) -> None:
    """Check the shipped zoo models and build the others that are not cached yet (seeded)."""
    from loraport.zoo import build_many, get_spec, is_built, is_shipped, zoo_specs
    from loraport.zoo.build import MARKER
    from loraport.zoo.shipped import compare_with_shipped

    todo = names or list(zoo_specs())
    for name in todo:
        get_spec(name)  # unknown names fail before any work
    before = {name: "shipped" if is_shipped(name) else "cached" if is_built(name) else "" for name in todo}
    building = [n for n in todo if from_scratch or not before[n]]
    if building:
        console.print(f"building {', '.join(building)}" + (" from scratch" if from_scratch else ""))
    for name, path in zip(todo, build_many(todo, from_scratch=from_scratch), strict=True):
        rec = json.loads((path / MARKER).read_text())  # shipped or cached, every folder has one
        how = f"built in {rec.get('seconds', '?')} s" if name in building else before[name]
        if before[name] == "shipped" and not from_scratch:
            how += ", sha256 checked"
        console.print(
            f"{name}: {how}, final loss {rec.get('final_loss')}, {path}", highlight=False, soft_wrap=True
        )
        if from_scratch:
            _print_comparison(name, compare_with_shipped(name, path))


def _print_comparison(name: str, checks) -> None:
    if checks is None:
        console.print(f"  {name} is not shipped: nothing to compare", highlight=False)
        return
    for c in checks:
        if c.matches:
            verdict = "matches the shipped sha256"
        elif c.shipped is None:
            verdict = "not in the shipped zoo"
        elif c.rebuilt is None:
            verdict = "missing from the rebuild"
        else:
            verdict = f"differs: rebuilt {c.rebuilt[:12]}…, shipped {c.shipped[:12]}…"
        console.print(f"  {c.name:<24} {verdict}", highlight=False)
    bad = sum(not c.matches for c in checks)
    console.print(
        f"  {name}: the rebuild matches the shipped files byte for byte"
        if not bad
        else f"  {name}: {bad} of {len(checks)} files differ from the shipped ones (float results depend "
        "on the CPU); zoo names still load the shipped files, and studies on this folder get their "
        "own cache keys",
        highlight=False,
        soft_wrap=True,
    )


@app.command("list")
@friendly
def list_cmd() -> None:
    """List the zoo models: role, family, tokenizer, size, and whether each is shipped or built."""
    from loraport.zoo import build_record, is_shipped, zoo_specs

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
            "shipped" if is_shipped(spec) else "cached" if rec else "no",
            str(rec["seconds"]) if rec else "—",
        )
    console.print(table)


@app.command("path")
@friendly
def path_cmd(name: str = typer.Argument(..., help="A zoo model name.")) -> None:
    """Print the folder a zoo model loads from: the shipped one, else its cache folder (built or not)."""
    from loraport.zoo import get_spec, is_shipped
    from loraport.zoo.shipped import shipped_root

    spec = get_spec(name)
    print(shipped_root() / name if is_shipped(spec) else spec.folder())
