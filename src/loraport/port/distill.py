"""`distill`: train a target LoRA on the teacher's answers (label-free, sequence level).

Needs unlabeled prompts of the task. X + X adapter answers them (port.teacher); a LoRA on Y is then
trained to write those answers, starting from another port (`init`: an adapter folder, e.g. the
global_ridge, align or spanfit port) or from a fresh LoRA (`init=None`, "zero": B = 0), within a
compute budget of optimiser steps and/or seconds. No reference answer is ever read; the prompts
must not repeat eval items (port.prompts.check_disjoint_prompts).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from loraport.adapters import load_adapter, save_adapter
from loraport.errors import MethodError
from loraport.port.teacher import Answers, context_length, encodable_items

if TYPE_CHECKING:
    from loraport.port.teacher_signal import Excess


def distill_port(
    target: str,
    answers: Answers,
    out: str | Path,
    *,
    init: str | Path | None = None,
    steps: int = 60,
    seconds: float | None = None,
    lr: float = 5e-3,
    batch: int = 32,
    rank: int = 16,
    alpha: float = 32.0,
    seed: int = 0,
    force: bool = False,
    provenance: dict[str, Any] | None = None,
    device: str | None = None,
    progress: bool = False,
    excess: list[Excess] | None = None,
    weight_floor: float = 0.25,
) -> Path:
    """Train Y's LoRA on `answers` from `init` for `steps` steps (or until `seconds`) and write it.
    With an init adapter, its rank and alpha are kept (rank/alpha apply to a zero init).
    `excess` (one per answer, port.teacher_signal.contrastive_excess) weights each answer token by
    the adapter's contrastive excess, floored at `weight_floor` (see port.teacher_signal)."""
    from loraport.models import load_model
    from loraport.train import Recipe
    from loraport.train.lora import train_on_items

    t0 = time.perf_counter()
    factors, init_prov, signal = None, None, None
    if init is not None:
        ad = load_adapter(init)
        ranks = set(ad.ranks.values())
        if len(ranks) != 1:
            raise MethodError(f"{init}: distill needs an init adapter with one rank, it has {sorted(ranks)}")
        rank, alpha = ranks.pop(), float(ad.config["lora_alpha"])
        factors = {m: ad.lowrank(m) for m in ad.modules}
        init_prov = {
            "path": str(ad.path),
            "method": ad.provenance.get("method"),
            "cost": ad.provenance.get("cost"),
        }
    init_cost = (init_prov or {}).get("cost") or {}
    init_seconds = float(init_cost.get("seconds", 0.0))
    init_data = init_cost.get("data", "none")
    data = "unlabeled prompts" + (f" + {init_data}" if init_data not in ("none", "") else "")
    model, tokenizer, ref = load_model(target, device=device)
    if tokenizer is None:
        raise MethodError(f"target base {target}: has no tokenizer, so it cannot learn from text")
    items = encodable_items(tokenizer, answers)
    if items:
        recipe = Recipe(
            rank=rank,
            alpha=alpha,
            lr=lr,
            batch=batch,
            seed=seed,
            examples=len(items),
            epochs=1,
            max_length=context_length(model),
            target_modules=tuple(sorted({m.rsplit(".", 1)[-1] for m in factors})) if factors else None,
        )
        budget = {"progress": progress, "init": factors, "steps": steps, "seconds": seconds}
        if excess is None:
            trained = train_on_items(model, tokenizer, items, recipe, what="distill", **budget)
        else:
            from loraport.port.teacher_signal import excess_by_item, token_weights

            weights = token_weights(tokenizer, items, excess_by_item(answers, excess), weight_floor)
            trained = train_on_items(
                model, tokenizer, items, recipe, what="distill", weights=weights, **budget
            )
            signal = {"weighting": "excess", "weight_floor": weight_floor, **weight_stats(weights)}
        modules, taken, train_seconds = trained.modules, trained.steps, round(trained.seconds, 3)
        outcome = {"final_loss": round(trained.losses[-1], 5)}
    else:  # nothing to imitate (every answer empty or not encodable): the init, unchanged
        modules, taken, train_seconds = factors or _zero_lora(model, rank), 0, 0.0
        outcome = {"note": "no usable teacher answers: the init is returned unchanged"}
    cost = {
        "seconds": round(time.perf_counter() - t0 + answers.seconds + init_seconds, 3),
        "steps": taken,
        "generated_tokens": answers.generated_tokens,
        "data": data,
        "prompts": len(answers.prompts),
        "teacher_seconds": answers.seconds,
        "train_seconds": train_seconds,
        "init_seconds": init_seconds,
    }
    prov = {
        "method": "distill",
        "options": {"steps": steps, "seconds": seconds, "lr": lr, "batch": batch, "seed": seed},
        "init": init_prov or "zero",
        "target_base": target,
        "teacher": answers.provenance,
        "items_used": len(items),
        **({"signal": signal} if signal else {}),
        **outcome,
        "cost": cost,
        **(provenance or {}),
    }
    return save_adapter(
        out,
        modules,
        rank=rank,
        alpha=alpha,
        base_model=ref.name or str(ref.path),
        num_layers=model.config.num_hidden_layers,
        provenance=prov,
        force=force,
    )


def _zero_lora(model, rank: int) -> dict:
    """ΔW = 0 on every projection a LoRA would train (what a fresh LoRA is before any step)."""
    import torch

    from loraport.adapters import LowRank
    from loraport.arch import arch_for

    return {
        m.name: LowRank(torch.zeros(m.shape[0], rank), torch.zeros(rank, m.shape[1]))
        for m in arch_for(model.config).modules()
    }


def weight_stats(weights: list[list[float]]) -> dict[str, float]:
    """How uneven token weights are (for provenance): their max and the share of tokens above 1."""
    flat = [w for row in weights for w in row]
    if not flat:
        return {"max_weight": 0.0, "share_above_mean": 0.0}
    return {
        "max_weight": round(max(flat), 4),
        "share_above_mean": round(sum(w > 1 for w in flat) / len(flat), 4),
    }
