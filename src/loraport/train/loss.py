"""The training loss at answer positions only, and length-bucketed batch orders.

A causal LM's forward computes the output layer (hidden × vocabulary) at every position, though the
loss needs it only where a label is set. With Gemma-3's 262,144-token vocabulary that head is most of
a step's compute; `answer_loss` runs the decoder, keeps the hidden states whose next token is a
label, and applies the head (and the model's logit soft-capping, where it has one) to those alone.
The loss is the same mean token cross-entropy as transformers' own (`ForCausalLMLoss`), up to float
rounding: tests compare the two.

Few-shot prompts share their shots: every row of a batch starts with the same tokens. Where those
are at least MIN_SHARED_PREFIX tokens (and hold no labelled token), the decoder runs them once, as
one row, and every row continues from a copy of that key/value cache; gradients flow back through
the copies into the one prefix pass. The loss and its gradients are those of the full rows, up to
float rounding (tests compare them), at a fraction of the compute when the shots are most of a row.
"""

from __future__ import annotations

import inspect
from collections.abc import Sequence
from functools import lru_cache
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

#: Vocabulary size from which `answer_logits=None` (auto) computes the head at answer positions only.
LARGE_VOCAB = 32768
#: The shortest common prefix worth a key/value cache of its own (shorter ones are recomputed per row).
MIN_SHARED_PREFIX = 32


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


def cache_arg(model: torch.nn.Module) -> str:
    """The name transformers gives a forward's key/value cache argument (`cache` from v5 on, before
    that `past_key_values`, which v5 still takes with a deprecation warning)."""
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    return _cache_arg_of(type(base))


@lru_cache(maxsize=32)
def _cache_arg_of(cls: type) -> str:
    """cache_arg by model class: the signature is read once, not at every training step."""
    return "cache" if "cache" in inspect.signature(cls.forward).parameters else "past_key_values"


def returned_cache(out: Any) -> Any:
    """The key/value cache a forward with use_cache=True returned."""
    return next(out[k] for k in ("cache", "past_key_values") if k in out)


def shared_prefix(input_ids: torch.Tensor, attention_mask: torch.Tensor, labels: torch.Tensor | None) -> int:
    """Tokens at the start of every row of a right-padded batch that all rows share, unpadded, and
    that predict no labelled token (each row keeps at least one token of its own); 0 when that is
    under MIN_SHARED_PREFIX or the batch has one row."""
    if input_ids.shape[0] < 2:
        return 0
    same = ((input_ids == input_ids[:1]) & (attention_mask == 1)).all(0)
    differs = (~same).nonzero()
    n = int(differs[0]) if len(differs) else same.numel()
    n = min(n, int(attention_mask.sum(1).min()) - 1)
    if labels is not None:
        cols = (labels[:, 1:] != -100).nonzero(as_tuple=True)[1]
        if len(cols):
            n = min(n, int(cols.min()))
    return n if n >= MIN_SHARED_PREFIX else 0


def _hidden(lm: Any, input_ids: torch.Tensor, attention_mask: torch.Tensor, prefix: int) -> torch.Tensor:
    """The decoder's last hidden states at positions prefix.. of every row; the first `prefix`
    positions (shared by all rows) computed once and continued from copies of their cache."""
    if not prefix:
        return lm.model(input_ids=input_ids, attention_mask=attention_mask, use_cache=False).last_hidden_state
    head = input_ids[:1, :prefix]
    cache = returned_cache(lm.model(input_ids=head, attention_mask=torch.ones_like(head), use_cache=True))
    cache.batch_repeat_interleave(input_ids.shape[0])
    rest = lm.model(
        input_ids=input_ids[:, prefix:],
        attention_mask=attention_mask,
        use_cache=True,
        **{cache_arg(lm.model): cache},
    )
    return rest.last_hidden_state


def logits_at(
    model: torch.nn.Module,
    input_ids: torch.Tensor,
    attention_mask: torch.Tensor,
    rows: torch.Tensor,
    cols: torch.Tensor,
    prefix: int = 0,
) -> torch.Tensor:
    """The model's logits at positions (rows[j], cols[j]) only: the decoder's hidden states there
    through the output layer (and the model's logit soft-capping, where it has one). Models without
    the decoder + head layout (`supports_answer_loss`) get their full forward, then the selection.
    `prefix` (see `shared_prefix`; every col at or after it): the rows' common first tokens are
    computed once."""
    if not supports_answer_loss(model):
        return model(input_ids=input_ids, attention_mask=attention_mask).logits[rows, cols]
    lm = causal_lm(model)
    hidden = _hidden(lm, input_ids, attention_mask, prefix)
    logits = lm.get_output_embeddings()(hidden[rows, cols - prefix])
    cap = getattr(lm.config, "final_logit_softcapping", None)
    return torch.tanh(logits / cap) * cap if cap else logits


def answer_loss(
    model: torch.nn.Module,
    input_ids: torch.Tensor,
    attention_mask: torch.Tensor,
    labels: torch.Tensor,
    share_prefix: bool = True,
) -> torch.Tensor:
    """Mean cross-entropy of the labelled tokens (labels −100 elsewhere), with the output layer
    computed only at the positions that predict a labelled token (and a prefix every row shares
    computed once, with `share_prefix`)."""
    rows, cols = (labels[:, 1:] != -100).nonzero(as_tuple=True)
    prefix = shared_prefix(input_ids, attention_mask, labels) if share_prefix else 0
    logits = logits_at(model, input_ids, attention_mask, rows, cols, prefix)
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
    prefix = shared_prefix(batch["input_ids"], batch["attention_mask"], labels)
    logits = logits_at(model, batch["input_ids"], batch["attention_mask"], rows, cols, prefix)
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
