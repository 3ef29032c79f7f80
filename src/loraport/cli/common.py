"""Shared CLI plumbing: one-line errors with a non-zero exit, and `key=value` option parsing."""

from __future__ import annotations

import functools
import json
import sys
from collections.abc import Callable
from typing import Any, TypeVar

import typer
from rich.console import Console
from rich.markup import escape

from loraport.errors import LoraportError

console = Console()
err_console = Console(stderr=True)
F = TypeVar("F", bound=Callable[..., Any])


def friendly(fn: F) -> F:
    """Turn LoraportError into `error: <message>` on stderr and exit code 2."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except LoraportError as e:
            err_console.print(f"[red]error:[/red] {escape(str(e))}", highlight=False, soft_wrap=True)
            sys.exit(2)

    return wrapper  # type: ignore[return-value]


def parse_options(pairs: list[str] | None) -> dict[str, Any]:
    """`--option ridge=0.1 --option scale=false` → {"ridge": 0.1, "scale": False} (values parsed as JSON
    where possible, else kept as strings)."""
    out: dict[str, Any] = {}
    for item in pairs or []:
        if "=" not in item:
            raise LoraportError(f"--option {item!r}: expected key=value")
        key, value = item.split("=", 1)
        try:
            out[key.strip()] = json.loads(value)
        except json.JSONDecodeError:
            out[key.strip()] = value
    return out


def method_options(k: int | None, options: list[str] | None) -> dict[str, Any]:
    opts = parse_options(options)
    if k is not None:
        opts["k"] = k
    return opts


AllowPickle = typer.Option(
    False, "--allow-pickle", help="Read pickled adapter_model.bin files (trusted files only)."
)
Force = typer.Option(False, "--force", help="Overwrite the output if it exists.")
BaseModelOpt = typer.Option(..., "--base", help="Base model: zoo name, folder, .gguf or cached hub id.")
TaskOpt = typer.Option(
    ...,
    "--task",
    help="Task name (`loraport tasks list`), or a folder with train.jsonl + eval.jsonl, or a saved "
    "`datasets` folder.",
)

ChatOpt = typer.Option(
    None,
    "--chat-template",
    help="auto: prompts in each model's own chat template (raw for a model without one); family: "
    "also its family's documented template where the checkpoint has none; none: raw prompts. "
    "Default: $LORAPORT_CHAT_TEMPLATE, else auto.",
)

DeviceOpt = typer.Option(
    None,
    "--device",
    help="Where models compute: auto (a GPU where torch sees one, else the CPU), cpu, cuda, cuda:N or "
    "mps. Default: $LORAPORT_DEVICE, else auto.",
)
