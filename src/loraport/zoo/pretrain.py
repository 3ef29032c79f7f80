"""Pretraining a zoo model from scratch on the procedural corpus."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from loraport.train.loop import run_steps


def token_stream(tokenizer, lines: Sequence[str]) -> torch.Tensor:
    """All lines tokenized and joined, each followed by EOS, as one long 1-D tensor."""
    eos = tokenizer.eos_token_id
    ids = tokenizer(list(lines), add_special_tokens=False)["input_ids"]
    flat = np.fromiter((t for row in ids for t in (*row, eos)), dtype=np.int64)
    return torch.from_numpy(flat)


def pretrain(
    model: torch.nn.Module,
    tokenizer,
    lines: Sequence[str],
    *,
    steps: int,
    batch: int,
    block: int,
    lr: float,
    seed: int,
    progress: bool = True,
    desc: str = "pretrain",
) -> list[float]:
    """Next-token training on random `block`-token windows of the corpus stream (seeded)."""
    stream = token_stream(tokenizer, lines)
    if len(stream) <= block + 1:
        raise ValueError(f"corpus has {len(stream)} tokens, fewer than one block of {block}")
    rng = np.random.default_rng(seed)
    starts = rng.integers(0, len(stream) - block - 1, size=(steps, batch))
    offsets = torch.arange(block)

    def batches(step: int) -> dict[str, torch.Tensor]:
        idx = torch.from_numpy(starts[step])[:, None] + offsets
        ids = stream[idx]
        return {"input_ids": ids, "labels": ids}

    return run_steps(
        model,
        model.parameters(),
        batches,
        steps=steps,
        lr=lr,
        warmup=max(1, steps // 20),
        weight_decay=0.01,
        desc=desc,
        progress=progress,
    )
