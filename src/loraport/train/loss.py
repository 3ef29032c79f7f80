"""The training loss at answer positions only, and length-bucketed batch orders.

A causal LM's forward computes the output layer (hidden × vocabulary) at every position, though the
loss needs it only where a label is set. With Gemma-3's 262,144-token vocabulary that head is most of
a step's compute; `answer_loss` runs the decoder, keeps the hidden states whose next token is a
label, and applies the head (and the model's logit soft-capping, where it has one) to those alone.
The loss is the same mean token cross-entropy as transformers' own (`ForCausalLMLoss`), up to float
rounding: tests compare the two.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

#: Vocabulary size from which `answer_logits=None` (auto) computes the head at answer positions only.
LARGE_VOCAB = 32768


def causal_lm(model: torch.nn.Module) -> Any:
    """The transformers *ForCausalLM under a PEFT wrapper (or the model itself)."""
    get = getattr(model, "get_base_model", None)
    return get() if callable(get) else model


def supports_answer_loss(model: torch.nn.Module) -> bool:
    """Whether the model has the decoder + output-head layout `answer_loss` relies on."""
    lm = causal_lm(model)
    decoder = getattr(lm, "model", None)
    head = lm.get_output_embeddings() if hasattr(lm, "get_output_embeddings") else None
    scale = getattr(lm.config, "logit_scale", None) or getattr(lm.config, "logits_scaling", None)
    return isinstance(decoder, torch.nn.Module) and isinstance(head, torch.nn.Linear) and not scale


def use_answer_loss(model: torch.nn.Module, setting: bool | None) -> bool:
    """Resolve a recipe's `answer_logits` (None: on for large vocabularies) for `model`."""
    if setting is False or not supports_answer_loss(model):
        return False
    if setting:
        return True
    head = causal_lm(model).get_output_embeddings()
    return head.out_features >= LARGE_VOCAB


def logits_at(
    model: torch.nn.Module,
    input_ids: torch.Tensor,
    attention_mask: torch.Tensor,
    rows: torch.Tensor,
    cols: torch.Tensor,
) -> torch.Tensor:
    """The model's logits at positions (rows[j], cols[j]) only: the decoder's hidden states there
    through the output layer (and the model's logit soft-capping, where it has one). Models without
    the decoder + head layout (`supports_answer_loss`) get their full forward, then the selection."""
    if not supports_answer_loss(model):
        return model(input_ids=input_ids, attention_mask=attention_mask).logits[rows, cols]
    lm = causal_lm(model)
    hidden = lm.model(input_ids=input_ids, attention_mask=attention_mask, use_cache=False).last_hidden_state
    logits = lm.get_output_embeddings()(hidden[rows, cols])
    cap = getattr(lm.config, "final_logit_softcapping", None)
    return torch.tanh(logits / cap) * cap if cap else logits


def answer_loss(
    model: torch.nn.Module, input_ids: torch.Tensor, attention_mask: torch.Tensor, labels: torch.Tensor
) -> torch.Tensor:
    """Mean cross-entropy of the labelled tokens (labels −100 elsewhere), with the output layer
    computed only at the positions that predict a labelled token."""
    rows, cols = (labels[:, 1:] != -100).nonzero(as_tuple=True)
    logits = logits_at(model, input_ids, attention_mask, rows, cols)
    return F.cross_entropy(logits.float(), labels[rows, cols + 1])


def answer_batch_loss(model: torch.nn.Module, batch: dict[str, torch.Tensor]) -> torch.Tensor:
    """`answer_loss` of a collated batch (input_ids, attention_mask, labels): a training loop's
    `loss_fn` where `use_answer_loss` holds."""
    return answer_loss(model, batch["input_ids"], batch["attention_mask"], batch["labels"])


def weighted_loss(model: torch.nn.Module, batch: dict[str, torch.Tensor]) -> torch.Tensor:
    """Σ_t w_t · CE_t over the labelled tokens / their number (labels −100 elsewhere; `weights` holds
    one weight per label position). With every w_t = 1 it is the mean token cross-entropy."""
    labels, w = batch["labels"], batch["weights"]
    rows, cols = (labels[:, 1:] != -100).nonzero(as_tuple=True)
    logits = logits_at(model, batch["input_ids"], batch["attention_mask"], rows, cols)
    ce = F.cross_entropy(logits.float(), labels[rows, cols + 1], reduction="none")
    return (ce * w[rows, cols + 1]).sum() / len(ce)


def bucketed_order(lengths: Sequence[int], batch: int, seed: Sequence[int], window: int = 16) -> np.ndarray:
    """A seeded order in which consecutive `batch`-sized slices hold examples of similar length: a
    random permutation is cut into windows of `window` batches, each window is sorted by length, and
    the batches of all windows are shuffled, the one short batch (if any) kept last so that slicing
    the order every `batch` items gives exactly these batches. Every example appears exactly once."""
    rng = np.random.default_rng(list(seed))
    perm = rng.permutation(len(lengths))
    lens = np.asarray(lengths)
    chunks = []
    span = batch * window
    for lo in range(0, len(perm), span):
        part = perm[lo : lo + span]
        part = part[np.argsort(lens[part], kind="stable")]
        chunks += [part[i : i + batch] for i in range(0, len(part), batch)]
    full = [c for c in chunks if len(c) == batch]
    short = [c for c in chunks if len(c) != batch]
    order = rng.permutation(len(full))
    return np.concatenate([*(full[i] for i in order), *short]) if chunks else perm
