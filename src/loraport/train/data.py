"""Turning task items into supervised token batches: prompt tokens are context, answer tokens
(plus EOS, or the chat template's end-of-turn token) carry the loss. Prompt and answer are tokenized
separately and joined, so training sees exactly the token boundary that generation starts from; the
prompt is wrapped in the tokenizer's chat format (`loraport.models.chat`) when it has one."""

from __future__ import annotations

from collections.abc import Sequence

import torch

from loraport.errors import TaskError
from loraport.models.chat import chat_format
from loraport.tasks import Item


def check_encodable(tokenizer, texts: Sequence[str], what: str) -> None:
    """TaskError naming the first text the tokenizer cannot represent faithfully (unknown tokens,
    or a decode that does not give the text back)."""
    unk = tokenizer.unk_token_id
    enc = tokenizer(list(texts), add_special_tokens=False)["input_ids"]
    for text, ids in zip(texts, enc, strict=True):
        if unk is not None and unk in ids:
            raise TaskError(f"{what}: the tokenizer has no tokens for part of {text[:60]!r} (unknown token)")
        if not ids and text:
            raise TaskError(f"{what}: the tokenizer encodes {text[:60]!r} to nothing")
        back = tokenizer.decode(ids, clean_up_tokenization_spaces=False)
        if " ".join(back.split()) != " ".join(text.split()):
            raise TaskError(f"{what}: the tokenizer cannot encode {text[:60]!r} (decodes to {back[:60]!r})")


def encode_examples(
    tokenizer, items: Sequence[Item], max_length: int, what: str
) -> list[tuple[list[int], int]]:
    """(token ids, number of prompt tokens) per item; ids end with EOS (raw prompts) or the chat
    template's end-of-turn token."""
    fmt = chat_format(tokenizer)
    if not fmt.answer_end:
        raise TaskError(f"{what}: the tokenizer has no EOS token, so answers cannot be terminated")
    check_encodable(tokenizer, [it.prompt + it.completion() for it in items[:64]], what)
    prompts = tokenizer([fmt.render(it.prompt) for it in items], add_special_tokens=False)["input_ids"]
    answers = tokenizer([it.completion() for it in items], add_special_tokens=False)["input_ids"]
    out = []
    for it, p, a in zip(items, prompts, answers, strict=True):
        ids = [*p, *a, *fmt.answer_end]
        if len(ids) > max_length:
            raise TaskError(f"{what}: item {it.id} is {len(ids)} tokens, more than max_length {max_length}")
        out.append((ids, len(p)))
    return out


def collate(examples: Sequence[tuple[list[int], int]], pad_id: int) -> dict[str, torch.Tensor]:
    """Right-padded input_ids / attention_mask / labels (-100 on prompt and padding)."""
    width = max(len(ids) for ids, _ in examples)
    input_ids = torch.full((len(examples), width), pad_id, dtype=torch.long)
    labels = torch.full((len(examples), width), -100, dtype=torch.long)
    mask = torch.zeros((len(examples), width), dtype=torch.long)
    for row, (ids, n_prompt) in enumerate(examples):
        t = torch.tensor(ids, dtype=torch.long)
        input_ids[row, : len(ids)] = t
        labels[row, n_prompt : len(ids)] = t[n_prompt:]
        mask[row, : len(ids)] = 1
    return {"input_ids": input_ids, "attention_mask": mask, "labels": labels}
