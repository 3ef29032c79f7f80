"""The one optimisation loop behind zoo pretraining and LoRA training.

    losses = run_steps(model, params, batches, steps=600, lr=2e-3, desc="pretrain")

AdamW with linear warm-up then cosine decay to 10% and gradient clipping (the recipe that makes
tiny models learn on these machines, see notes/machine.md). `batches(step)` returns the keyword
arguments of one forward pass (input_ids, attention_mask, labels); it must be a pure function of
the step so that a seeded run is reproducible.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterable

import torch
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

Batch = dict[str, torch.Tensor]


def lr_at(step: int, steps: int, lr: float, warmup: int) -> float:
    if step < warmup:
        return lr * (step + 1) / warmup
    frac = (step - warmup) / max(1, steps - warmup)
    return lr * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * frac)))


def progress_bar(enabled: bool = True) -> Progress:
    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[info]}"),
        TimeRemainingColumn(),
        disable=not enabled,
        transient=True,
    )


def run_steps(
    model: torch.nn.Module,
    params: Iterable[torch.nn.Parameter],
    batches: Callable[[int], Batch],
    *,
    steps: int,
    lr: float,
    warmup: int = 0,
    clip: float = 1.0,
    weight_decay: float = 0.0,
    desc: str = "train",
    progress: bool = True,
    on_step: Callable[[int, float], None] | None = None,
    loss_fn: Callable[[torch.nn.Module, Batch], torch.Tensor] | None = None,
) -> list[float]:
    """Run `steps` optimiser steps; returns the loss of every step. `loss_fn(model, batch)` replaces
    the model's own loss (`model(**batch).loss`)."""
    params = [p for p in params if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay, betas=(0.9, 0.98))
    model.train()
    losses: list[float] = []
    start = time.perf_counter()
    with progress_bar(progress) as bar:
        task = bar.add_task(desc, total=steps, info="")
        for step in range(steps):
            for group in opt.param_groups:
                group["lr"] = lr_at(step, steps, lr, warmup)
            batch = batches(step)
            loss_t = model(**batch).loss if loss_fn is None else loss_fn(model, batch)
            loss_t.backward()
            if clip:
                torch.nn.utils.clip_grad_norm_(params, clip)
            opt.step()
            opt.zero_grad(set_to_none=True)
            loss = float(loss_t.detach())
            losses.append(loss)
            if on_step is not None:
                on_step(step, loss)
            if step % 10 == 0 or step == steps - 1:
                rate = (step + 1) / (time.perf_counter() - start)
                bar.update(task, completed=step + 1, info=f"loss {loss:.3f} · {rate:.1f} step/s")
    model.eval()
    return losses
