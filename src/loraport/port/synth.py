"""Prompts from a few examples: a model writes new task prompts in their style, a filter keeps the
realistic, diverse, new ones (port.prompt_filters), and the behaviour methods learn from the
examples plus what was kept.

How a candidate is written: the synthesizing model (the target Y by default, or the source X) sees
a few-shot listing, up to SHOTS of the examples (fewer where the context window needs it) in a seeded random order, one after another with a
separator (a newline when no example spans lines, else a blank line, else a `###` line), with the
separator after the last, and continues it by plain sampling (temperature 1, no top-k or top-p
cut, torch seeded per round) until it writes the separator, EOS, or runs out of tokens (1.5 times
the longest example's tokens, + 8). The raw text is used, never a chat template: a few-shot listing
is what base and instruct models alike continue. The examples' common leading and trailing
whitespace (a task whose prompts end in a newline) is stripped for the listing; each candidate is
stripped and given it back.

With mode "infill" the model instead rewrites the variable words of an example, in the same
listing's context (port.synth_infill): for a model that cannot imitate a new format on its own.

Rounds of candidates run until `n` prompts (examples included) are kept or 4·n candidates were
written; a shortfall is recorded, not an error. Cost (generated tokens, seconds, including the
perplexity passes) counts in the port's cost through the teacher answers (`charge`).

    syn = synthesize_prompts("tiny-llama-y", examples, 512, seed=1, evals=eval_prompts("code_paren"))
    syn.prompts[:3] == examples[:3]; syn.stats["dropped"]     # {"format": 311, "duplicate": 40, ...}
"""

from __future__ import annotations

import random
import time
from dataclasses import dataclass, field, replace
from typing import Any

from loraport.errors import MethodError
from loraport.port.prompt_filters import PromptFilter
from loraport.port.teacher import Answers, context_length

SHOTS = 8  # examples shown per candidate (all of them when fewer)
BUDGET = 4  # candidates written per prompt asked for, at most
ROUND = 64  # candidates per generation batch
MODES = ("listing", "infill")


@dataclass
class Synthesis:
    """The examples followed by the kept synthetic prompts, and what writing them cost."""

    prompts: list[str]
    generated_tokens: int
    seconds: float
    stats: dict[str, Any] = field(default_factory=dict)


def separator(examples: list[str]) -> str:
    """The listing separator: one no example contains."""
    for sep in ("\n", "\n\n", "\n###\n"):
        if not any(sep in e for e in examples):
            return sep
    raise MethodError("the examples contain every listing separator (newline, blank line, ###)")


def common_tail(examples: list[str]) -> str:
    """The trailing whitespace every example ends with (given back to each candidate)."""
    tails = [e[len(e.rstrip()) :] for e in examples]
    tail = tails[0]
    while tail and not all(t.endswith(tail) for t in tails):
        tail = tail[1:]
    return tail


def common_head(examples: list[str]) -> str:
    """The leading whitespace every example starts with (a candidate's own is replaced by it)."""
    return common_tail([e[::-1] for e in examples])[::-1]


def shots_that_fit(lengths: list[int], sep_tokens: int, budget: int, window: int) -> int:
    """How many examples a listing can show (at most SHOTS) so that the longest such listing plus
    the candidate's token budget fits the model's context window."""
    longest = sorted(lengths, reverse=True)
    k = min(SHOTS, len(lengths))
    while k > 0 and sum(longest[:k]) + k * sep_tokens + budget + 1 > window:
        k -= 1
    if k == 0:
        raise MethodError(f"no example fits the synthesizer's context window of {window} tokens")
    return k


def contexts(examples: list[str], count: int, seed: int, sep: str, k: int = SHOTS) -> list[str]:
    """`count` few-shot listings, each of k examples (all when fewer) in a random order (seeded)."""
    rng = random.Random(seed)
    k = min(k, len(examples))
    return ["".join(e + sep for e in rng.sample(examples, k)) for _ in range(count)]


def sample_tokens(model: Any, tokenizer: Any, rows: list[str], max_new_tokens: int, seed: int, **kwargs: Any):
    """The new tokens (a tensor, rows × steps) of one seeded pure sample (temperature 1, no top-k or
    top-p cut) per row, left-padded in one batch; `kwargs` go to `model.generate` (ends, padding)."""
    import torch

    from loraport.device import module_device

    enc = tokenizer(rows, return_tensors="pt", padding=True, padding_side="left")
    device = module_device(model)
    torch.manual_seed(seed)
    with torch.inference_mode():
        out = model.generate(
            input_ids=enc["input_ids"].to(device),
            attention_mask=enc["attention_mask"].to(device),
            max_new_tokens=max_new_tokens,
            do_sample=True,
            temperature=1.0,
            top_k=0,
            top_p=1.0,
            **kwargs,
        )
    return out[:, enc["input_ids"].shape[1] :]


def sample(model: Any, tokenizer: Any, ctxs: list[str], sep: str, max_new_tokens: int, seed: int):
    """One sampled continuation per context, cut at `sep`: (texts, None where the model did not end
    it within the budget; generated tokens)."""
    from transformers import StoppingCriteriaList, StopStringCriteria

    eos = tokenizer.eos_token_id
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else eos
    new = sample_tokens(
        model,
        tokenizer,
        ctxs,
        max_new_tokens,
        seed,
        eos_token_id=eos,
        pad_token_id=pad,
        stopping_criteria=StoppingCriteriaList([StopStringCriteria(tokenizer, [sep])]),
    )
    texts: list[str | None] = []
    tokens = 0
    for row in new.tolist():
        ended = eos in row
        row = row[: row.index(eos)] if ended else row
        tokens += len(row) + ended
        text = tokenizer.decode(row, skip_special_tokens=True, clean_up_tokenization_spaces=False)
        if sep in text:
            texts.append(text[: text.index(sep)])
        else:
            texts.append(text if ended else None)
    return texts, tokens


def mean_nll(model: Any, tokenizer: Any, texts: list[str], batch: int = 64) -> list[float]:
    """Mean next-token log-loss of each text on its own (raw, with the tokenizer's BOS): the log of
    its perplexity under `model`."""
    import torch

    from loraport.device import module_device

    device = module_device(model)
    out: list[float] = []
    with torch.inference_mode():
        for lo in range(0, len(texts), batch):
            enc = tokenizer(texts[lo : lo + batch], return_tensors="pt", padding=True, padding_side="right")
            ids, mask = enc["input_ids"].to(device), enc["attention_mask"].to(device)
            logp = torch.log_softmax(model(input_ids=ids, attention_mask=mask).logits[:, :-1].float(), -1)
            tok = logp.gather(-1, ids[:, 1:, None])[..., 0]
            m = mask[:, 1:].float()
            out += ((-(tok * m).sum(1)) / m.sum(1).clamp(min=1)).tolist()
    return out


def synthesize_prompts(
    base: str,
    examples: list[str],
    n: int,
    *,
    seed: int,
    evals: set[str] | frozenset[str] = frozenset(),
    jaccard: float = 0.9,
    mode: str = "listing",
    device: str | None = None,
) -> Synthesis:
    """The examples plus synthetic prompts written by `base`, `n` in all where the filter keeps
    enough (port.prompt_filters); `evals` are the normalised eval prompts no prompt may repeat.
    `mode`: "listing" (the model continues a few-shot listing) or "infill" (it rewrites an
    example's variable words in the same listing's context, port.synth_infill)."""
    if mode not in MODES:
        raise MethodError(f"prompt synthesis mode {mode!r}: one of {', '.join(MODES)}")
    from loraport.models import load_model

    start = time.perf_counter()
    model, tokenizer, ref = load_model(base, device=device)
    if tokenizer is None:
        raise MethodError(f"synthesizer {base}: has no tokenizer, so it cannot write prompts")
    if tokenizer.pad_token is None:  # batches are padded; the pad id is masked out everywhere
        tokenizer.pad_token = tokenizer.eos_token
    head, tail = common_head(examples), common_tail(examples)
    bare = [e[len(head) : len(e) - len(tail)] for e in examples]
    sep = separator(bare)
    ex_nll = mean_nll(model, tokenizer, examples)
    keep = PromptFilter.from_examples(examples, example_nll=ex_nll, evals=evals, jaccard=jaccard)
    lengths = [len(ids) for ids in tokenizer(bare, add_special_tokens=False)["input_ids"]]
    budget = int(1.5 * max(lengths)) + 8
    sep_tokens = len(tokenizer(sep, add_special_tokens=False)["input_ids"])
    k = shots_that_fit(lengths, sep_tokens, budget, context_length(model))
    if mode == "infill":
        from loraport.port.synth_infill import SHOTS as INFILL_SHOTS

        k = min(k, INFILL_SHOTS)
    kept: list[str] = []
    dropped: dict[str, int] = {}
    written = tokens = 0
    rounds = 0
    while len(examples) + len(kept) < n and written < BUDGET * n:
        count = min(ROUND, BUDGET * n - written)
        ctxs = contexts(bare, count, seed * 1_000_003 + rounds, sep, k)
        if mode == "infill":
            from loraport.port.synth_infill import infill

            done, used = infill(model, tokenizer, bare, ctxs, keep.skel, seed * 1_000_003 + rounds)
            texts: list[str | None] = list(done)
        else:
            texts, used = sample(model, tokenizer, ctxs, sep, budget, seed * 1_000_003 + rounds)
        cands = [None if t is None else head + t.strip() + tail for t in texts]
        finished = [c for c in cands if c is not None and c.strip()]
        nll = dict(zip(finished, mean_nll(model, tokenizer, finished), strict=True)) if finished else {}
        for c in cands:
            if len(examples) + len(kept) >= n:
                break
            why = keep.reason(c, nll.get(c) if c is not None else None)
            if why is None:
                kept.append(c)
            else:
                dropped[why] = dropped.get(why, 0) + 1
        written, tokens, rounds = written + count, tokens + used, rounds + 1
    stats = {
        "synthesizer": ref.name or str(ref.path),
        "mode": mode,
        "examples": len(examples),
        "asked": n,
        "written": written,
        "kept": len(kept),
        "dropped": dict(sorted(dropped.items())),
        "shots": k,
        "skeleton": keep.skel,
        "length_bounds": [round(b, 1) for b in keep.bounds],
        "max_nll": None if keep.max_nll is None else round(keep.max_nll, 4),
        "jaccard": jaccard,
        "seed": seed,
    }
    return Synthesis([*examples, *kept], tokens, round(time.perf_counter() - start, 3), stats)


def charge(answers: Answers, synthesis: Synthesis | None) -> Answers:
    """The teacher answers with the synthesis's tokens and seconds added to their cost and its
    statistics in their provenance (a port's cost then includes writing its prompts)."""
    if synthesis is None:
        return answers
    return replace(
        answers,
        generated_tokens=answers.generated_tokens + synthesis.generated_tokens,
        seconds=round(answers.seconds + synthesis.seconds, 3),
        provenance={**answers.provenance, "synthesis": synthesis.stats},
    )


def teach_prompts(
    task: str,
    n: int,
    seed: int,
    *,
    n_eval: int,
    eval_seed: int,
    examples: int | None = None,
    synthesizer: str | None = None,
    mode: str = "listing",
) -> tuple[list[str], Synthesis | None]:
    """A study's teacher prompts: `n` of the task's train prompts; or, with `examples`, only that
    many of them, the rest synthesized by the `synthesizer` base in `mode`. Checked against the
    eval items."""
    from loraport.port.prompts import check_disjoint_prompts, eval_prompts, task_prompts, unlabeled_prompts

    if examples is None:
        return unlabeled_prompts(task, n, seed, n_eval=n_eval, eval_seed=eval_seed), None
    if synthesizer is None:
        raise MethodError("prompt synthesis needs a synthesizer base")
    given = task_prompts(task, examples, seed)
    evals = eval_prompts(task, n_eval, eval_seed)
    check_disjoint_prompts(given, task, n_eval=n_eval, eval_seed=eval_seed)
    syn = synthesize_prompts(synthesizer, given, n, seed=seed, evals=set(evals), mode=mode)
    check_disjoint_prompts(syn.prompts, task, n_eval=n_eval, eval_seed=eval_seed)
    return syn.prompts, syn
