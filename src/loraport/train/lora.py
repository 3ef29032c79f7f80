"""LoRA training with PEFT on any base loraport can load.

    result = train_lora("tiny-llama-y", "math_add", Recipe(rank=8, epochs=3), out="runs/y-math_add")

The output folder is a PEFT adapter (the last epoch) with `checkpoints/epoch-K/` for every epoch
(later studies compare snapshots) and `train_log.json`: per-step losses, epoch ends, timing, the
recipe, the base's fingerprint, the task and a digest of the training items. The folder appears
only when training has finished. A fixed seed gives bit-identical weights on the same machine.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from loraport import __version__
from loraport.adapters import LowRank, refactor, write_adapter_files
from loraport.arch import arch_for
from loraport.device import module_device, to_device
from loraport.errors import TaskError
from loraport.io import atomic_dir, check_output
from loraport.models.chat import chat_format
from loraport.tasks import Item, Task, resolve_task
from loraport.train.data import collate, encode_examples
from loraport.train.loop import run_steps
from loraport.train.loss import answer_batch_loss, bucketed_order, use_answer_loss, weighted_loss
from loraport.train.recipe import Recipe
from loraport.train.regularizers import Bound

LOG_NAME = "train_log.json"


@dataclass
class Trained:
    """A finished training run in memory: the final adapter, one snapshot per epoch, the losses."""

    modules: dict[str, LowRank]
    snapshots: list[dict[str, LowRank]]
    losses: list[float]
    seconds: float
    steps: int


def default_targets(config: Any) -> tuple[str, ...]:
    """Every projection the base's architecture family lists, by short name (q_proj, ...)."""
    names = dict.fromkeys(m.local.split(".")[-1] for m in arch_for(config).modules())
    return tuple(names)


def lora_factors(peft_model: torch.nn.Module) -> dict[str, LowRank]:
    """Every LoRA module's factors (scaling folded into B), keyed by the base model's module name."""
    from peft.tuners.lora import LoraLayer

    out: dict[str, LowRank] = {}
    for name, module in peft_model.named_modules():
        if isinstance(module, LoraLayer) and "default" in module.lora_A:
            scale = module.scaling["default"]
            A = module.lora_A["default"].weight.detach().float().cpu().clone()
            B = module.lora_B["default"].weight.detach().float().cpu().clone() * scale
            out[name.removeprefix("base_model.model.")] = LowRank(B, A)
    return out


def train_on_items(
    model: torch.nn.Module,
    tokenizer,
    items: Sequence[Item],
    recipe: Recipe,
    *,
    what: str = "training",
    progress: bool = True,
    init: dict[str, LowRank] | None = None,
    steps: int | None = None,
    seconds: float | None = None,
    weights: Sequence[Sequence[float]] | None = None,
) -> Trained:
    """Wrap `model` with a fresh LoRA (or one starting from `init`), train it, unwrap it again.
    The base model's own weights are left untouched.

    `weights` (distill's token weighting) gives item i one weight per token its loss covers (answer
    tokens, then end-of-answer tokens); the loss is then Σ w·CE / number of tokens, which unit weights
    make the plain mean cross-entropy.

    A compute budget replaces the recipe's epochs: `steps` optimiser steps (the learning-rate
    schedule spans them; items are revisited in fresh seeded orders as needed), and/or a wall-clock
    cap of `seconds`, after which training stops at the end of the current step (the schedule is
    then cut short). `Trained.steps` is the number of steps actually taken."""
    from peft import LoraConfig, get_peft_model

    examples = encode_examples(tokenizer, items, recipe.max_length, what)
    if weights is not None:
        for (ids, n_prompt), w, it in zip(examples, weights, items, strict=True):
            if len(w) != len(ids) - n_prompt:
                raise TaskError(
                    f"{what}: item {it.id} has {len(ids) - n_prompt} answer tokens but {len(w)} weights"
                )
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    targets = list(recipe.target_modules or default_targets(model.config))
    torch.manual_seed(recipe.seed)
    config = LoraConfig(
        r=recipe.rank,
        lora_alpha=recipe.alpha,
        target_modules=targets,
        lora_dropout=recipe.dropout,
        bias="none",
        task_type="CAUSAL_LM",
    )
    peft_model = get_peft_model(model, config)
    if init is not None:
        load_factors(peft_model, init)
    spe = -(-len(examples) // recipe.batch)
    planned = steps if steps is not None else spe * recipe.epochs
    if planned < 1:
        raise TaskError(f"{what}: a budget of {planned} steps trains nothing")
    epochs = range(-(-planned // spe))
    if recipe.bucket:
        lengths = [len(ids) for ids, _ in examples]
        orders = [bucketed_order(lengths, recipe.batch, [recipe.seed, e]) for e in epochs]
    else:
        orders = [np.random.default_rng([recipe.seed, e]).permutation(len(examples)) for e in epochs]

    device = module_device(model)
    loss_fn = None
    if weights is not None:
        loss_fn = weighted_loss
    elif use_answer_loss(peft_model, recipe.answer_logits):
        loss_fn = answer_batch_loss

    # a regularizer adds to the loss, constrains the factors after each step, or changes the forward
    reg = Bound(peft_model, recipe.regularizer, recipe.strength) if recipe.regularizer else None
    if reg is not None:
        loss_fn = reg.wrap(loss_fn)

    def batches(step: int) -> dict[str, torch.Tensor]:
        epoch, k = divmod(step, spe)
        idx = orders[epoch][k * recipe.batch : (k + 1) * recipe.batch]
        b = collate([examples[i] for i in idx], pad)
        if weights is not None:
            b["weights"] = torch.zeros(b["labels"].shape, dtype=torch.float32)
            for row, i in enumerate(idx):
                ids, n_prompt = examples[i]
                b["weights"][row, n_prompt : len(ids)] = torch.tensor(weights[i], dtype=torch.float32)
        return to_device(b, device)

    snapshots: list[dict[str, LowRank]] = []
    losses: list[float] = []
    start = time.perf_counter()

    def on_step(step: int, loss: float) -> None:
        if reg is not None:
            reg.after_step()
        losses.append(loss)
        if (step + 1) % spe == 0:
            snapshots.append(lora_factors(peft_model))
        if seconds is not None and time.perf_counter() - start >= seconds and step + 1 < planned:
            raise _OutOfTime

    try:
        run_steps(
            peft_model,
            peft_model.parameters(),
            batches,
            steps=planned,
            lr=recipe.lr,
            warmup=int(recipe.warmup * planned),
            clip=recipe.clip,
            weight_decay=recipe.weight_decay,
            desc=what,
            progress=progress,
            on_step=on_step,
            loss_fn=loss_fn,
        )
    except _OutOfTime:
        peft_model.eval()
    finally:
        if reg is not None:
            reg.close()  # fake_quant: the base weights as they were
    try:
        final = lora_factors(peft_model)
    finally:
        elapsed = time.perf_counter() - start
        peft_model.unload()  # removes the LoRA layers; `model` is the plain base again
    return Trained(final, snapshots, losses, elapsed, len(losses))


class _OutOfTime(Exception):
    """Raised from the step callback when a wall-clock budget is spent."""


def load_factors(peft_model: torch.nn.Module, factors: dict[str, LowRank]) -> None:
    """Set a PEFT model's LoRA weights so that its ΔW equals `factors` (rank must match r)."""
    from peft.tuners.lora import LoraLayer

    seen = set()
    for name, module in peft_model.named_modules():
        key = name.removeprefix("base_model.model.")
        if isinstance(module, LoraLayer) and key in factors:
            f = factors[key]
            r = module.r["default"]
            if f.rank > r:
                f = refactor(f, r)
            # Slots beyond the init's rank keep PEFT's random A and zero B, so they can still learn.
            with torch.no_grad():
                module.lora_A["default"].weight[: f.rank].copy_(f.A)
                module.lora_B["default"].weight.zero_()
                module.lora_B["default"].weight[:, : f.rank].copy_(f.B / module.scaling["default"])
            seen.add(key)
    missing = set(factors) - seen
    if missing:
        raise TaskError(f"init adapter has modules the model does not train: {sorted(missing)[:3]}")


def items_digest(items: Sequence[Item]) -> str:
    h = hashlib.sha256()
    for it in items:
        h.update(f"{it.id}\x1f{it.prompt}\x1f{it.answer}\x1e".encode())
    return h.hexdigest()[:16]


def train_lora(
    base: str | os.PathLike[str],
    task: str | Task,
    recipe: Recipe | None = None,
    *,
    out: str | os.PathLike[str],
    force: bool = False,
    progress: bool = True,
    device: str | None = None,
) -> Path:
    """Train one LoRA of `recipe` for `task` on `base` and write it (with checkpoints and log) to `out`.
    Training runs on `device` (None: the current one, see `loraport.device`)."""
    from loraport.models import load_model

    recipe = recipe or Recipe()
    check_output(out, force)
    task = resolve_task(task) if isinstance(task, str | os.PathLike) else task
    model, tokenizer, ref = load_model(base, device=device)
    if tokenizer is None:
        raise TaskError(f"base {base}: has no tokenizer, so it cannot be trained on text")
    items = task.items("train", recipe.examples, seed=recipe.seed)
    trained = train_on_items(
        model, tokenizer, items, recipe, what=f"{task.name} on {ref.name or ref.spec}", progress=progress
    )
    provenance = {
        "kind": "trained",
        "task": task.name,
        "recipe": recipe.model_dump(mode="json"),
        "base": ref.provenance(),
        "items": {"split": "train", "n": len(items), "digest": items_digest(items)},
        "chat": chat_format(tokenizer).provenance(),
        "torch": torch.__version__,
    }
    num_layers = model.config.num_hidden_layers
    save = dict(
        rank=recipe.rank, alpha=recipe.alpha, base_model=ref.name or str(ref.path), num_layers=num_layers
    )
    with atomic_dir(out, force=force) as tmp:
        for epoch, snap in enumerate(trained.snapshots, 1):
            write_adapter_files(
                tmp / "checkpoints" / f"epoch-{epoch}",
                snap,
                provenance={**provenance, "epoch": epoch},
                **save,
            )
        write_adapter_files(tmp, trained.modules, provenance={**provenance, "epoch": recipe.epochs}, **save)
        log = {
            "loraport_version": __version__,
            "task": task.name,
            "base": ref.provenance(),
            "recipe": recipe.model_dump(mode="json"),
            "steps": trained.steps,
            "steps_per_epoch": trained.steps // recipe.epochs,
            "seconds": round(trained.seconds, 3),
            "steps_per_second": round(trained.steps / max(trained.seconds, 1e-9), 3),
            "losses": [round(x, 5) for x in trained.losses],
            "machine": {
                "python": platform.python_version(),
                "torch": torch.__version__,
                "threads": torch.get_num_threads(),
                "device": str(module_device(model)),
            },
        }
        (tmp / LOG_NAME).write_text(json.dumps(log, indent=1) + "\n")
    return Path(out)
