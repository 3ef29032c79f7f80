"""LoRA training on teacher items with a weight per answer token (distill's `weighting`).

The loss is Σ_t w_t · CE_t / (number of answer tokens) over a batch: with every w_t = 1 it is the
mean token cross-entropy train.lora.train_on_items minimises, and this loop takes the same steps in
the same seeded orders, so unit weights give its result up to float rounding (a test checks it). It
lives here rather than in train/ because only distill weights tokens; it reuses train's pieces
(encoding, collation, the step loop, LoRA factor I/O) and supports what distill uses of a recipe
(no regularizer, no length bucketing).

    trained = train_weighted(model, tokenizer, items, weights, recipe, steps=60)
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from loraport.adapters import LowRank
from loraport.errors import MethodError, TaskError
from loraport.tasks import Item


class _OutOfTime(Exception):
    """Raised from the step callback when a wall-clock budget is spent."""


def weighted_loss(model: torch.nn.Module, batch: dict[str, torch.Tensor]) -> torch.Tensor:
    """Σ w·CE over the labelled tokens / their number (labels −100 elsewhere; `weights` per label)."""
    from loraport.train.loss import logits_at

    labels, w = batch["labels"], batch["weights"]
    rows, cols = (labels[:, 1:] != -100).nonzero(as_tuple=True)
    logits = logits_at(model, batch["input_ids"], batch["attention_mask"], rows, cols)
    ce = F.cross_entropy(logits.float(), labels[rows, cols + 1], reduction="none")
    return (ce * w[rows, cols + 1]).sum() / len(ce)


def train_weighted(
    model: torch.nn.Module,
    tokenizer: Any,
    items: Sequence[Item],
    weights: Sequence[Sequence[float]],
    recipe: Any,
    *,
    what: str = "distill",
    progress: bool = False,
    init: dict[str, LowRank] | None = None,
    steps: int,
    seconds: float | None = None,
) -> Any:
    """As train.lora.train_on_items with a step budget, minimising the weighted loss; `weights[i]`
    has one weight per token item i's loss covers (answer tokens, then end-of-answer tokens)."""
    from peft import LoraConfig, get_peft_model

    from loraport.device import module_device, to_device
    from loraport.train.data import collate, encode_examples
    from loraport.train.loop import run_steps
    from loraport.train.lora import Trained, default_targets, load_factors, lora_factors

    examples = encode_examples(tokenizer, items, recipe.max_length, what)
    for (ids, n_prompt), w, it in zip(examples, weights, items, strict=True):
        if len(w) != len(ids) - n_prompt:
            raise MethodError(
                f"{what}: item {it.id} has {len(ids) - n_prompt} answer tokens but {len(w)} weights"
            )
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    torch.manual_seed(recipe.seed)
    config = LoraConfig(
        r=recipe.rank,
        lora_alpha=recipe.alpha,
        target_modules=list(recipe.target_modules or default_targets(model.config)),
        lora_dropout=recipe.dropout,
        bias="none",
        task_type="CAUSAL_LM",
    )
    peft_model = get_peft_model(model, config)
    if init is not None:
        load_factors(peft_model, init)
    spe = -(-len(examples) // recipe.batch)
    if steps < 1:
        raise TaskError(f"{what}: a budget of {steps} steps trains nothing")
    orders = [
        np.random.default_rng([recipe.seed, e]).permutation(len(examples)) for e in range(-(-steps // spe))
    ]
    device = module_device(model)

    def batches(step: int) -> dict[str, torch.Tensor]:
        epoch, k = divmod(step, spe)
        idx = orders[epoch][k * recipe.batch : (k + 1) * recipe.batch]
        b = collate([examples[i] for i in idx], pad)
        wt = torch.zeros(b["labels"].shape, dtype=torch.float32)
        for row, i in enumerate(idx):
            ids, n_prompt = examples[i]
            wt[row, n_prompt : len(ids)] = torch.tensor(weights[i], dtype=torch.float32)
        return to_device({**b, "weights": wt}, device)

    losses: list[float] = []
    start = time.perf_counter()

    def on_step(step: int, loss: float) -> None:
        losses.append(loss)
        if seconds is not None and time.perf_counter() - start >= seconds and step + 1 < steps:
            raise _OutOfTime

    try:
        run_steps(
            peft_model,
            peft_model.parameters(),
            batches,
            steps=steps,
            lr=recipe.lr,
            warmup=int(recipe.warmup * steps),
            clip=recipe.clip,
            weight_decay=recipe.weight_decay,
            desc=what,
            progress=progress,
            on_step=on_step,
            loss_fn=weighted_loss,
        )
    except _OutOfTime:
        peft_model.eval()
    try:
        final = lora_factors(peft_model)
    finally:
        elapsed = time.perf_counter() - start
        peft_model.unload()
    return Trained(final, [], losses, elapsed, len(losses))
