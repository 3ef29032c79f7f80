"""`spanfit`: a port in the span of the target anchors whose weights are fitted on behaviour.

Needs anchors and unlabeled prompts of the task. global_ridge predicts weights w₀ over the N target
anchors from the source adapter (weight space); spanfit then moves w so that Y + Σ_j w_j ΔW_Y,j
imitates the teacher (X + X adapter): it minimises the per-token negative log-likelihood, under the
target, of the teacher's answers to the prompts. Only N numbers are fitted, so a few hundred prompts
and a few dozen steps suffice, and the result stays a combination of adapters trained on Y.

The fitted objective is evaluated on every prompt at w₀ and at the end; if the end is not better,
w₀ is kept, so spanfit never does worse on its own objective than its ridge start.

The forward pass adds Σ_j w_j B_j A_j x through hooks on the target's projections (the anchors'
factors concatenated, rank N·r), so nothing as large as a dense ΔW is formed. On a large vocabulary
the output layer is computed at answer positions only (`loraport.train.loss.answer_loss`, the same
loss): Gemma-3's 262k-token head at every position of a 32-prompt batch needs ~10 GB for the logits
alone, and a study's spanfit on Gemma-3-270M was killed for memory at 24 GB before this.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from loraport.adapters import LowRank
from loraport.device import module_device, to_device
from loraport.errors import MethodError
from loraport.port.anchors import AnchorsSpec
from loraport.port.apply import PortInputs, combine_port, port_weights, save_port, target_anchor_factors
from loraport.port.fitted import FittedMap, fit_map
from loraport.port.teacher import Answers, encodable_items
from loraport.train.loss import answer_batch_loss, use_answer_loss


class SpanHooks:
    """Adds Σ_j w_j ΔW_j x to the output of each hooked projection, with `w` a trainable vector."""

    def __init__(self, model: torch.nn.Module, anchors: dict[str, list[LowRank]], w0: torch.Tensor) -> None:
        device = module_device(model)
        self.w = torch.nn.Parameter(w0.float().clone().to(device))
        named = dict(model.named_modules())
        self.handles = []
        for name, parts in anchors.items():
            A = torch.cat([p.A for p in parts], dim=0).float().to(device)  # (N·r, in)
            B = torch.cat([p.B for p in parts], dim=1).float().to(device)  # (out, N·r)
            ranks = torch.tensor([p.rank for p in parts], device=device)
            self.handles.append(named[name].register_forward_hook(self._hook(A, B, ranks)))

    def _hook(self, A: torch.Tensor, B: torch.Tensor, ranks: torch.Tensor):
        def hook(module, args, output):
            scale = torch.repeat_interleave(self.w, ranks, output_size=A.shape[0])
            return output + ((args[0] @ A.T) * scale) @ B.T

        return hook

    def remove(self) -> None:
        for h in self.handles:
            h.remove()


def _loss_fn(model):
    """Mean token NLL of a batch's labels: the head at answer positions only where the vocabulary
    is large (`use_answer_loss`), else the model's own loss."""
    if use_answer_loss(model, None):
        return answer_batch_loss
    return lambda m, b: m(**b).loss


def _objective(model, batches: list[dict[str, torch.Tensor]], loss_fn=None) -> float:
    """Per-token NLL over all batches (each batch's mean loss weighted by its answer tokens);
    `loss_fn` as `_loss_fn(model)` gives it (computed here when not passed)."""
    loss_fn = loss_fn or _loss_fn(model)
    total, count = 0.0, 0
    with torch.no_grad():
        for b in batches:
            n = int((b["labels"][:, 1:] != -100).sum())
            total += float(loss_fn(model, b)) * n
            count += n
    return total / max(count, 1)


def fit_span_weights(
    model,
    tokenizer,
    items: list,
    anchors: dict[str, list[LowRank]],
    w0: torch.Tensor,
    *,
    steps: int = 40,
    lr: float = 0.05,
    batch: int = 32,
    seed: int = 0,
) -> tuple[torch.Tensor, dict[str, Any]]:
    """Minimise the teacher-answer NLL over w starting at w0; returns (w, fit record)."""
    from loraport.port.teacher import context_length
    from loraport.train.data import collate, encode_examples

    if not items:  # nothing to imitate: the objective is undefined, keep the start
        return w0.double().clone(), {"kept": "ridge start (no usable teacher answers)", "items": 0}
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    examples = encode_examples(tokenizer, items, context_length(model), "spanfit teacher answers")
    device = module_device(model)
    fixed = [to_device(collate(examples[i : i + batch], pad), device) for i in range(0, len(examples), batch)]
    loss_fn = _loss_fn(model)
    hooks = SpanHooks(model, anchors, w0)
    model.eval()
    try:
        start_loss = _objective(model, fixed, loss_fn)
        opt = torch.optim.Adam([hooks.w], lr=lr)
        rng = np.random.default_rng(seed)
        for _ in range(steps):
            idx = rng.choice(len(examples), size=min(batch, len(examples)), replace=False)
            loss = loss_fn(model, to_device(collate([examples[i] for i in idx], pad), device))
            opt.zero_grad()
            loss.backward()
            opt.step()
        end_loss = _objective(model, fixed, loss_fn)
        w = hooks.w.detach().double().cpu().clone()
    finally:
        hooks.remove()
    kept = end_loss <= start_loss
    record = {
        "objective": "teacher-answer NLL per token",
        "start_loss": round(start_loss, 6),
        "end_loss": round(end_loss, 6),
        "kept": "fitted" if kept else "ridge start (fitting did not lower the objective)",
        "w_start": [round(float(v), 6) for v in w0],
        "w_end": [round(float(v), 6) for v in w],
        "items": len(items),
    }
    return (w if kept else w0.double().clone()), record


def spanfit_port(
    spec: AnchorsSpec,
    source_config: Any,
    target_config: Any,
    adapter: str | Path,
    answers: Answers,
    out: str | Path,
    *,
    steps: int = 40,
    lr: float = 0.05,
    batch: int = 32,
    seed: int = 0,
    force: bool = False,
    provenance: dict[str, Any] | None = None,
    fmap: FittedMap | None = None,
    device: str | None = None,
) -> Path:
    """Fit global_ridge on the anchors (or take `fmap`, a fitted global_ridge map), then fit the
    weights on the teacher's answers, and write the port."""
    from loraport.models import load_model

    t0 = time.perf_counter()
    fmap = fmap or fit_map(spec, "global_ridge", source_config, target_config, seed=seed)
    if fmap.method != "global_ridge":
        raise MethodError(f"spanfit starts from a global_ridge map, not {fmap.method!r}")
    inputs: PortInputs = port_weights(fmap, adapter)
    w0 = next(iter(inputs.weights.values()))
    model, tokenizer, _ = load_model(fmap.target_base, device=device)
    anchors = target_anchor_factors(fmap)
    items = encodable_items(tokenizer, answers)
    torch.manual_seed(seed)
    w, record = fit_span_weights(
        model, tokenizer, items, anchors, w0, steps=steps, lr=lr, batch=batch, seed=seed
    )
    modules = combine_port(fmap, {key: w for key in inputs.weights})
    seconds = time.perf_counter() - t0
    cost = {
        "seconds": round(seconds + answers.seconds, 3),
        "steps": steps,
        "generated_tokens": answers.generated_tokens,
        "data": "anchors + unlabeled prompts",
        "prompts": len(answers.prompts),
        "teacher_seconds": answers.seconds,
    }
    prov = {
        "method": "spanfit",
        "options": {"steps": steps, "lr": lr, "batch": batch},
        "spanfit": record,
        "cost": cost,
        **(provenance or {}),
    }
    return save_port(fmap, inputs, modules, out, prov, force=force)
