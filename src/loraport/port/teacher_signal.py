"""Label-free ways to give `distill`'s student a better signal than the teacher's greedy answers.

Self-consistency (`self_consistent`): X + X adapter samples k answers per prompt (temperature T,
seeded); a prompt keeps the answer more than half of its samples agree on (after collapsing
whitespace) and is dropped when no answer has such a majority. The student then trains on answers the
teacher gives stably, not on its one-off greedy slips. Votes compare whole answers: a task whose
teacher reasons before answering rarely repeats its text, so it keeps few prompts (see the report's
"prompts kept").

Contrastive excess (`contrastive_excess`, `token_weights`): for each answer token t the teacher
wrote, e_t = log p_{X+A}(t | prefix) − log p_X(t | prefix), computed on X's own tokens: how much the
adapter, rather than X, put that token there (TiTok's "contrastive excess"). A token's raw weight is
floor + max(e_t, 0): a token the adapter made likelier weighs more, one X would write anyway keeps
the floor (the student still has to learn the format Y lacks). X's weights are carried to Y's tokens
through character offsets: each character of the answer takes the weight of the X token covering
it, and a Y token the mean of its characters'. Where either tokenizer cannot give offsets that
reproduce the answer, the whole item falls back to one sequence-level weight (floor + the mean
positive excess) on every token. The end-of-answer tokens take their item's mean weight. Weights
are then scaled so their mean over every answer token is 1, so the loss keeps its scale and `lr`
its meaning; with no excess anywhere every weight is 1 and training is plain imitation.

    answers = self_consistent("tiny-qwen2-x", "adapters/x-math", answers, k=5, temperature=0.7, seed=0)
    excess = contrastive_excess("tiny-qwen2-x", "adapters/x-math", answers)
    weights = token_weights(y_tokenizer, items, excess, floor=0.25)   # one list per item, Y tokens
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from loraport.port.teacher import Answers


def _norm(text: str) -> str:
    return " ".join(text.split())


def majority_answers(samples: Sequence[Sequence[str]]) -> list[str | None]:
    """Per prompt, the answer more than half of its samples give (compared with whitespace
    collapsed; the first sample's spelling of it is returned), or None when there is none. An empty
    answer never wins."""
    out: list[str | None] = []
    for row in samples:
        votes = Counter(_norm(a) for a in row)
        top, n = votes.most_common(1)[0] if votes else ("", 0)
        won = top and 2 * n > len(row)
        out.append(next(a for a in row if _norm(a) == top) if won else None)
    return out


def sample_answers(
    model: Any,
    tokenizer: Any,
    prompts: Sequence[str],
    *,
    k: int,
    temperature: float,
    seed: int,
    max_new_tokens: int,
    batch: int = 64,
) -> list[list[str]]:
    """k sampled answers per prompt (prompt-major), round j seeded with (seed, j)."""
    import torch

    from loraport.evaluate.generate import generate

    rounds = []
    for j in range(k):
        torch.manual_seed(seed * 1_000_003 + j)
        rounds.append(
            generate(
                model, tokenizer, prompts, max_new_tokens=max_new_tokens, batch=batch, temperature=temperature
            )
        )
    return [list(r) for r in zip(*rounds, strict=True)]


def self_consistent(
    source: str,
    adapter: str | Path,
    answers: Answers,
    *,
    k: int,
    temperature: float,
    seed: int,
    device: str | None = None,
) -> Answers:
    """The prompts of `answers` on which k samples of X + adapter have a majority answer, with that
    answer; the sampling's tokens and seconds are added to the answers' cost."""
    from loraport.evaluate.merge import merge_adapter
    from loraport.models import load_model

    start = time.perf_counter()
    model, tokenizer, _ = load_model(source, device=device)
    merge_adapter(model, adapter)
    budget = int(answers.provenance.get("max_new_tokens", 64))
    samples = sample_answers(
        model, tokenizer, answers.prompts, k=k, temperature=temperature, seed=seed, max_new_tokens=budget
    )
    won = majority_answers(samples)
    keep = [i for i, a in enumerate(won) if a is not None]
    texts = [a for row in samples for a in row]
    tokens = sum(len(ids) for ids in tokenizer(texts, add_special_tokens=False)["input_ids"]) if texts else 0
    record = {"k": k, "temperature": temperature, "seed": seed, "prompts": len(won), "kept": len(keep)}
    return Answers(
        [answers.prompts[i] for i in keep],
        [won[i] for i in keep],
        answers.generated_tokens + tokens,
        round(answers.seconds + time.perf_counter() - start, 3),
        {**answers.provenance, "self_consistency": record},
    )


@dataclass(frozen=True)
class Excess:
    """One answer's contrastive excess on X's tokens: the answer's character span of each token
    (None where X's tokenizer gives no offsets that reproduce the answer) and e_t per token."""

    spans: list[tuple[int, int]] | None
    values: list[float]


def char_spans(tokenizer: Any, text: str, ids: Sequence[int]) -> list[tuple[int, int]] | None:
    """Each token's (start, end) in `text`: a fast tokenizer's offsets when it encodes `text` to
    `ids`, else from decoding growing prefixes of `ids`; None when a prefix does not decode to a
    prefix of `text` (a tokenizer that normalises the text)."""
    if getattr(tokenizer, "is_fast", False):
        enc = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
        offsets = [tuple(o) for o in enc["offset_mapping"]]
        if list(enc["input_ids"]) == list(ids) and all(0 <= s <= e <= len(text) for s, e in offsets):
            return offsets
    spans, prev = [], 0
    for i in range(len(ids)):
        head = tokenizer.decode(list(ids[: i + 1]), clean_up_tokenization_spaces=False)
        if not text.startswith(head):
            if i + 1 < len(ids):  # a multi-byte character split across tokens: wait for the rest
                spans.append((prev, prev))
                continue
            return None
        spans.append((prev, len(head)))
        prev = len(head)
    return spans if prev == len(text) else None


def token_logprobs(model: Any, tokenizer: Any, pairs: Sequence[tuple[str, list[int]]]) -> list[list[float]]:
    """log p(token | prompt, earlier tokens) of each answer token, for (prompt, answer ids) pairs;
    the prompt is rendered in the tokenizer's chat format, as in training."""
    import torch

    from loraport.device import module_device
    from loraport.models.chat import chat_format
    from loraport.train.loss import logits_at

    fmt = chat_format(tokenizer)
    ctx = tokenizer([fmt.render(p) for p, _ in pairs], add_special_tokens=False)["input_ids"]
    device = module_device(model)
    out = []
    with torch.inference_mode():
        for (_, ans), c in zip(pairs, ctx, strict=True):
            if not ans:
                out.append([])
                continue
            ids = torch.tensor([c + list(ans)], device=device)
            cols = torch.arange(len(c) - 1, len(c) - 1 + len(ans), device=device)
            rows = torch.zeros_like(cols)
            logp = torch.log_softmax(logits_at(model, ids, torch.ones_like(ids), rows, cols).float(), -1)
            out.append(logp[torch.arange(len(ans), device=device), ids[0, cols + 1]].tolist())
    return out


def contrastive_excess(
    source: str, adapter: str | Path, answers: Answers, *, device: str | None = None
) -> list[Excess]:
    """e_t = log p_{X+A} − log p_X of every answer token, on X's tokens, one Excess per answer."""
    from loraport.evaluate.merge import merge_adapter
    from loraport.models import load_model

    model, tokenizer, _ = load_model(source, device=device)
    ids = tokenizer(list(answers.answers), add_special_tokens=False)["input_ids"]
    pairs = list(zip(answers.prompts, ids, strict=True))
    base = token_logprobs(model, tokenizer, pairs)
    merge_adapter(model, adapter)
    tuned = token_logprobs(model, tokenizer, pairs)
    return [
        Excess(char_spans(tokenizer, a, seq), [t - b for t, b in zip(tl, bl, strict=True)])
        for a, seq, tl, bl in zip(answers.answers, ids, tuned, base, strict=True)
    ]


def map_weights(
    x_spans: list[tuple[int, int]],
    x_weights: Sequence[float],
    y_spans: list[tuple[int, int]],
    fallback: float,
) -> list[float]:
    """Y tokens' weights from X tokens' through characters: each character takes the weight of the
    X token covering it, a Y token the mean over its characters (`fallback` for one that covers
    none)."""
    length = max([e for _, e in x_spans] + [e for _, e in y_spans] + [0])
    per_char = [fallback] * length
    for (s, e), w in zip(x_spans, x_weights, strict=True):
        for c in range(s, e):
            per_char[c] = w
    return [sum(per_char[s:e]) / (e - s) if e > s else fallback for s, e in y_spans]


def token_weights(
    tokenizer: Any, items: Sequence[Any], excess: dict[str, Excess], floor: float
) -> list[list[float]]:
    """Per training item (in order), a weight for each token training puts a loss on: the answer's
    tokens in the target's tokenizer, then its end-of-answer tokens. `excess` maps an item's
    (prompt, answer) key `excess_key` to its Excess. Scaled to mean 1 over all tokens."""
    from loraport.models.chat import chat_format

    n_end = len(chat_format(tokenizer).answer_end)
    raw = []
    for it in items:
        text = it.completion()
        ids = tokenizer(text, add_special_tokens=False)["input_ids"]
        ex = excess[excess_key(it.prompt, it.answer)]
        wx = [floor + max(v, 0.0) for v in ex.values]
        seq = sum(wx) / len(wx) if wx else floor
        y_spans = char_spans(tokenizer, text, ids)
        if ex.spans is None or y_spans is None or text != it.answer:
            w = [seq] * len(ids)
        else:
            w = map_weights(ex.spans, wx, y_spans, seq)
        raw.append([*w, *([sum(w) / len(w) if w else seq] * n_end)])
    total = sum(len(w) for w in raw)
    mean = sum(sum(w) for w in raw) / total if total else 1.0
    return [[x / mean for x in w] for w in raw]


def excess_key(prompt: str, answer: str) -> str:
    return prompt + "\x1f" + answer


def excess_by_item(answers: Answers, excess: list[Excess]) -> dict[str, Excess]:
    """Excess keyed by (prompt, answer), for token_weights over the items that survive filtering."""
    return {excess_key(p, a): e for p, a, e in zip(answers.prompts, answers.answers, excess, strict=True)}
