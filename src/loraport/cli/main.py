"""The `loraport` command. Each subcommand lives in its own file and calls one library function."""

from __future__ import annotations

import typer

from loraport.cli import map as map_cli
from loraport.cli import tasks as tasks_cli
from loraport.cli import zoo as zoo_cli
from loraport.cli.bench import bench, report
from loraport.cli.demo import demo
from loraport.cli.eval import eval_cmd
from loraport.cli.fewstep import fewstep
from loraport.cli.fit import fit
from loraport.cli.inspect import inspect
from loraport.cli.methods import methods
from loraport.cli.port import port
from loraport.cli.recipe_measures import recipe_measures
from loraport.cli.train import train

app = typer.Typer(
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    help="Port LoRA adapters between base LLMs and measure what survives.",
)
app.command()(fit)
app.command()(port)
app.command()(inspect)
app.command()(methods)
app.command()(demo)
app.command()(train)
app.command()(bench)
app.command()(report)
app.command()(fewstep)
app.command("recipe-measures")(recipe_measures)
app.command("eval")(eval_cmd)
app.add_typer(zoo_cli.app, name="zoo")
app.add_typer(tasks_cli.app, name="tasks")
app.add_typer(map_cli.app, name="map")


#: Commands that load no model: they must not import transformers (or torch), so that, e.g., a
#: report rebuilds on a machine without them.
NO_MODELS = {"report"}


@app.callback()
def _quiet_transformers(ctx: typer.Context) -> None:
    """loraport draws its own progress bars; transformers' per-file bars would interleave."""
    if ctx.invoked_subcommand in NO_MODELS:
        return
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
