"""Batched greedy generation with a KV cache and stop rules, and log-likelihood of continuations."""

from __future__ import annotations

import copy
from collections.abc import Sequence
from functools import lru_cache

import torch
from transformers import StoppingCriteria, StoppingCriteriaList

from loraport.device import module_device
from loraport.models.chat import chat_format
from loraport.train.loss import MIN_SHARED_PREFIX, cache_arg, logits_at, returned_cache, shared_prefix


def shared_prefix_length(encoded: Sequence[Sequence[int]]) -> int:
    """Tokens at the start of every sequence in `encoded` that they all share, leaving each at
    least one token of its own; 0 when that is under MIN_SHARED_PREFIX or there is one sequence."""
    if len(encoded) < 2:
        return 0
    first = encoded[0]
    n = min(len(e) for e in encoded) - 1
    for e in encoded[1:]:
        k = 0
        while k < n and e[k] == first[k]:
            k += 1
        n = k
        if n < MIN_SHARED_PREFIX:
            return 0
    return n


def _prefill(model: torch.nn.Module, head: Sequence[int], device):
    """The key/value cache of `head` (one row), for generate() to continue from."""
    ids = torch.tensor([list(head)], dtype=torch.long, device=device)
    return returned_cache(model(input_ids=ids, attention_mask=torch.ones_like(ids), use_cache=True))


@lru_cache(maxsize=8)
def _newline_ids(tokenizer) -> frozenset[int]:
    return frozenset(i for i in range(len(tokenizer)) if "\n" in tokenizer.decode([i]))


class StopOnTokens(StoppingCriteria):
    """Per row: done once the row has produced any of `ids` (HF pads finished rows)."""

    def __init__(self, ids: frozenset[int]) -> None:
        self.ids = torch.tensor(sorted(ids), dtype=torch.long)

    def __call__(self, input_ids: torch.Tensor, scores: torch.Tensor, **kw) -> torch.Tensor:
        if self.ids.device != input_ids.device:
            self.ids = self.ids.to(input_ids.device)
        return torch.isin(input_ids[:, -1], self.ids)


def cut_at_stop(text: str, stops: Sequence[str]) -> str:
    cut = len(text)
    for s in stops:
        k = text.find(s)
        if k >= 0:
            cut = min(cut, k)
    return text[:cut]


@torch.inference_mode()
def generate(
    model: torch.nn.Module,
    tokenizer,
    prompts: Sequence[str],
    *,
    max_new_tokens: int,
    batch: int = 64,
    stop_at_newline: bool = True,
    on_batch=None,
    temperature: float | None = None,
    share_prefix: bool = True,
) -> list[str]:
    """Greedy continuations of `prompts`: they end at EOS, at `max_new_tokens`, and (by default) at
    the first newline, which is also cut from the text. Prompts are batched by length (left
    padding) and returned in input order.

    Under a chat format (`loraport.models.chat`) the prompts are wrapped in the template, generation
    also ends at the template's end-of-turn tokens, and newlines do not end it: an instruct model may
    reason over several lines before its answer, which the scorers extract.

    `temperature` (None: greedy) samples from the softmax at that temperature instead, with no top-k
    or top-p cut; seed torch's generator before the call (torch.manual_seed) to repeat a sample.

    `share_prefix`: when the prompts' token ids start with a common prefix of at least
    MIN_SHARED_PREFIX tokens (a few-shot task's shots, a chat template's system turn), its keys and
    values are computed once and every batch continues from a copy of them; each row is then
    [prefix][padding][rest of its prompt], positions counted over unpadded tokens as before. The
    outputs are those of full prompts up to float rounding (tests compare them)."""
    fmt = chat_format(tokenizer)
    eos = tokenizer.eos_token_id
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else eos
    stop_at_newline = stop_at_newline and not fmt.active
    ends = list(fmt.stop_ids) if fmt.stop_ids else eos
    encoded = tokenizer([fmt.render(p) for p in prompts], add_special_tokens=False)["input_ids"]
    order = sorted(range(len(prompts)), key=lambda i: len(encoded[i]))
    stops = StoppingCriteriaList()
    if stop_at_newline:
        stops.append(StopOnTokens(_newline_ids(tokenizer)))
    out: list[str] = [""] * len(prompts)
    device = module_device(model)
    shared = shared_prefix_length(encoded) if share_prefix else 0
    head = encoded[0][:shared] if shared else []
    prefix_cache = _prefill(model, head, device) if shared else None
    cache_key = cache_arg(model) if shared else None
    for lo in range(0, len(order), batch):
        rows = order[lo : lo + batch]
        width = max(len(encoded[i]) for i in rows)
        ids = torch.full((len(rows), width), pad, dtype=torch.long)
        mask = torch.zeros((len(rows), width), dtype=torch.long)
        if shared:
            ids[:, :shared] = torch.tensor(head)
            mask[:, :shared] = 1
        for r, i in enumerate(rows):
            rest = encoded[i][shared:]
            ids[r, width - len(rest) :] = torch.tensor(rest)
            mask[r, width - len(rest) :] = 1
        extra = {}
        if prefix_cache is not None:
            cache = copy.deepcopy(prefix_cache)
            cache.batch_repeat_interleave(len(rows))
            extra[cache_key] = cache
        gen = model.generate(
            input_ids=ids.to(device),
            attention_mask=mask.to(device),
            **extra,
            max_new_tokens=max_new_tokens,
            **(
                {"do_sample": False}
                if temperature is None
                else {"do_sample": True, "temperature": temperature, "top_k": 0, "top_p": 1.0}
            ),
            eos_token_id=ends,
            pad_token_id=pad,
            stopping_criteria=stops,
            use_cache=True,
        )
        for r, i in enumerate(rows):
            new = gen[r, width:].tolist()
            cut = [new.index(t) for t in (fmt.stop_ids or (eos,)) if t in new]
            if cut:
                new = new[: min(cut)]
            text = tokenizer.decode(new, skip_special_tokens=True, clean_up_tokenization_spaces=False)
            out[i] = cut_at_stop(text, ("\n",)) if stop_at_newline else text
        if on_batch is not None:
            on_batch(len(rows))
    return out


@torch.inference_mode()
def continuation_logprobs(
    model: torch.nn.Module,
    tokenizer,
    pairs: Sequence[tuple[str, str]],
    *,
    batch: int = 64,
    share_prefix: bool = True,
) -> list[tuple[float, int]]:
    """(sum of log-probabilities, number of tokens) of each continuation given its context.
    Context and continuation are tokenized separately and joined, as in training; under a chat
    format the context is the user turn and the continuation (without leading spaces) the answer.

    `share_prefix`: the first tokens that every context of a batch shares (a few-shot task's shots,
    at least MIN_SHARED_PREFIX of them) run once, and each row continues from a copy of their
    cache; the same numbers as full rows up to float rounding (tests compare them)."""
    fmt = chat_format(tokenizer)
    ctx = tokenizer([fmt.render(c) for c, _ in pairs], add_special_tokens=False)["input_ids"]
    conts = [x.lstrip() if fmt.active else x for _, x in pairs]
    cont = tokenizer(conts, add_special_tokens=False)["input_ids"]
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    out: list[tuple[float, int]] = []
    device = module_device(model)
    for lo in range(0, len(pairs), batch):
        seqs = [ctx[i] + cont[i] for i in range(lo, min(lo + batch, len(pairs)))]
        width = max(len(s) for s in seqs)
        ids = torch.full((len(seqs), width), pad, dtype=torch.long)
        mask = torch.zeros_like(ids)
        for r, s in enumerate(seqs):
            ids[r, : len(s)] = torch.tensor(s)
            mask[r, : len(s)] = 1
        ids, mask = ids.to(device), mask.to(device)
        rows, cols = [], []
        for r in range(len(seqs)):
            i = lo + r
            n_ctx, n_cont = len(ctx[i]), len(cont[i])
            if n_ctx == 0:
                raise ValueError(f"empty context for continuation {pairs[i][1]!r}")
            rows += [r] * n_cont
            cols += range(n_ctx - 1, n_ctx - 1 + n_cont)
        rows_t, cols_t = torch.tensor(rows, device=device), torch.tensor(cols, device=device)
        prefix = 0
        if share_prefix:
            prefix = min(shared_prefix(ids, mask, None), min(len(ctx[i]) for i in range(lo, lo + len(seqs))) - 1)
            prefix = prefix if prefix >= MIN_SHARED_PREFIX else 0
        logits = logits_at(model, ids, mask, rows_t, cols_t, prefix=prefix)
        logp = torch.log_softmax(logits.float(), dim=-1)
        tok = logp[torch.arange(len(rows), device=device), ids[rows_t, cols_t + 1]]
        start = 0
        for r in range(len(seqs)):
            n_cont = len(cont[lo + r])
            out.append((float(tok[start : start + n_cont].sum()), n_cont))
            start += n_cont
    return out
