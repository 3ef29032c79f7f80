"""Two base models reading the same text, with their token positions paired by character offset.

    texts = generic_texts(256, seed=0)                 # lines of the embedded pretraining corpus
    px, py = pair_tokens(tok_x, tok_y, texts)          # per text: ids and paired token indices
    ins, outs = capture(model_x, px[:32], inputs=["model.layers.0.mlp.down_proj"])

A target position pairs with the source position whose token ends at the same character offset:
both models have then read exactly the same prefix. Special tokens and tokens with empty offsets
are skipped; when byte-level tokens split one character, the last of them (which has read the whole
character) stands for the offset. Activations come back float64, one row per paired position, in
the same order on both sides, so rows of X and Y activations are paired samples.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch

from loraport.device import module_device
from loraport.errors import MethodError
from loraport.tasks.corpus import pretraining_corpus

if TYPE_CHECKING:
    from transformers import PreTrainedModel, PreTrainedTokenizerBase

MIN_CHARS = 16


def generic_texts(n: int, seed: int = 0, min_chars: int = MIN_CHARS) -> list[str]:
    """`n` corpus lines of at least `min_chars` characters, deterministic for `seed`."""
    if n <= 0:
        raise MethodError(f"align: texts={n} must be a positive number of lines")
    lines = [s for s in pretraining_corpus(4 * n + 64, seed=seed) if len(s.strip()) >= min_chars]
    return lines[:n]


@dataclass(frozen=True)
class Encoded:
    """One text through one tokenizer: its token ids and, per paired position, a token index."""

    ids: list[int]
    positions: list[int]


def _ends(tokenizer: PreTrainedTokenizerBase, text: str, max_length: int) -> tuple[list[int], dict[int, int]]:
    enc = tokenizer(
        text,
        return_offsets_mapping=True,
        return_special_tokens_mask=True,
        truncation=True,
        max_length=max_length,
    )
    ends: dict[int, int] = {}
    for i, ((start, end), special) in enumerate(
        zip(enc["offset_mapping"], enc["special_tokens_mask"], strict=True)
    ):
        if not special and end > start:
            ends[end] = i  # the last token ending here has read the whole character
    return list(enc["input_ids"]), ends


def pair_tokens(
    tok_x: PreTrainedTokenizerBase,
    tok_y: PreTrainedTokenizerBase,
    texts: Iterable[str],
    max_length: tuple[int, int] = (512, 512),
) -> tuple[list[Encoded], list[Encoded]]:
    """Tokenize every text with both tokenizers and keep the character end offsets both share.
    Texts without a shared offset are dropped; the k-th position of X pairs with the k-th of Y."""
    xs, ys = [], []
    for text in texts:
        ids_x, ends_x = _ends(tok_x, text, max_length[0])
        ids_y, ends_y = _ends(tok_y, text, max_length[1])
        common = sorted(ends_x.keys() & ends_y.keys())
        if common:
            xs.append(Encoded(ids_x, [ends_x[e] for e in common]))
            ys.append(Encoded(ids_y, [ends_y[e] for e in common]))
    return xs, ys


def _padded(batch: Sequence[Encoded], pad_id: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Right-padded ids, attention mask, and the flat (b·T + t) index of every paired position."""
    width = max(len(e.ids) for e in batch)
    ids = torch.full((len(batch), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(batch), width), dtype=torch.long)
    flat = []
    for b, e in enumerate(batch):
        ids[b, : len(e.ids)] = torch.tensor(e.ids)
        mask[b, : len(e.ids)] = 1
        flat.extend(b * width + p for p in e.positions)
    return ids, mask, torch.tensor(flat)


def capture(
    model: PreTrainedModel,
    batch: Sequence[Encoded],
    pad_id: int,
    *,
    inputs: Iterable[str] = (),
    outputs: Iterable[str] = (),
) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
    """One forward pass of the decoder over `batch`: the inputs of the `inputs` modules and the
    outputs of the `outputs` modules (names as in `model.named_modules()`) at the paired positions."""
    ids, mask, flat = _padded(batch, pad_id)
    want_in, want_out = set(inputs), set(outputs)
    got_in: dict[str, torch.Tensor] = {}
    got_out: dict[str, torch.Tensor] = {}

    def rows(t: torch.Tensor) -> torch.Tensor:
        return t.reshape(-1, t.shape[-1])[flat.to(t.device)].cpu().double()

    def hook(name: str):
        def fn(module: torch.nn.Module, args: tuple, out: object) -> None:
            if name in want_in:
                got_in[name] = rows(args[0])
            if name in want_out:
                got_out[name] = rows(out[0] if isinstance(out, tuple) else out)

        return fn

    handles = [model.get_submodule(n).register_forward_hook(hook(n)) for n in sorted(want_in | want_out)]
    try:
        with torch.no_grad():
            device = module_device(model)
            model.get_decoder()(input_ids=ids.to(device), attention_mask=mask.to(device), use_cache=False)
    finally:
        for h in handles:
            h.remove()
    return got_in, got_out
